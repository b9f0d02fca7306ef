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

from benchmarks.harness import wait_for_run
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
    from jobs.models import Review, Run

    response = client.post(f"/api/v1/workflows/{workflow_id}/run", json={"entityIds": entity_ids})
    response.raise_for_status()
    run_id = response.json()["runId"]
    deadline = time.monotonic() + 900
    while Run.objects.filter(pk=run_id).values_list("waiting", flat=True)[0] < len(entity_ids):
        assert time.monotonic() < deadline, "the entities did not come to wait"
        time.sleep(0.1)
    return run_id, list(Review.objects.filter(run_id=run_id).values_list("pk", flat=True))


def resume(client: httpx.Client, run_id: str, review_ids: list[str]) -> tuple[float, float]:
    """Approve every review through the API, then resume the run (what the resume task the
    first decision asked for does, WAIT_RESUME_DELAY_S later) and wait for its end; the time
    the decisions took and the time the resume took."""
    from jobs.tasks import resume_waits

    started = time.perf_counter()
    for first in range(0, len(review_ids), DECIDE_BATCH):
        response = client.post(
            "/api/v1/reviews/decide",
            json={"ids": review_ids[first : first + DECIDE_BATCH], "decision": "approve"},
        )
        response.raise_for_status()
        assert not response.json()["skipped"], response.json()["skipped"][:3]
    decided = time.perf_counter()
    resume_waits.delay(run_id)
    run = wait_for_run(run_id)
    ended = time.perf_counter()
    assert run.status == "completed" and run.completed == len(review_ids), run.status
    return decided - started, ended - decided


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
        warm_run, warm_reviews = park(client, reviewed.pk, make_entities(entity_type, 400))
        resume(client, warm_run, warm_reviews)  # warm-up: the resume path's first chunk
        parks, decisions, resumes, floors, chunks = [], [], [], [], []
        for _ in range(REPEAT):
            parked_ids, floor_ids = make_entities(entity_type), make_entities(entity_type)
            vacuum()
            started = time.perf_counter()
            run_id, review_ids = park(client, reviewed.pk, parked_ids)
            parks.append(time.perf_counter() - started)
            vacuum()
            floors.append(run_workflow(client, straight.pk, floor_ids))
            decide_s, resume_s = resume(client, run_id, review_ids)
            decisions.append(decide_s)
            resumes.append(resume_s)
            published = Entity.objects.filter(pk__in=parked_ids, status="published").count()
            assert published == ENTITIES, published
            chunks.append(RunItem.objects.filter(run_id=run_id).values("chunk").distinct().count())
    ratios = sorted(ours / floor for ours, floor in zip(resumes, floors, strict=True))
    with_decisions = sorted(
        (decide + ours) / floor
        for decide, ours, floor in zip(decisions, resumes, floors, strict=True)
    )
    return {
        "entities": ENTITIES,
        "repeat": REPEAT,
        "resume_s": round(statistics.median(resumes), 2),
        "from_start_s": round(statistics.median(floors), 2),
        "ratio": round(statistics.median(ratios), 2),
        "ratios": [round(ratio, 2) for ratio in ratios],
        "target_ratio": 1.5,
        "decide_s": round(statistics.median(decisions), 2),
        "decisions_per_s": round(ENTITIES / statistics.median(decisions)),
        "ratio_with_decisions": round(statistics.median(with_decisions), 2),
        "resumed_chunks": chunks,
        "park_s": round(statistics.median(parks), 2),
        "park_ratio": round(statistics.median(parks) / statistics.median(floors), 2),
    }
