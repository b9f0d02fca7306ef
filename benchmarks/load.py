"""The API under load as users' load tools measure it: locust (`benchmarks/locustfile.py`)
headless in its own process, against gunicorn (2 workers) and a Celery worker of 2
processes, PostgreSQL and Redis on loopback, at USERS concurrent users in turn.

At each user count, the mix (`ApiClient`: reads of entities, runs, jobs and step types,
entity creates one by one and in bulk, merges, events, a run of 5 entities polled to its
end) for MIX_S seconds, then its floor (`TrivialClient`: the same users and think time
against `/bench/trivial`, an authenticated DRF GET doing nothing) for FLOOR_S seconds;
locust's stats are reset once every user is started. Per endpoint: requests/s, p50, p95
and p99 in ms (locust rounds a time over 100 ms to 10 ms, over 1 s to 100 ms), failures;
the runs the mix started, from their `POST` to their `completedAt` (read from the database);
the CPU the web workers and the load generator used per request, the machine's busy share
and load average. Before the steps: each endpoint alone (its queries, CPU and wall time per
request, in this process), and a warm-up of WARM_UP_S seconds not reported.

    pip install -e '.[dev,bench]'        # locust
    python -m benchmarks --only load
    python -m benchmarks.load            # alone: its own database, web server and worker
"""

import csv
import datetime
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks import harness
from benchmarks.felt import load_average
from benchmarks.pipeline import STEPS, make_entities

USERS = (10, 50, 100)
MIX_S = 45
FLOOR_S = 30
WARM_UP_S = 10
SPAWN_RATE = 20  # users started per second
SEEDED = 5_000
COST_REPEAT = 20
LOCUSTFILE = "benchmarks/locustfile.py"
# The workflow: transform, validate, publish (the pipeline's steps without its condition).
WORKFLOW_STEPS = [step for step in STEPS if step["type"] != "condition"]
SCHEMA = {
    "type": "object",
    "properties": {
        "title": {"type": "string", "maxLength": 200},
        "brand": {"type": "string"},
        "price": {"type": "number", "minimum": 0},
        "note": {"type": "string"},
    },
    "required": ["title"],
}


def seed(log_dir: Path) -> dict:
    """An entity type, SEEDED entities, the workflow; the environment the locustfile reads
    (but the key)."""
    from entities.services import entity_type_create
    from workflows.services import workflow_create

    entity_type = entity_type_create(name=f"load-{time.time_ns()}", schema=SCHEMA)
    workflow = workflow_create(name="load", entity_type=entity_type, steps=WORKFLOW_STEPS)
    ids_file = log_dir / "load-entity-ids.txt"
    ids_file.write_text("\n".join(make_entities(entity_type, SEEDED)) + "\n")
    return {
        "LOAD_ENTITY_TYPE_ID": entity_type.pk,
        "LOAD_WORKFLOW_ID": workflow.pk,
        "LOAD_ENTITY_IDS": str(ids_file),
    }


def endpoint_costs(key: str, env: dict) -> dict:
    """Each endpoint of the mix alone, in this process through DRF's test client (the same
    views, no server): the database queries of a request, and the medians of its CPU (this
    thread's) and wall time over COST_REPEAT requests after a first one. A run is started
    once (its queries only)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    from rest_framework.test import APIClient

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    api, type_id, workflow_id = "/api/v1", env["LOAD_ENTITY_TYPE_ID"], env["LOAD_WORKFLOW_ID"]
    entity_ids = Path(env["LOAD_ENTITY_IDS"]).read_text().split()
    data = {"title": "Counted", "brand": "Acme", "price": 5}
    run = client.post(
        f"{api}/workflows/{workflow_id}/run", {"entityIds": entity_ids[:5]}, format="json"
    ).json()
    harness.wait_for_run(run["runId"])
    runs = f"{api}/workflows/{workflow_id}/runs"
    requests = {
        "GET /bench/trivial": ("get", "/bench/trivial", None),
        "GET /api/v1/entities?entityTypeId&status": (
            "get",
            f"{api}/entities?entityTypeId={type_id}&status=draft&limit=50",
            None,
        ),
        "GET /api/v1/entities/:id": ("get", f"{api}/entities/{entity_ids[0]}", None),
        "POST /api/v1/entities": (
            "post",
            f"{api}/entities",
            {"entityTypeId": type_id, "data": data},
        ),
        "POST /api/v1/entities/bulk": (
            "post",
            f"{api}/entities/bulk",
            {"entityTypeId": type_id, "items": [{"data": data}] * 50},
        ),
        "PATCH /api/v1/entities/:id": (
            "patch",
            f"{api}/entities/{entity_ids[1]}",
            {"data": {"price": 7, "note": "counted"}},
        ),
        "POST /api/v1/events": ("post", f"{api}/events", {"name": "order.paid", "key": "k"}),
        "GET /api/v1/workflows/:id/runs": ("get", runs, None),
        "GET /api/v1/jobs?workflowId": ("get", f"{api}/jobs?workflowId={workflow_id}", None),
        "GET /api/v1/step-types": ("get", f"{api}/step-types", None),
        "GET /api/v1/workflows/:id/runs/:runId": ("get", f"{runs}/{run['runId']}", None),
        "GET /api/v1/workflows/:id/runs/:runId/items": (
            "get",
            f"{runs}/{run['runId']}/items",
            None,
        ),
    }
    counts = {}
    for name, (method, path, body) in requests.items():
        cpu, wall = [], []
        for _ in range(COST_REPEAT + 1):
            with CaptureQueriesContext(connection) as captured:
                started, started_cpu = time.perf_counter(), time.thread_time()
                if body is None:
                    answer = getattr(client, method)(path)
                else:
                    answer = getattr(client, method)(path, body, format="json")
                cpu.append(time.thread_time() - started_cpu)
                wall.append(time.perf_counter() - started)
            assert 200 <= answer.status_code < 300, (name, answer.status_code, answer.content)
        counts[name] = {
            "queries": len(captured),
            "cpu_ms": round(statistics.median(cpu[1:]) * 1000, 1),
            "wall_ms": round(statistics.median(wall[1:]) * 1000, 1),
        }
    with CaptureQueriesContext(connection) as captured:
        answer = client.post(
            f"{api}/workflows/{workflow_id}/run", {"entityIds": entity_ids[5:10]}, format="json"
        )
    assert answer.status_code == 202, answer.content
    counts["POST /api/v1/workflows/:id/run"] = {"queries": len(captured)}
    harness.wait_for_run(answer.json()["runId"])
    return counts


def _cpu_s(pids: list[int]) -> float:
    """User + system CPU seconds of the processes `pids` so far (those still alive)."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / os.sysconf("SC_CLK_TCK")


def _machine_busy() -> tuple[int, int]:
    """(busy, all) jiffies of every core since boot, from /proc/stat."""
    values = [int(value) for value in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    idle = values[3] + values[4]  # idle, iowait
    return sum(values) - idle, sum(values)


def _locust(
    user_class: str, users: int, seconds: int, base_url: str, env: dict, out: Path
) -> tuple[Path, float]:
    """Run locust headless; the CSV prefix it wrote and the CPU seconds it used."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    with open(f"{out}.log", "w") as log:
        finished = subprocess.run(
            [
                sys.executable,
                "-m",
                "locust",
                "-f",
                LOCUSTFILE,
                user_class,
                "--headless",
                "-u",
                str(users),
                "-r",
                str(SPAWN_RATE),
                "-t",
                f"{seconds}s",
                "--host",
                base_url,
                "--csv",
                str(out),
                "--only-summary",
                "--reset-stats",
                "--loglevel",
                "WARNING",
            ],
            cwd=harness.ROOT,
            env={**os.environ, **env},
            stdout=log,
            stderr=subprocess.STDOUT,
            timeout=seconds + 120,
            check=False,
        )
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if finished.returncode not in (0, 1):  # 1: some requests failed, which the stats say
        raise RuntimeError(f"locust exited {finished.returncode}: see {out}.log")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return out, cpu


def _ms(value: str) -> float | None:
    return None if value == "N/A" else float(value)


def read_stats(prefix: Path) -> dict:
    """Per request name (and `total`): requests, rps, p50/p95/p99 ms, failures; the
    failures' messages."""
    endpoints = {}
    with open(f"{prefix}_stats.csv") as stats:
        for row in csv.DictReader(stats):
            name = "total" if row["Name"] == "Aggregated" else f"{row['Type']} {row['Name']}"
            endpoints[name] = {
                "requests": int(row["Request Count"]),
                "rps": round(float(row["Requests/s"]), 2),
                "p50_ms": _ms(row["50%"]),
                "p95_ms": _ms(row["95%"]),
                "p99_ms": _ms(row["99%"]),
                "failures": int(row["Failure Count"]),
            }
    with open(f"{prefix}_failures.csv") as failures:
        errors = [
            f"{row['Occurrences']}x {row['Method']} {row['Name']}: {row['Error'][:300]}"
            for row in csv.DictReader(failures)
        ]
    return {"endpoints": endpoints, "errors": errors}


def step(
    user_class: str,
    users: int,
    seconds: int,
    base_url: str,
    env: dict,
    out: Path,
    web: harness.ManagedProcess,
) -> dict:
    """One locust run with the web workers' CPU, the machine's busy share and load."""
    from jobs.models import Run

    since = datetime.datetime.now(datetime.UTC)
    web_pids = web.child_pids()
    web_before, busy_before, load_before = _cpu_s(web_pids), _machine_busy(), load_average()
    prefix, locust_cpu = _locust(user_class, users, seconds, base_url, env, out)
    web_cpu = _cpu_s(web_pids) - web_before
    busy_after = _machine_busy()
    figures = read_stats(prefix)
    runs = Run.objects.filter(workflow_id=env["LOAD_WORKFLOW_ID"], created_at__gte=since)
    if user_class == "ApiClient" and runs.exists():
        figures["runs"] = runs_figures(runs)
    # The requests in the stats (after the ramp), the CPU over the whole run: an upper bound.
    requests = figures["endpoints"]["total"]["requests"]
    figures.update(
        {
            "users": users,
            "seconds": seconds,
            "web_cpu_ms_per_request": round(web_cpu * 1000 / max(requests, 1), 2),
            "locust_cpu_share": round(locust_cpu / seconds, 2),  # of one core
            "machine_busy": round(
                (busy_after[0] - busy_before[0]) / (busy_after[1] - busy_before[1]), 2
            ),
            "load_before": load_before,
            "load_after": load_average(),
        }
    )
    return figures


def runs_figures(runs) -> dict:
    """The runs the mix started: how many ended how, and the seconds from each one's
    creation (its `POST`) to its `completedAt`, p50, p95 and the longest."""
    seconds = sorted(
        (run.completed_at - run.created_at).total_seconds()
        for run in runs
        if run.completed_at is not None
    )
    statuses: dict[str, int] = {}
    for run in runs:
        statuses[run.status] = statuses.get(run.status, 0) + 1
    return {
        "statuses": statuses,
        "p50_s": round(statistics.median(seconds), 2) if seconds else None,
        "p95_s": round(seconds[int(len(seconds) * 0.95)], 2) if seconds else None,
        "max_s": round(seconds[-1], 2) if seconds else None,
    }


def machine() -> dict:
    cpuinfo = Path("/proc/cpuinfo").read_text()
    model = next(
        (line.split(":", 1)[1].strip() for line in cpuinfo.splitlines() if "model name" in line),
        "unknown",
    )
    memory_kb = int(Path("/proc/meminfo").read_text().split()[1])
    return {"cores": os.cpu_count(), "cpu": model, "memory_gb": round(memory_kb / 2**20, 1)}


def print_table(figures: dict) -> None:
    for users in figures["users"]:
        for kind in ("mix", "floor"):
            result = figures["steps"][str(users)][kind]
            print(
                f"\n-- {users} users, {kind} ({result['seconds']} s; web CPU "
                f"{result['web_cpu_ms_per_request']} ms/request, machine busy "
                f"{result['machine_busy']:.0%}, locust {result['locust_cpu_share']} core, "
                f"load {result['load_before'][0]} -> {result['load_after'][0]})"
            )
            print(f"  {'endpoint':48} {'req/s':>7} {'p50':>6} {'p95':>6} {'p99':>6} {'fail':>5}")
            for name, value in result["endpoints"].items():
                print(
                    f"  {name:48} {value['rps']:7.2f} {value['p50_ms'] or 0:6.0f} "
                    f"{value['p95_ms'] or 0:6.0f} {value['p99_ms'] or 0:6.0f} "
                    f"{value['failures']:5d}"
                )
            if "runs" in result:
                print(f"  runs, POST to completedAt: {json.dumps(result['runs'])}")
            for error in result["errors"]:
                print(f"  ! {error}")


def run(base_url: str, key: str, log_dir: Path, web: harness.ManagedProcess) -> dict:
    """Seed, count queries, warm up, then the mix and its floor at each of USERS."""
    figures: dict = {
        "at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "load_before": load_average(),
        "users": list(USERS),
        "think_s": [0.5, 1.5],
        "seeded_entities": SEEDED,
    }
    env = {"LOAD_API_KEY": key, **seed(log_dir)}
    worker = harness.start_worker(log_dir, name="load-worker")
    try:
        figures["alone"] = endpoint_costs(key, env)
        _locust("ApiClient", 5, WARM_UP_S, base_url, env, log_dir / "load-warm-up")
        figures["steps"] = {
            str(users): {
                "mix": step(
                    "ApiClient", users, MIX_S, base_url, env, log_dir / f"mix-{users}", web
                ),
                "floor": step(
                    "TrivialClient", users, FLOOR_S, base_url, env, log_dir / f"floor-{users}", web
                ),
            }
            for users in USERS
        }
    finally:
        worker.stop()
    figures["load_after"] = load_average()
    print_table(figures)
    return figures


if __name__ == "__main__":
    harness.setup_database()
    harness.django_setup()
    from config.api.services import api_key_create, api_user_get_or_create

    bench_key = api_key_create(user=api_user_get_or_create(username="bench"))[1]
    logs = Path(tempfile.mkdtemp(prefix="bench-"))
    web_server = harness.start_web(logs)
    try:
        result = run(f"http://127.0.0.1:{harness.PORT}", bench_key, logs, web_server)
    finally:
        web_server.stop()
    Path(logs / "load.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nFigures in {logs / 'load.json'}")
