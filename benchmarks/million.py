"""Peak memory over a run of 1,000,000 entities by filter, against a run of 10,000: the web
process and each worker process must not grow with the number of entities a run takes.

Optional (about 5-10 minutes here): `python -m benchmarks --only million`. It starts a web
server and a worker of its own, so that their peaks owe nothing to the other benchmarks; the
entities are inserted by one SQL statement. Each run is started by `POST .../run` with a
filter and watched as a user would, polling `GET .../runs/:id` through the web server every
half second, after a warm-up (a small run, its page read 200 times: the requests the
largest run's watch makes). Peaks are each process's `VmHWM` (highest RSS since it
started), read after each run: the 1,000,000 run's against the 10,000 run's, process by
process, and against a 100,000 run's in between. That middle run tells a fixed warm-up (a
code path first taken) from a cost per entity: 100,000 and 1,000,000 entities run in chunks
of the same size (`RUN_CHUNK_SIZE_MAX`), so what grows from one to the other grows with the
run, while a 10,000 run's chunks are smaller (`RUN_CHUNK_SIZE`)."""

import time
from pathlib import Path

import httpx

from benchmarks import harness
from benchmarks.memory import _rss_kb
from benchmarks.pipeline import STEPS, entities_insert, vacuum

SIZES = (10_000, 100_000, 1_000_000)
PORT_OFFSET = 1  # its own web server, beside the suite's
WARM_UP_POLLS = 200


def _watch(client: httpx.Client, workflow_id: str, timeout: float = 1800) -> tuple[float, dict]:
    started = time.perf_counter()
    response = client.post(
        f"/api/v1/workflows/{workflow_id}/run", json={"filter": {"status": "draft"}}
    )
    response.raise_for_status()
    run_id = response.json()["runId"]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = client.get(f"/api/v1/workflows/{workflow_id}/runs/{run_id}").raise_for_status()
        if run.json()["status"] not in ("pending", "running"):
            return time.perf_counter() - started, run.json()
        time.sleep(0.5)
    raise AssertionError(f"Run {run_id} did not end within {timeout}s.")


def _warm_up(client: httpx.Client, polls: int = WARM_UP_POLLS) -> None:
    """A 400-entity run, then its page read `polls` times: the web workers serve as many
    requests as the 1,000,000 run's watch will (about two a second), so their first-use
    growth (allocator arenas, caches) is not charged to the larger runs."""
    from entities.services import entity_type_create
    from workflows.services import workflow_create

    entity_type = entity_type_create(name=f"million-warm-{time.time_ns()}")
    workflow = workflow_create(name="million-warm", entity_type=entity_type, steps=STEPS)
    entities_insert(entity_type.pk, 400)
    _, body = _watch(client, workflow.pk)
    for _ in range(polls):
        client.get(f"/api/v1/workflows/{workflow.pk}/runs/{body['id']}").raise_for_status()


def _peaks(process: harness.ManagedProcess) -> dict[str, float]:
    """Peak and current RSS (MB) of a process and each of its children, by role."""
    pids = {"main": process.process.pid} | {
        f"child{index}": pid for index, pid in enumerate(sorted(process.child_pids()))
    }
    return {
        role: {k: round(v / 1024, 1) for k, v in _rss_kb(pid).items()} for role, pid in pids.items()
    }


def run(key: str, log_dir: Path) -> dict:
    from entities.services import entity_type_create
    from workflows.services import workflow_create

    port = harness.PORT + PORT_OFFSET
    logs = log_dir / "million"
    logs.mkdir(exist_ok=True)
    web = harness.start_web(logs, port=port)
    worker = harness.start_worker(logs)
    samples = []
    try:
        headers = {"Authorization": f"Bearer {key}"}
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=headers, timeout=120) as c:
            _warm_up(c)
            for size in SIZES:
                entity_type = entity_type_create(name=f"million-{size}-{time.time_ns()}")
                workflow = workflow_create(name="million", entity_type=entity_type, steps=STEPS)
                started = time.perf_counter()
                entities_insert(entity_type.pk, size)
                vacuum()
                setup_s = time.perf_counter() - started
                elapsed, body = _watch(c, workflow.pk)
                assert body["status"] == "completed", body
                samples.append(
                    {
                        "entities": size,
                        "setup_s": round(setup_s, 1),
                        "run_s": round(elapsed, 1),
                        "entities_per_s": round(size / elapsed),
                        "web": _peaks(web),
                        "worker": _peaks(worker),
                    }
                )
    finally:
        worker.stop()
        web.stop()
    small, middle, large = samples
    growth, growth_from_middle = _growth(small, large), _growth(middle, large)
    return {
        "samples": samples,
        "peak_growth": growth,
        "max_peak_growth": max(growth.values()),
        "peak_growth_from_100000": growth_from_middle,
        "max_peak_growth_from_100000": max(growth_from_middle.values()),
    }


def _growth(before: dict, after: dict) -> dict[str, float]:
    """Each process's peak RSS after the `after` run over its peak after the `before` run."""
    return {
        f"{side}.{role}": round(after[side][role]["VmHWM"] / before[side][role]["VmHWM"], 3)
        for side in ("web", "worker")
        for role in before[side]
        if role in after[side]
    }
