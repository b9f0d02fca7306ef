"""`POST /workflows/:id/run` with 10,000 ids, against a bare bulk insert of 10,000 rows."""

import statistics
import time

import httpx
import psycopg

from benchmarks.harness import ENV

ENTITIES = 10_000
REPEAT = 5


def bare_insert() -> float:
    """The floor: COPY 10,000 rows into a table like the items' (same columns, defaults,
    indexes and storage parameters), with no application around it. A logged table, as the
    items' is: a temporary one would skip the write-ahead log the real insert pays for."""
    with psycopg.connect(ENV["DATABASE_URL"]) as db:
        db.execute("DROP TABLE IF EXISTS bench_items")
        db.execute("CREATE TABLE bench_items (LIKE jobs_runitem INCLUDING ALL)")
        reloptions = db.execute(
            "SELECT reloptions FROM pg_class WHERE relname = 'jobs_runitem'"
        ).fetchone()[0]
        for option in reloptions or []:
            db.execute(f"ALTER TABLE bench_items SET ({option})")
        db.commit()
        rows = [(f"run_x{i % 7}", f"ent_{i:026d}", i // 400) for i in range(ENTITIES)]
        started = time.perf_counter()
        with (
            db.transaction(),
            db.cursor() as cursor,
            cursor.copy(
                "COPY bench_items (run_id, entity_id, chunk, status, step_id, next_step, error, "
                "attempts, usage) FROM STDIN"
            ) as copy,
        ):
            for run_id, entity_id, chunk in rows:
                copy.write_row((run_id, entity_id, chunk, "pending", "", 0, "", 0, "{}"))
        elapsed = time.perf_counter() - started
        db.execute("DROP TABLE bench_items")
        db.commit()
        return elapsed


def run(base_url: str, key: str) -> dict:
    from config.celery import app
    from entities.services import entities_bulk_create, entity_type_create
    from workflows.services import workflow_create

    entity_type = entity_type_create(name=f"dispatch-{time.time_ns()}")
    ids = entities_bulk_create(
        entity_type=entity_type, items=[{"data": {"n": i}} for i in range(ENTITIES)]
    )
    workflow = workflow_create(
        name="dispatch", entity_type=entity_type, steps=[{"type": "publish", "config": {}}]
    )
    ours = []
    with httpx.Client(headers={"Authorization": f"Bearer {key}"}, timeout=120) as client:
        for _ in range(REPEAT):
            started = time.perf_counter()
            response = client.post(
                f"{base_url}/api/v1/workflows/{workflow.pk}/run", json={"entityIds": ids}
            )
            ours.append(time.perf_counter() - started)
            response.raise_for_status()
    with app.connection_for_write() as connection:  # no worker runs these
        connection.default_channel.queue_purge("celery")
    floor = [bare_insert() for _ in range(REPEAT)]
    ours_s, floor_s = statistics.median(ours), statistics.median(floor)
    return {
        "ids": ENTITIES,
        "post_run_ms": round(ours_s * 1000, 1),
        "bare_insert_ms": round(floor_s * 1000, 1),
        "ratio": round(ours_s / floor_s, 2),
        "target_ratio": 3.0,
    }
