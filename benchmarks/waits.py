"""Resuming 10,000 approved entities, against a run of the same steps from the start.

A run of transform, validate, review, publish parks its 10,000 entities at the review;
then they are approved through the API, 1,000 per `POST /reviews/decide`; then the run is
resumed. The figure is the time from the resume to the run's end: the resume task moving
the items back into chunks, the chunks claiming them from their checkpoints and
publishing. The floor is a run of the same steps without the review, from its
`POST .../run` to its end, on as many fresh entities. Parking and deciding are timed on
their own. Three turns, each on a freshly vacuumed database; figures are medians."""

import statistics
import time

import httpx

from benchmarks.harness import _poll_connection, wait_for_run
from benchmarks.pipeline import make_entities, run_workflow, vacuum

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
        turns, floors, chunks = [], [], []
        for _ in range(REPEAT):
            parked_ids, floor_ids = make_entities(entity_type), make_entities(entity_type)
            vacuum()
            floors.append(run_workflow(client, straight.pk, floor_ids))
            vacuum()
            turn = reviewed_run(client, reviewed.pk, parked_ids)
            turns.append(turn)
            published = Entity.objects.filter(pk__in=parked_ids, status="published").count()
            assert published == ENTITIES, published
            chunks.append(
                RunItem.objects.filter(run_id=turn["run_id"]).values("chunk").distinct().count()
            )
    ratios = sorted(turn["total"] / floor for turn, floor in zip(turns, floors, strict=True))

    def median(part: str) -> float:
        return round(statistics.median(turn[part] for turn in turns), 2)

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
    }
