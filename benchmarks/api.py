"""`GET /api/v1/workflows` with 1,000 workflows of 10 steps: queries per request, and latency
under load against a trivial DRF endpoint (same auth and permission check) in the same server."""

import time

from django.db import connection
from django.test.utils import CaptureQueriesContext

from benchmarks.harness import load

WORKFLOWS = 1_000
STEPS = [
    {"type": "transform", "config": {"operations": [{"op": "set", "field": f"f{i}", "value": i}]}}
    for i in range(10)
]


def run(base_url: str, key: str) -> dict:
    from entities.services import entity_type_create
    from workflows.services import workflow_create

    entity_type = entity_type_create(name=f"api-{time.time_ns()}")
    for index in range(WORKFLOWS):
        workflow_create(name=f"workflow {index}", entity_type=entity_type, steps=STEPS)

    from rest_framework.test import APIClient

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    client.get("/api/v1/workflows")
    queries = {}
    for limit in (50, 500):
        with CaptureQueriesContext(connection) as captured:
            assert client.get(f"/api/v1/workflows?limit={limit}").status_code == 200
        queries[limit] = len(captured)

    headers = {"Authorization": f"Bearer {key}"}
    load(f"{base_url}/bench/trivial", headers, requests=100, concurrency=4)  # warm up
    trivial = load(f"{base_url}/bench/trivial", headers, requests=1000, concurrency=8)
    workflows = load(f"{base_url}/api/v1/workflows", headers, requests=1000, concurrency=8)
    return {
        "workflows": WORKFLOWS,
        "queries_limit_50": queries[50],
        "queries_limit_500": queries[500],
        "trivial": trivial,
        "list": workflows,
        "ratio_p50": round(workflows["p50_ms"] / trivial["p50_ms"], 2),
        "ratio_rps": round(trivial["rps"] / workflows["rps"], 2),
        "target_ratio": 2.0,
    }
