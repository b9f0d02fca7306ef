"""Worker memory over 100,000 entities (10 runs of 10,000): it must not grow with the number
of entities processed."""

import time
from pathlib import Path

from benchmarks.harness import wait_for_run

RUNS = 10
ENTITIES = 10_000
STEPS = [
    {
        "type": "transform",
        "config": {
            "operations": [
                {"op": "set", "field": "slug", "value": "{{ entity.title }}"},
                {"op": "slugify", "field": "slug"},
            ]
        },
    },
    {
        "type": "ai_generate",
        "config": {"prompt": "Describe {{ entity.title }}", "outputField": "description"},
    },
    {"type": "publish", "config": {}},
]


def _rss_kb(pid: int) -> dict:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0])
    return fields


def run(worker) -> dict:
    from entities.services import entities_bulk_create, entity_type_create
    from jobs.services import run_start
    from workflows.services import workflow_create

    entity_type = entity_type_create(name=f"memory-{time.time_ns()}")
    ids = entities_bulk_create(
        entity_type=entity_type,
        items=[{"data": {"title": f"Item {i}", "body": "x" * 200}} for i in range(ENTITIES)],
    )
    workflow = workflow_create(name="memory", entity_type=entity_type, steps=STEPS)
    samples = []
    for index in range(RUNS):
        run = wait_for_run(run_start(workflow_id=workflow.pk, entity_ids=ids).pk)
        assert run.status == "completed", run.status
        rss = [_rss_kb(pid) for pid in worker.child_pids()]
        samples.append(
            {
                "after_entities": (index + 1) * ENTITIES,
                "max_rss_mb": round(max(r["VmRSS"] for r in rss) / 1024, 1),
                "max_peak_mb": round(max(r["VmHWM"] for r in rss) / 1024, 1),
            }
        )
    return {
        "runs": RUNS,
        "entities": RUNS * ENTITIES,
        "samples": samples,
        "peak_growth_after_first_run": round(
            samples[-1]["max_peak_mb"] / samples[0]["max_peak_mb"], 3
        ),
    }
