"""Paging a 60,000-line job log: the first page and the last."""

import statistics
import time

LINES = 60_000
REPEAT = 20


def run(base_url: str, key: str) -> dict:
    from rest_framework.test import APIClient

    from config.api.pagination import _encode
    from entities.services import entities_bulk_create, entity_type_create
    from jobs.models import RunLog
    from jobs.services import run_start
    from workflows.services import workflow_create

    entity_type = entity_type_create(name=f"logs-{time.time_ns()}")
    ids = entities_bulk_create(entity_type=entity_type, items=[{"data": {}}])
    workflow = workflow_create(
        name="logs", entity_type=entity_type, steps=[{"type": "publish", "config": {}}]
    )
    run = run_start(workflow_id=workflow.pk, entity_ids=ids)
    RunLog.objects.bulk_create(
        (
            RunLog(
                run=run,
                level="warning" if i % 3 else "info",
                message=f"line {i}",
                entity_id=f"ent_{i % 500}",
            )
            for i in range(LINES)
        ),
        batch_size=5000,
    )
    pks = list(RunLog.objects.filter(run=run).order_by("-pk").values_list("pk", flat=True))
    last_cursor = _encode(pks[-51])  # the page after it holds the oldest 50 lines

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    url = f"/api/v1/jobs/{run.job.pk}/logs"

    def timed(path: str) -> float:
        times = []
        for _ in range(REPEAT):
            started = time.perf_counter()
            response = client.get(path)
            times.append(time.perf_counter() - started)
            assert response.status_code == 200 and len(response.json()) == 50
        return statistics.median(times)

    first, last = timed(url), timed(f"{url}?cursor={last_cursor}")
    first_warning = timed(f"{url}?level=warning")
    return {
        "lines": LINES,
        "first_page_ms": round(first * 1000, 2),
        "last_page_ms": round(last * 1000, 2),
        "ratio_last_to_first": round(last / first, 2),
        "first_page_level_filter_ms": round(first_warning * 1000, 2),
    }
