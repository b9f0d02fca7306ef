"""Runs (transform, validate, condition, publish) through the API and real workers, timed
as a user sees them (from the `POST .../run` to the run's end), against hand-written psycopg
scripts doing the same reads, transformations and writes on the same database:

- 10,000 entities by ids, against the batched script (a transaction and an `executemany`
  per 400) and the one-transaction script (one transaction, one `executemany`);
- 100,000 entities by filter, against the one-transaction script reading the same rows by
  the same columns (its entities are inserted by one SQL statement).

The workers are warmed up first with a run of one chunk (their first task opens their
database connections and compiles the templates, as happens once in a worker's life), then
the run and the scripts take turns (five turns by ids, three by filter), each turn on a
freshly vacuumed database; each figure is the median of the turns' ratios."""

import json
import statistics
import time

import httpx
import psycopg
from django.utils.text import slugify

from benchmarks.harness import ENV, wait_for_run

ENTITIES = 10_000
REPEAT = 5
FILTER_ENTITIES = 100_000
FILTER_REPEAT = 3
STEPS = [
    {
        "id": "tidy",
        "type": "transform",
        "config": {
            "operations": [
                {"op": "trim", "field": "title"},
                {"op": "set", "field": "slug", "value": "{{ entity.brand }} {{ entity.title }}"},
                {"op": "slugify", "field": "slug"},
            ]
        },
    },
    {
        "id": "check",
        "type": "validate",
        "config": {
            "rules": [
                {"field": "title", "required": True, "type": "string", "maxLength": 200},
                {"field": "price", "type": "number", "minimum": 0},
            ]
        },
    },
    {
        "id": "cheap",
        "type": "condition",
        "config": {"if": {"field": "price", "operator": "lt", "value": 9000}},
    },
    {"id": "pub", "type": "publish", "config": {}},
]


def make_entities(entity_type, count: int = ENTITIES) -> list[str]:
    from entities.services import entities_bulk_create

    return entities_bulk_create(
        entity_type=entity_type,
        items=[
            {"data": {"title": f"  Item {i} ", "brand": "Acme", "price": i}} for i in range(count)
        ],
    )


UPDATE_SQL = (
    "UPDATE entities_entity SET data = %s::jsonb, status = 'published', "
    "published_at = now(), updated_at = now(), version = version + 1 WHERE id = %s"
)


def entities_insert(entity_type_id: str, count: int) -> None:
    """`count` entities like `make_entities`' (prices 0-9,999 over and over), inserted by one
    SQL statement: a benchmark's setup, not what it measures (no events, no API)."""
    with psycopg.connect(ENV["DATABASE_URL"]) as db:
        db.execute(
            "INSERT INTO entities_entity (id, entity_type_id, data, status, version, "
            "created_at, updated_at) "
            "SELECT 'ent_' || %s || lpad(i::text, 16, '0'), %s, "
            "jsonb_build_object('title', '  Item ' || i || ' ', 'brand', 'Acme', "
            "'price', i %% 10000), 'draft', 1, now(), now() "
            "FROM generate_series(0, %s - 1) AS i",
            [f"{time.time_ns() // 1000:010d}"[-10:], entity_type_id, count],
        )


def _transformed(rows, *, condition: bool = True) -> list[tuple[str, str]]:
    """The workflow's steps, by hand: (data, id) of each entity to publish (`condition`
    False: every valid one, for workflows without the `cheap` step)."""
    updates = []
    for entity_id, data in rows:
        data["title"] = data["title"].strip()
        data["slug"] = slugify(f"{data['brand']} {data['title']}")
        valid = (
            isinstance(data["title"], str)
            and len(data["title"]) <= 200
            and (isinstance(data["price"], int | float) and data["price"] >= 0)
        )
        if valid and (data["price"] < 9000 or not condition):
            updates.append((json.dumps(data), entity_id))
    return updates


def baseline(entity_ids: list[str], batch: int = 400) -> float:
    """The batched floor: read, transform, check and write back, batch by batch (one
    transaction and one `executemany` each), in plain psycopg."""
    started = time.perf_counter()
    with psycopg.connect(ENV["DATABASE_URL"]) as db:
        for first in range(0, len(entity_ids), batch):
            ids = entity_ids[first : first + batch]
            with db.transaction():
                rows = db.execute(
                    "SELECT id, data FROM entities_entity WHERE id = ANY(%s) FOR UPDATE", [ids]
                ).fetchall()
                with db.cursor() as cursor:
                    cursor.executemany(UPDATE_SQL, _transformed(rows))
    return time.perf_counter() - started


def floor_one(where: str, params: list, *, condition: bool = True) -> float:
    """The strongest floor: the same reads, transformations and writes in ONE transaction
    with ONE `executemany` (psycopg 3 pipelines it: no round trip per row). `where` picks
    the entities as the run does: by ids, or by the filter's columns (`condition`: as
    `_transformed`)."""
    started = time.perf_counter()
    with psycopg.connect(ENV["DATABASE_URL"]) as db, db.transaction():
        rows = db.execute(
            f"SELECT id, data FROM entities_entity WHERE {where} FOR UPDATE",  # noqa: S608
            params,
        ).fetchall()
        with db.cursor() as cursor:
            cursor.executemany(UPDATE_SQL, _transformed(rows, condition=condition))
    return time.perf_counter() - started


def vacuum() -> None:
    """Start each turn from the same state: the earlier turns' (and benchmarks') dead rows
    vacuumed and statistics fresh, so autovacuum does not wake up in the middle of a turn
    and take a core from one side only."""
    with psycopg.connect(ENV["DATABASE_URL"], autocommit=True) as db:
        db.execute("VACUUM (ANALYZE)")


def run_workflow(client: httpx.Client, workflow_id: str, entity_ids: list[str]) -> float:
    """Start a run through the API and wait for it; its status is checked, its time returned.
    The client is made once, as an API consumer's is: building one (its TLS context) takes
    longer than some chunks."""
    return _timed_run(client, workflow_id, {"entityIds": entity_ids})


def _timed_run(client: httpx.Client, workflow_id: str, body: dict) -> float:
    started = time.perf_counter()
    response = client.post(f"/api/v1/workflows/{workflow_id}/run", json=body)
    response.raise_for_status()
    run = wait_for_run(response.json()["runId"])
    elapsed = time.perf_counter() - started
    assert run.status == "completed", run.status
    return elapsed


def _published(entity_type_id: str) -> int:
    from entities.models import Entity

    return Entity.objects.filter(entity_type_id=entity_type_id, status="published").count()


def by_ids(client: httpx.Client, workflow, entity_type) -> dict:
    """10,000 entities by ids: the run against the batched script and the one-transaction
    script, turn after turn."""
    from entities.models import Entity

    runs, batched, single = [], [], []
    for _ in range(REPEAT):
        ours = make_entities(entity_type)
        floor_a, floor_b = make_entities(entity_type), make_entities(entity_type)
        vacuum()
        batched.append(baseline(floor_a))
        single.append(floor_one("id = ANY(%s)", [floor_b]))
        runs.append(run_workflow(client, workflow.pk, ours))
        for ids in (ours, floor_a, floor_b):
            published = Entity.objects.filter(pk__in=ids, status="published").count()
            assert published == 9000, published
    return _figures(ENTITIES, runs, {"batched": batched, "one_transaction": single})


def by_filter(client: httpx.Client, count: int = FILTER_ENTITIES) -> dict:
    """`count` entities by filter (`{"status": "draft"}` over a fresh entity type each turn)
    against the one-transaction script reading the same rows by the same columns."""
    from entities.services import entity_type_create
    from workflows.services import workflow_create

    runs, single = [], []
    for _ in range(FILTER_REPEAT):
        ours = entity_type_create(name=f"filter-{time.time_ns()}")
        floor = entity_type_create(name=f"filter-floor-{time.time_ns()}")
        workflow = workflow_create(name="pipeline-filter", entity_type=ours, steps=STEPS)
        entities_insert(ours.pk, count)
        entities_insert(floor.pk, count)
        vacuum()
        single.append(floor_one("entity_type_id = %s AND status = 'draft'", [floor.pk]))
        # The script's 90,000 dead rows vacuumed too: left, they bring autovacuum into the
        # middle of the run (the script, first, never meets the run's).
        vacuum()
        runs.append(_timed_run(client, workflow.pk, {"filter": {"status": "draft"}}))
        expected = count // 10 * 9
        assert _published(ours.pk) == _published(floor.pk) == expected
    return _figures(count, runs, {"one_transaction": single})


def _figures(entities: int, runs: list[float], floors: dict[str, list[float]]) -> dict:
    figures = {
        "entities": entities,
        "repeat": len(runs),
        "run_s": round(statistics.median(runs), 2),
        "runs_s": [round(r, 2) for r in runs],
    }
    for name, times in floors.items():
        ratios = sorted(ours / floor for ours, floor in zip(runs, times, strict=True))
        figures[f"{name}_s"] = round(statistics.median(times), 2)
        figures[f"ratio_{name}"] = round(statistics.median(ratios), 2)
        figures[f"ratios_{name}"] = [round(ratio, 2) for ratio in ratios]
    figures["entities_per_s"] = round(entities / statistics.median(runs))
    return figures


def run(base_url: str, key: str) -> dict:
    from entities.services import entity_type_create
    from workflows.services import workflow_create

    entity_type = entity_type_create(name=f"pipeline-{time.time_ns()}")
    workflow = workflow_create(name="pipeline", entity_type=entity_type, steps=STEPS)
    client = httpx.Client(
        base_url=base_url, headers={"Authorization": f"Bearer {key}"}, timeout=120
    )
    with client:
        run_workflow(client, workflow.pk, make_entities(entity_type, 400))  # warm-up
        ids = by_ids(client, workflow, entity_type)
        flat = {f"ids_{k}": v for k, v in ids.items()}
        flat |= {f"filter_{k}": v for k, v in by_filter(client).items()}
    return flat | {"target_ratio": 3.0}
