"""Model calls through real workers, against the bare OpenAI SDK, in the same run.

An OpenAI-compatible server in its own process answers every call in 100 ms. At each
AI_MAX_CONCURRENCY (32, 64):

- the floor: the official SDK alone (`benchmarks.bare_sdk`, its own process), CALLS calls
  from as many threads as the concurrency, one client; its CPU time per call;
- ours: a run of CALLS entities through one `ai_generate` step on a Celery worker of
  WORKER_PROCESSES processes (warmed up by a run first), started as the API starts one.
  The two take REPEAT turns, so that both see the same load; the figures are medians.
  The workers' CPU is the sum over the worker's processes (from /proc) across the run; the
  calls each process made are read from its own Prometheus file (multiprocess mode).

Figures: CPU per call and its ratio to the SDK's (aim <= 1.5x); calls in flight on average
(calls x latency / wall time) against AI_MAX_CONCURRENCY (aim >= 0.75) and against what the
processes together may keep in flight; the calls of each worker process (aim: all share);
the fake server's own CPU per call, which shares the machine's cores.
"""

import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.harness import start_worker, wait_for_run

CALLS = 800
REPEAT = 3
LATENCY_S = 0.1
# BENCH_AI_CONCURRENCIES=32 measures one of them.
CONCURRENCIES = tuple(
    int(each) for each in os.environ.get("BENCH_AI_CONCURRENCIES", "32,64").split(",")
)
WORKER_PROCESSES = 2
STEP = {
    "id": "gen",
    "type": "ai_generate",
    "config": {
        "prompt": "Describe {{ entity.title }}",
        "outputField": "description",
        "provider": "openai",
        "model": "gpt-5-mini",
    },
}
TICKS = os.sysconf("SC_CLK_TCK")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _cpu_s(pids: list[int]) -> float:
    """User and system CPU seconds of the processes (fields 14 and 15 of /proc/PID/stat)."""
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total / TICKS


def _calls_by_pid(metrics_dir: str) -> dict[tuple[int, str], float]:
    """Model calls (attempts) counted in each process's Prometheus file, by (pid, outcome)."""
    from prometheus_client.mmap_dict import MmapedDict

    calls = {}
    for path in Path(metrics_dir).glob("counter_*.db"):
        pid = int(path.stem.split("_")[1])
        for key, value, _timestamp, _pos in MmapedDict.read_all_values_from_file(str(path)):
            _metric, name, labels, _help = json.loads(key)
            if name == "workflows_model_calls_total":
                calls[pid, labels["outcome"]] = calls.get((pid, labels["outcome"]), 0) + value
    return calls


def _bare_sdk(base_url: str, concurrency: int) -> dict:
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.bare_sdk", base_url, str(CALLS), str(concurrency)],
        capture_output=True,
        text=True,
    )
    if done.returncode:
        raise RuntimeError(f"benchmarks.bare_sdk failed:\n{done.stderr}")
    return json.loads(done.stdout)


def _run(workflow_id: str, entity_ids: list[str]) -> float:
    """A run's wall time, from its start (as the API starts one) to its end."""
    from jobs.services import run_start

    started = time.perf_counter()
    run = run_start(workflow_id=workflow_id, entity_ids=entity_ids)
    run = wait_for_run(run.pk, timeout=300)
    elapsed = time.perf_counter() - started
    assert run.status == "completed", (run.status, run.error)
    return elapsed


def _turn(worker, workflow_id, entity_ids, metrics_dir, server_pid) -> dict:
    """One run of the entities on the warm worker: its wall time, the worker's and the
    server's CPU seconds across it, and the attempts each worker process made, by outcome."""
    pids = [worker.process.pid, *worker.child_pids()]
    calls_before, cpu, server_cpu = _calls_by_pid(metrics_dir), _cpu_s(pids), _cpu_s([server_pid])
    began = time.time()
    wall = _run(workflow_id, entity_ids)
    ended = time.time()
    attempts = {
        key: round(count - calls_before.get(key, 0))
        for key, count in _calls_by_pid(metrics_dir).items()
    }
    calls = {pid: count for (pid, outcome), count in attempts.items() if outcome == "ok"}
    assert sum(calls.values()) == CALLS, attempts
    return {
        "wall": wall,
        "cpu": _cpu_s(pids) - cpu,
        "server_cpu": _cpu_s([server_pid]) - server_cpu,
        "calls": sorted(count for count in calls.values() if count),
        "retried": sum(count for (_pid, outcome), count in attempts.items() if outcome != "ok"),
        "timeline": _timeline(began, ended),
    }


def _timeline(began: float, ended: float) -> dict | None:
    """From the server's in-flight samples (BENCH_AI_TIMELINE): the seconds of the run with
    no call in flight, with at most 32, and with more, and when the first call came."""
    path = os.environ.get("BENCH_AI_TIMELINE")
    if not path:
        return None
    time.sleep(0.6)  # the server flushes its samples every half second
    samples = [
        (float(at), int(count))
        for at, count in (line.split() for line in Path(path).read_text().splitlines())
    ]
    samples = [sample for sample in samples if began <= sample[0] <= ended]
    spans = {"none": 0.0, "1-32": 0.0, "33-64": 0.0}
    for (at, count), (after, _) in zip(samples, [*samples[1:], (ended, 0)], strict=True):
        spans["none" if count == 0 else "1-32" if count <= 32 else "33-64"] += after - at
    first = next((at - began for at, count in samples if count), None)
    last = next((ended - at for at, count in reversed(samples) if count), None)
    return {
        "first_call_s": first and round(first, 3),
        "after_last_call_s": last and round(last, 3),
        **{name: round(seconds, 3) for name, seconds in spans.items()},
    }


def _measure(concurrency: int, base_url: str, log_dir: Path, server_pid: int) -> dict:
    from django.conf import settings

    from benchmarks.pipeline import make_entities
    from entities.services import entity_type_create
    from workflows.services import workflow_create

    metrics_dir = tempfile.mkdtemp(prefix="bench-metrics-")
    # AI_RUN_CHUNK_SIZE's default at this concurrency; BENCH_AI_CHUNK_FACTOR tries others,
    # BENCH_AI_CHUNK_SIZE=400 measures as before AI_RUN_CHUNK_SIZE (RUN_CHUNK_SIZE's chunks).
    factor = int(os.environ.get("BENCH_AI_CHUNK_FACTOR", "16"))
    chunk = int(os.environ.get("BENCH_AI_CHUNK_SIZE", factor * concurrency))
    settings.AI_RUN_CHUNK_SIZE = chunk  # the run is started here, as the web process would
    settings.OPENAI_BASE_URL = base_url  # a provider not set up is a 400 at create
    worker = start_worker(
        log_dir,
        WORKER_PROCESSES,
        env={
            "AI_MAX_CONCURRENCY": str(concurrency),
            "OPENAI_BASE_URL": base_url,
            "PROMETHEUS_MULTIPROC_DIR": metrics_dir,
        },
        name=f"ai-worker-{concurrency}",
    )
    bares, turns = [], []
    try:
        entity_type = entity_type_create(name=f"ai-{concurrency}-{time.time_ns()}")
        workflow = workflow_create(name="ai", entity_type=entity_type, steps=[STEP])
        _run(workflow.pk, make_entities(entity_type, CALLS // 2))  # warm-up: SDK, connections
        for _ in range(REPEAT):  # the floor and ours take turns: both see the same load
            bares.append(_bare_sdk(base_url, concurrency))
            entity_ids = make_entities(entity_type, CALLS)
            turns.append(_turn(worker, workflow.pk, entity_ids, metrics_dir, server_pid))
    finally:
        worker.stop()
    ratios = sorted(turn["cpu"] / bare["cpu_s"] for turn, bare in zip(turns, bares, strict=True))
    in_flights = sorted(CALLS * LATENCY_S / turn["wall"] for turn in turns)
    ours_ms = statistics.median(turn["cpu"] for turn in turns) * 1000 / CALLS
    bare_ms = statistics.median(bare["cpu_s"] for bare in bares) * 1000 / CALLS
    in_flight = statistics.median(in_flights)
    return {
        "chunk_size": chunk,
        "bare_sdk_cpu_ms_per_call": round(bare_ms, 2),
        "workers_cpu_ms_per_call": round(ours_ms, 2),
        "cpu_ratio": round(statistics.median(ratios), 2),
        "cpu_ratios": [round(ratio, 2) for ratio in ratios],
        "bare_sdk_in_flight": round(
            statistics.median(CALLS * LATENCY_S / bare["wall_s"] for bare in bares), 1
        ),
        "in_flight": round(in_flight, 1),
        "in_flight_ratio": round(in_flight / concurrency, 2),
        "in_flight_ratios": [round(value / concurrency, 2) for value in in_flights],
        "in_flight_ratio_of_all_processes": round(in_flight / concurrency / WORKER_PROCESSES, 2),
        "server_cpu_ms_per_call": round(
            statistics.median(turn["server_cpu"] for turn in turns) * 1000 / CALLS, 2
        ),
        "calls_per_worker_process": [turn["calls"] for turn in turns],
        "attempts_retried": sum(turn["retried"] for turn in turns),
        "timelines": [turn["timeline"] for turn in turns if turn["timeline"]],
    }


def run(log_dir: Path) -> dict:
    port = _free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "benchmarks.llm_server",
            str(port),
            str(LATENCY_S),
            *([os.environ["BENCH_AI_TIMELINE"]] if os.environ.get("BENCH_AI_TIMELINE") else []),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout.readline().strip() == "ready"
        base_url = f"http://127.0.0.1:{port}/v1"
        figures = {
            "calls": CALLS,
            "latency_s": LATENCY_S,
            "worker_processes": WORKER_PROCESSES,
            "target_cpu_ratio": 1.5,
            "target_in_flight_ratio": 0.75,
        }
        for concurrency in CONCURRENCIES:
            for name, value in _measure(concurrency, base_url, log_dir, server.pid).items():
                figures[f"c{concurrency}_{name}"] = value
        return figures
    finally:
        server.kill()


if __name__ == "__main__":
    from benchmarks import harness

    harness.setup_database()
    harness.django_setup()
    print(json.dumps(run(Path(tempfile.mkdtemp(prefix="bench-"))), indent=2))
