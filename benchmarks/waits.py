"""A reviewed run of 10,000 entities as a user meets it, against a run of the same steps
without the review.

A run of transform, validate, review, publish parks its 10,000 entities at the review;
they are approved through the API, 1,000 per `POST /reviews/decide`, one call after
another, and the product resumes them. The figure is the time from its `POST .../run` to
its end (`reviewed_run`, with its parts: parking, deciding, after the decisions). The floor
is a run of the same steps without the review, from its `POST .../run` to its end, on as
many fresh entities. Three turns, each on a freshly vacuumed database; figures are medians.

In the same turns, the scripts' pair: the plain one-transaction script (`pipeline.floor_one`)
and `floor_reviewed`, the least a reviewed run must do beyond it in plain psycopg (reviews
stored, approved 1,000 an UPDATE, the proposals written): their ratio is what the review
costs at its floor."""

import json
import statistics
import time

import httpx
import psycopg

from benchmarks.harness import ENV, _poll_connection, wait_for_run
from benchmarks.pipeline import (
    UPDATE_SQL,
    _transformed,
    floor_one,
    make_entities,
    run_workflow,
    vacuum,
)

ENTITIES = 10_000
REPEAT = 3
DECIDE_BATCH = 1000
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
        "config": {"rules": [{"field": "price", "type": "number", "minimum": 0}]},
    },
    {"id": "review", "type": "review", "config": {"instructions": "Is {{ entity.slug }} right?"}},
    {"id": "pub", "type": "publish", "config": {}},
]


def park(client: httpx.Client, workflow_id: str, entity_ids: list[str]) -> tuple[str, list[str]]:
    """Start the reviewed run and wait until every entity waits; its id and its reviews."""
    from jobs.models import Review

    response = client.post(f"/api/v1/workflows/{workflow_id}/run", json={"entityIds": entity_ids})
    response.raise_for_status()
    run_id = response.json()["runId"]
    deadline = time.monotonic() + 900
    db = _poll_connection()  # as wait_for_run polls: a prepared query of its own
    query = "SELECT waiting FROM jobs_run WHERE id = %s"
    while db.execute(query, [run_id], prepare=True).fetchone()[0] < len(entity_ids):
        assert time.monotonic() < deadline, "the entities did not come to wait"
        time.sleep(0.01)
    return run_id, list(Review.objects.filter(run_id=run_id).values_list("pk", flat=True))


def decide(client: httpx.Client, review_ids: list[str]) -> None:
    """Approve every review through the API, DECIDE_BATCH a call, one call after another."""
    for first in range(0, len(review_ids), DECIDE_BATCH):
        response = client.post(
            "/api/v1/reviews/decide",
            json={"ids": review_ids[first : first + DECIDE_BATCH], "decision": "approve"},
        )
        response.raise_for_status()
        assert not response.json()["skipped"], response.json()["skipped"][:3]


def reviewed_run(client: httpx.Client, workflow_id: str, entity_ids: list[str]) -> dict:
    """A reviewed run as a user meets it: its `POST .../run`, its reviews once every entity
    waits, every one approved, and the run's end (the product resumes it: no task is queued
    here). The times of its parts, from the POST."""
    started = time.perf_counter()
    run_id, review_ids = park(client, workflow_id, entity_ids)
    parked = time.perf_counter()
    decide(client, review_ids)
    decided = time.perf_counter()
    run = wait_for_run(run_id)
    ended = time.perf_counter()
    assert run.status == "completed" and run.completed == len(entity_ids), run.status
    return {
        "total": ended - started,
        "park": parked - started,
        "decide": decided - parked,
        "tail": ended - decided,
        "run_id": run_id,
    }


# The least a review queue holds: a pending review per entity with the run's changes and
# what the reviewer is asked, found by its id and listed pending newest first.
REVIEWS_TABLE = """
DROP TABLE IF EXISTS bench_floor_review;
CREATE TABLE bench_floor_review (
    id text PRIMARY KEY, entity_id text NOT NULL, status text NOT NULL,
    changes jsonb NOT NULL, instructions text NOT NULL, decided_at timestamptz
);
CREATE INDEX bench_floor_review_queue ON bench_floor_review (status, id DESC);
"""


def floor_reviewed(entity_ids: list[str]) -> dict:
    """The reviewed run's floor in plain psycopg: what any implementation must do beyond the
    plain script (`pipeline.floor_one`, timed alike: from before its connection to after
    its close), with nothing else. One transaction reads the entities, transforms them and
    stores a pending review per entity holding the run's changes and its instructions as
    rendered (one COPY); DECIDE_BATCH reviews approved per UPDATE, each its own transaction
    (a person's call); one transaction reads the approved changes with the entities as
    stored now, locked, applies them and writes them (one `executemany`). No run, items,
    waits, checkpoints, revisions, logs or HTTP: the times of its three parts, in seconds."""
    with psycopg.connect(ENV["DATABASE_URL"], autocommit=True) as db:
        db.execute(REVIEWS_TABLE)
    started = time.perf_counter()
    with psycopg.connect(ENV["DATABASE_URL"]) as db:
        with db.transaction():
            rows = db.execute(
                "SELECT id, data FROM entities_entity WHERE id = ANY(%s)", [entity_ids]
            ).fetchall()
            valid = {entity_id for _, entity_id in _transformed(rows, condition=False)}
            reviews = [
                (
                    f"r{entity_id}",
                    entity_id,
                    {"title": data["title"], "slug": data["slug"]},
                    f"Is {data['slug']} right?",
                )
                for entity_id, data in rows
                if entity_id in valid
            ]
            with db.cursor().copy(
                "COPY bench_floor_review (id, entity_id, status, changes, instructions) FROM STDIN"
            ) as copy:
                for review_id, entity_id, changes, instructions in reviews:
                    copy.write_row(
                        (review_id, entity_id, "pending", json.dumps(changes), instructions)
                    )
        parked = time.perf_counter()
        for first in range(0, len(reviews), DECIDE_BATCH):
            with db.transaction():
                db.execute(
                    "UPDATE bench_floor_review SET status = 'approved', decided_at = now() "
                    "WHERE id = ANY(%s) AND status = 'pending'",
                    [[review[0] for review in reviews[first : first + DECIDE_BATCH]]],
                )
        decided = time.perf_counter()
        with db.transaction():
            approved = db.execute(
                "SELECT e.id, e.data, r.changes FROM bench_floor_review AS r "
                "JOIN entities_entity AS e ON e.id = r.entity_id "
                "WHERE r.status = 'approved' AND r.entity_id = ANY(%s) AND e.id = ANY(%s) "
                "FOR UPDATE OF e",
                [entity_ids, entity_ids],
            ).fetchall()
            with db.cursor() as cursor:
                cursor.executemany(
                    UPDATE_SQL,
                    [(json.dumps({**data, **changes}), pk) for pk, data, changes in approved],
                )
    ended = time.perf_counter()
    with psycopg.connect(ENV["DATABASE_URL"], autocommit=True) as db:
        db.execute("DROP TABLE bench_floor_review")
    return {
        "total": ended - started,
        "park": parked - started,
        "decide": decided - parked,
        "tail": ended - decided,
    }


def run(base_url: str, key: str) -> dict:
    from entities.models import Entity
    from entities.services import entity_type_create
    from jobs.models import RunItem
    from workflows.services import workflow_create

    entity_type = entity_type_create(name=f"waits-{time.time_ns()}")
    reviewed = workflow_create(name="reviewed", entity_type=entity_type, steps=STEPS)
    straight = workflow_create(
        name="straight",
        entity_type=entity_type,
        steps=[step for step in STEPS if step["type"] != "review"],
    )
    client = httpx.Client(
        base_url=base_url, headers={"Authorization": f"Bearer {key}"}, timeout=120
    )
    with client:
        reviewed_run(client, reviewed.pk, make_entities(entity_type, 400))  # warm-up
        run_workflow(client, straight.pk, make_entities(entity_type, 400))
        turns, floors, chunks, scripts = [], [], [], []
        for _ in range(REPEAT):
            parked_ids, floor_ids = make_entities(entity_type), make_entities(entity_type)
            plain_ids, script_ids = make_entities(entity_type), make_entities(entity_type)
            vacuum()
            floors.append(run_workflow(client, straight.pk, floor_ids))
            vacuum()
            turn = reviewed_run(client, reviewed.pk, parked_ids)
            turns.append(turn)
            vacuum()
            script = floor_reviewed(script_ids)
            vacuum()
            script["plain"] = floor_one("id = ANY(%s)", [plain_ids], condition=False)
            scripts.append(script)
            for ids in (parked_ids, plain_ids, script_ids):
                published = Entity.objects.filter(pk__in=ids, status="published").count()
                assert published == ENTITIES, published
            chunks.append(
                RunItem.objects.filter(run_id=turn["run_id"]).values("chunk").distinct().count()
            )
    ratios = sorted(turn["total"] / floor for turn, floor in zip(turns, floors, strict=True))
    script_ratios = sorted(script["total"] / script["plain"] for script in scripts)

    def median(part: str, of: list[dict] = turns) -> float:
        return round(statistics.median(turn[part] for turn in of), 2)

    return {
        "entities": ENTITIES,
        "repeat": REPEAT,
        "reviewed_s": median("total"),
        "from_start_s": round(statistics.median(floors), 2),
        "ratio": round(statistics.median(ratios), 2),
        "ratios": [round(ratio, 2) for ratio in ratios],
        "target_ratio": 1.5,
        "park_s": median("park"),
        "decide_s": median("decide"),
        "decisions_per_s": round(ENTITIES / statistics.median(t["decide"] for t in turns)),
        "after_decisions_s": median("tail"),
        "turns": [{k: round(v, 2) for k, v in turn.items() if k != "run_id"} for turn in turns],
        "floors": [round(floor, 2) for floor in floors],
        "chunks": chunks,
        # The scripts' reviewed run against their plain one: what the review costs at its
        # floor, and how much of the target's allowance (half the plain run) it takes.
        "script_reviewed_s": median("total", scripts),
        "script_plain_s": median("plain", scripts),
        "script_ratio": round(statistics.median(script_ratios), 2),
        "script_ratios": [round(ratio, 2) for ratio in script_ratios],
        "script_parts_s": {part: median(part, scripts) for part in ("park", "decide", "tail")},
    }
