"""An experiment's arm against a plain run of the same version.

A workflow of ai_generate (the local stand-in model: no network), transform, validate and
publish over 1,000 entities: the time of a plain run from its `POST .../run` to its end,
against an experiment of that version against itself (no scorer) from its `POST
.../experiments` to its end, halved (it runs both arms). Three turns; figures are medians."""

import statistics
import time

import httpx

from benchmarks.harness import _poll_connection, wait_for_run
from benchmarks.pipeline import make_entities, vacuum

ENTITIES = 1000
REPEAT = 3
STEPS = [
    {
        "id": "gen",
        "type": "ai_generate",
        "config": {"prompt": "Describe {{ entity.title }}", "outputField": "description"},
    },
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
    {"id": "pub", "type": "publish", "config": {}},
]


def wait_for_experiment(experiment_id: str, timeout: float = 900) -> str:
    db = _poll_connection()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        [status] = db.execute(
            "SELECT status FROM jobs_experiment WHERE id = %s", [experiment_id], prepare=True
        ).fetchone()
        if status in ("completed", "failed", "cancelled"):
            return status
        time.sleep(0.01)
    raise AssertionError(f"Experiment {experiment_id} did not end within {timeout}s.")


def run(base_url: str, key: str) -> dict:
    from entities.services import entity_type_create
    from workflows.services import workflow_create

    client = httpx.Client(
        base_url=base_url, headers={"Authorization": f"Bearer {key}"}, timeout=120
    )
    runs, arms = [], []
    for turn in range(REPEAT):
        entity_type = entity_type_create(name=f"bench-exp-{turn}-{time.time_ns()}", schema={})
        workflow = workflow_create(name=f"bench-exp-{turn}", entity_type=entity_type, steps=STEPS)
        shadowed = make_entities(entity_type, ENTITIES)
        ran = make_entities(entity_type, ENTITIES)
        vacuum()
        started = time.perf_counter()
        response = client.post(
            f"/api/v1/workflows/{workflow.pk}/experiments",
            json={"baseline": 1, "candidate": 1, "entityIds": shadowed, "scorers": []},
        )
        response.raise_for_status()
        assert wait_for_experiment(response.json()["id"]) == "completed"
        arms.append((time.perf_counter() - started) / 2)
        started = time.perf_counter()
        response = client.post(f"/api/v1/workflows/{workflow.pk}/run", json={"entityIds": ran})
        response.raise_for_status()
        assert wait_for_run(response.json()["runId"]).status == "completed"
        runs.append(time.perf_counter() - started)
    ratios = [arm / plain for arm, plain in zip(arms, runs, strict=True)]
    return {
        "entities": ENTITIES,
        "arm_s": round(statistics.median(arms), 3),
        "run_s": round(statistics.median(runs), 3),
        "ratio": round(statistics.median(ratios), 2),
        "ratios": [round(ratio, 2) for ratio in ratios],
    }
