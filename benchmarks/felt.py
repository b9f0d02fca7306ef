"""Runs and model calls measured as a user meets them (issue #29): through gunicorn (2
workers) and one Celery worker of 2 processes, PostgreSQL and Redis on loopback, the workers
warmed by a first run of WARM_UP entities, every run timed from its `POST .../run` to the
run's own `completedAt`, on fresh entities every turn (no vacuum between turns), against the
one-transaction psycopg script (`pipeline.floor_one`: the same rows read `FOR UPDATE`, the
same transformations in Python, one `executemany` in one transaction); medians of REPEAT
turns, each turn's ratio listed.

- `ids`: 10,000 entities by ids (transform, validate, condition, publish) vs the script;
- `filter`: 100,000 entities by filter vs the script on 100,000;
- `calls`: the workers' CPU per model call (every worker process, user + system, from
  /proc) vs the OpenAI SDK alone in 32 threads, warm (a run after the first) and cold (the
  first run after the worker started), 800 calls to the benchmarks' 100 ms server.

    python -m benchmarks --only felt
    python -m benchmarks.felt [ids,filter,calls]     # alone, with its own web and worker

The helpers (`api_client`, `timed_run`, `turns_figures`, `warm_up`) are what other
measurements of runs "as a user meets them" build on (the review and resume rows of #29,
the revisions of #25)."""

import datetime
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from benchmarks import ai_concurrency, harness
from benchmarks.pipeline import STEPS, entities_insert, floor_one, make_entities

ENTITIES = 10_000
FILTER_ENTITIES = 100_000
REPEAT = 3
WARM_UP = 800
CALLS = ai_concurrency.CALLS
CALL_CONCURRENCY = 32
TARGETS = {"ids": 2.0, "filter": 2.0, "calls_warm": 1.25, "calls_cold": 1.5}


def api_client(base_url: str, key: str) -> httpx.Client:
    """Made once, as an API consumer's is (building one costs more than some chunks)."""
    return httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {key}"}, timeout=300)


def timed_run(client: httpx.Client, path: str, body: dict, timeout: float = 900) -> float:
    """POST `path` (a run, a revert: anything answering `runId`), wait for that run to end
    completed, and return the seconds from just before the POST to the run's `completedAt`
    (the worker's clock, this machine's)."""
    started = time.time()
    response = client.post(path, json=body)
    response.raise_for_status()
    run = harness.wait_for_run(response.json()["runId"], timeout=timeout)
    assert run.status == "completed", (run.status, run.error)
    return run.completed_at.timestamp() - started


def run_path(workflow_id: str) -> str:
    return f"/api/v1/workflows/{workflow_id}/run"


def turns_figures(runs: list[float], floors: list[float], target: float) -> dict:
    """Medians of the turns and of their ratios (each turn's ratio listed, sorted)."""
    ratios = sorted(ours / floor for ours, floor in zip(runs, floors, strict=True))
    return {
        "run_s": round(statistics.median(runs), 3),
        "runs_s": [round(value, 3) for value in runs],
        "floor_s": round(statistics.median(floors), 3),
        "floors_s": [round(value, 3) for value in floors],
        "ratio": round(statistics.median(ratios), 2),
        "ratios": [round(ratio, 2) for ratio in ratios],
        "target": target,
    }


def _workflow(name: str):
    from entities.services import entity_type_create
    from workflows.services import workflow_create

    entity_type = entity_type_create(name=f"{name}-{time.time_ns()}")
    return entity_type, workflow_create(name=name, entity_type=entity_type, steps=STEPS)


def warm_up(client: httpx.Client) -> None:
    """A first run of WARM_UP entities: the workers' first tasks open their connections
    and compile the templates, once in their life."""
    entity_type, workflow = _workflow("felt-warm")
    timed_run(client, run_path(workflow.pk), {"entityIds": make_entities(entity_type, WARM_UP)})


def by_ids(client: httpx.Client, count: int = ENTITIES, repeat: int = REPEAT) -> dict:
    """`count` entities by ids vs the script on as many, fresh ones every turn."""
    entity_type, workflow = _workflow("felt-ids")
    runs, floors = [], []
    for _ in range(repeat):
        ours, theirs = make_entities(entity_type, count), make_entities(entity_type, count)
        floors.append(floor_one("id = ANY(%s)", [theirs]))
        runs.append(timed_run(client, run_path(workflow.pk), {"entityIds": ours}))
    return {"entities": count, **turns_figures(runs, floors, TARGETS["ids"])}


def by_filter(client: httpx.Client, count: int = FILTER_ENTITIES, repeat: int = REPEAT) -> dict:
    """`count` entities by filter (`{"status": "draft"}` over a fresh entity type) vs the
    script reading the same rows by the same columns."""
    runs, floors = [], []
    for _ in range(repeat):
        entity_type, workflow = _workflow("felt-filter")
        floor_type, _ = _workflow("felt-filter-floor")
        entities_insert(entity_type.pk, count)
        entities_insert(floor_type.pk, count)
        floors.append(floor_one("entity_type_id = %s AND status = 'draft'", [floor_type.pk]))
        runs.append(timed_run(client, run_path(workflow.pk), {"filter": {"status": "draft"}}))
    return {"entities": count, **turns_figures(runs, floors, TARGETS["filter"])}


def model_calls(log_dir: Path, repeat: int = REPEAT) -> dict:
    """CPU per model call, cold and warm, against the bare SDK: each turn starts a worker of
    2 processes (AI_MAX_CONCURRENCY 32 each), measures the SDK alone, the worker's first
    run (cold), the SDK again, and a second run (warm), CALLS calls each."""
    from django.conf import settings

    from entities.services import entity_type_create
    from workflows.services import workflow_create

    port = ai_concurrency._free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.llm_server", str(port), str(ai_concurrency.LATENCY_S)],
        stdout=subprocess.PIPE,
        text=True,
    )
    cold, warm, bare_cold, bare_warm = [], [], [], []
    try:
        assert server.stdout.readline().strip() == "ready"
        base_url = f"http://127.0.0.1:{port}/v1"
        settings.AI_RUN_CHUNK_SIZE = 4 * CALL_CONCURRENCY  # the runs start in this process
        settings.OPENAI_BASE_URL = base_url  # a provider not set up is a 400 at create
        entity_type = entity_type_create(name=f"felt-calls-{time.time_ns()}")
        workflow = workflow_create(name="calls", entity_type=entity_type, steps=[_AI_STEP])
        for turn in range(repeat):
            metrics = tempfile.mkdtemp(prefix="bench-metrics-")
            worker = harness.start_worker(
                log_dir,
                ai_concurrency.WORKER_PROCESSES,
                env={
                    "AI_MAX_CONCURRENCY": str(CALL_CONCURRENCY),
                    "OPENAI_BASE_URL": base_url,
                    "PROMETHEUS_MULTIPROC_DIR": metrics,
                },
                name=f"calls-worker-{turn}",
            )
            try:
                for sdk, ours in ((bare_cold, cold), (bare_warm, warm)):
                    sdk.append(ai_concurrency._bare_sdk(base_url, CALL_CONCURRENCY)["cpu_s"])
                    ours.append(
                        ai_concurrency._turn(
                            worker,
                            workflow.pk,
                            make_entities(entity_type, CALLS),
                            metrics,
                            server.pid,
                        )["cpu"]
                    )
            finally:
                worker.stop()
    finally:
        server.kill()
    figures = {"calls": CALLS, "concurrency": CALL_CONCURRENCY}
    for name, ours, sdk in (("warm", warm, bare_warm), ("cold", cold, bare_cold)):
        ratios = sorted(o / s for o, s in zip(ours, sdk, strict=True))
        figures[name] = {
            "workers_cpu_ms_per_call": round(statistics.median(ours) * 1000 / CALLS, 3),
            "sdk_cpu_ms_per_call": round(statistics.median(sdk) * 1000 / CALLS, 3),
            "ratio": round(statistics.median(ratios), 2),
            "ratios": [round(ratio, 2) for ratio in ratios],
            "target": TARGETS[f"calls_{name}"],
        }
    return figures


_AI_STEP = ai_concurrency.STEP


def load_average() -> list[float]:
    return [float(value) for value in Path("/proc/loadavg").read_text().split()[:3]]


def run(base_url: str, key: str, log_dir: Path, rows: tuple[str, ...] = ("ids", "filter", "calls")):
    """The rows asked for, on the suite's web server and a worker of this benchmark's own
    (started after the suite's, so the first runs it sees are these)."""
    figures: dict = {"at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")}
    figures["load_before"] = load_average()
    if {"ids", "filter"} & set(rows):
        worker = harness.start_worker(log_dir, name="felt-worker")
        try:
            with api_client(base_url, key) as client:
                warm_up(client)
                if "ids" in rows:
                    figures["ids"] = by_ids(client)
                if "filter" in rows:
                    figures["filter"] = by_filter(client)
        finally:
            worker.stop()
    if "calls" in rows:
        figures["calls"] = model_calls(log_dir)
    figures["load_after"] = load_average()
    return figures


if __name__ == "__main__":
    harness.setup_database()
    harness.django_setup()
    from config.api.services import api_key_create, api_user_get_or_create

    chosen = tuple(sys.argv[1].split(",")) if len(sys.argv) > 1 else ("ids", "filter", "calls")
    bench_key = api_key_create(user=api_user_get_or_create(username="bench"))[1]
    logs = Path(tempfile.mkdtemp(prefix="bench-"))
    web = harness.start_web(logs)
    try:
        result = run(f"http://127.0.0.1:{harness.PORT}", bench_key, logs, chosen)
    finally:
        web.stop()
    print(json.dumps(result, indent=2))
