"""What batch mode saves: the cost of a 1,000-entity `ai_generate` run in `mode: batch`
against the same run in `mode: sync`, on the same token counts.

Both runs use the local stand-in under a priced model name (`AI_PRICES`, the prices of a
small hosted model), so each call's tokens are the same in both modes and only the pricing
differs: the figure is the engine's accounting (what the run records as its cost), with the
batches really submitted, polled (the beat's task, sent every half second) and resumed by
the workers. Time is reported, not a target: a batch run waits for its provider (here
AI_LOCAL_BATCH_DELAY_S, for a real provider up to 24 h)."""

import time

import httpx

from benchmarks.harness import PRICED_MODEL, wait_for_run
from benchmarks.pipeline import make_entities

ENTITIES = 1_000
TARGET_RATIO = 0.55


def _steps(mode: str) -> list[dict]:
    return [
        {
            "id": "describe",
            "type": "ai_generate",
            "config": {
                "prompt": "Write a two-sentence description of {{ entity.title }} by "
                "{{ entity.brand }} (price {{ entity.price }}).",
                "system": "You write concise, factual e-commerce copy.",
                "outputField": "description",
                "model": PRICED_MODEL,
                "maxTokens": 60,
                "mode": mode,
            },
        },
        {"id": "pub", "type": "publish", "config": {}},
    ]


def _run(client: httpx.Client, workflow_id: str, entity_ids: list[str], *, batch: bool):
    from jobs.models import Run
    from jobs.tasks import resume_waits, tick_waits

    started = time.perf_counter()
    response = client.post(f"/api/v1/workflows/{workflow_id}/run", json={"entityIds": entity_ids})
    response.raise_for_status()
    run_id = response.json()["runId"]
    if batch:
        # What celery beat does every AI_BATCH_POLL_S; then the resume the first resolution
        # asked for (the harness sets WAIT_RESUME_DELAY_S far off, for the waits benchmark).
        deadline = time.monotonic() + 900
        while True:
            run = Run.objects.get(pk=run_id)
            if run.total and run.waiting == 0 and run.completed + run.failed == run.total:
                break
            if run.waiting and not run.batches.filter(status__in=["pending", "in_progress"]):
                resume_waits.delay(run_id)
            tick_waits.delay()
            assert time.monotonic() < deadline, "the batch run did not end"
            time.sleep(0.5)
    run = wait_for_run(run_id)
    assert (run.status, run.completed) == ("completed", len(entity_ids)), run.status
    return run, time.perf_counter() - started


def run(base_url: str, key: str) -> dict:
    from entities.services import entity_type_create
    from workflows.services import workflow_create

    entity_type = entity_type_create(name=f"batch-cost-{time.time_ns()}")
    sync = workflow_create(name="sync", entity_type=entity_type, steps=_steps("sync"))
    batch = workflow_create(name="batch", entity_type=entity_type, steps=_steps("batch"))
    client = httpx.Client(
        base_url=base_url, headers={"Authorization": f"Bearer {key}"}, timeout=120
    )
    with client:
        sync_run, sync_s = _run(client, sync.pk, make_entities(entity_type, ENTITIES), batch=False)
        batch_run, batch_s = _run(
            client, batch.pk, make_entities(entity_type, ENTITIES), batch=True
        )
    tokens = (sync_run.input_tokens, sync_run.output_tokens)
    assert (batch_run.input_tokens, batch_run.output_tokens) == tokens, "token counts differ"
    return {
        "entities": ENTITIES,
        "model": PRICED_MODEL,
        "input_tokens": tokens[0],
        "output_tokens": tokens[1],
        "sync_cost_usd": sync_run.cost_usd,
        "batch_cost_usd": batch_run.cost_usd,
        "ratio": round(batch_run.cost_nano_usd / sync_run.cost_nano_usd, 4),
        "target_ratio": TARGET_RATIO,
        "provider_batches": batch_run.batches.count(),
        "sync_s": round(sync_s, 2),
        "batch_s": round(batch_s, 2),
    }
