"""Processes and helpers the benchmarks share: a fresh PostgreSQL database, Celery workers,
a gunicorn server, a load generator."""

import functools
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

from tests.processes import ROOT, ManagedProcess, celery_worker_command

# The local stand-in under a model name priced like a small hosted model (USD per million
# tokens), so runs record a cost: the batch-cost benchmark compares batch and sync on it.
PRICED_MODEL = "bench-priced"
PRICES = '{"bench-priced": {"input": 0.25, "cachedInput": 0.025, "output": 2.0}}'

# Several checkouts may measure on one machine: name your own database and port.
DB_NAME = os.environ.get("BENCH_DB_NAME", "workflows_bench")
PORT = int(os.environ.get("BENCH_PORT", "8765"))
ENV = {
    **os.environ,
    "DJANGO_SETTINGS_MODULE": "benchmarks.settings",
    "DATABASE_URL": os.environ.get(
        "BENCH_DATABASE_URL", f"postgres://postgres@127.0.0.1:5432/{DB_NAME}"
    ),
    "CELERY_BROKER_URL": os.environ.get("BENCH_BROKER_URL", "redis://127.0.0.1:6379/13"),
    "LOG_LEVEL": "WARNING",
    "API_RATE_LIMIT": "1000000/min",  # the load generator sends thousands a minute
    "PYTHONUNBUFFERED": "1",
    "AI_PRICES": PRICES,
    "AI_LOCAL_BATCH_DELAY_S": "1",
}


def setup_database() -> None:
    """Drop and create the benchmark database, then migrate it."""
    import psycopg

    with psycopg.connect("postgres://postgres@127.0.0.1:5432/postgres", autocommit=True) as db:
        db.execute(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")
        db.execute(f"CREATE DATABASE {DB_NAME}")
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=ENV, check=True)


def django_setup() -> None:
    os.environ.update(
        {
            k: ENV[k]
            for k in (
                "DJANGO_SETTINGS_MODULE",
                "DATABASE_URL",
                "CELERY_BROKER_URL",
                "LOG_LEVEL",
                "API_RATE_LIMIT",  # the in-process client shares the key's budget in Redis
            )
        }
    )
    import django

    django.setup()


def start_worker(
    log_dir: Path, concurrency: int = 2, env: dict | None = None, name: str = "worker"
) -> ManagedProcess:
    """A Celery worker of `concurrency` processes, with `env` over the benchmarks' ENV."""
    from config.celery import app

    with app.connection_for_write() as connection:
        connection.default_channel.queue_purge("celery")
    log = log_dir / f"{name}.log"
    return ManagedProcess(celery_worker_command(concurrency), "ready.", log, {**ENV, **(env or {})})


def start_web(log_dir: Path, port: int = PORT, workers: int = 2) -> ManagedProcess:
    return ManagedProcess(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "-c",
            "config/gunicorn.py",
            "benchmarks.wsgi",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            str(workers),
            "--log-level",
            "info",
        ],
        "Booting worker",
        log_dir / "web.log",
        ENV,
    )


@functools.cache
def _poll_connection():
    import psycopg

    return psycopg.connect(ENV["DATABASE_URL"], autocommit=True)


def wait_for_run(run_id: str, timeout: float = 900):
    """The run, once it has ended. Polled every 10 ms, so the figure is the run's own time,
    with a prepared one-column query on a connection of its own: the poller takes as little
    CPU as it can from the workers it waits for."""
    from jobs.models import Run, RunStatus  # Django must be set up

    ended = set(RunStatus.ended())
    db = _poll_connection()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        [status] = db.execute(
            "SELECT status FROM jobs_run WHERE id = %s", [run_id], prepare=True
        ).fetchone()
        if status in ended:
            return Run.objects.get(pk=run_id)
        time.sleep(0.01)
    raise AssertionError(f"Run {run_id} did not end within {timeout}s.")


def load(url: str, headers: dict, *, requests: int, concurrency: int) -> dict:
    """A closed-loop load generator: `concurrency` clients, `requests` GETs in all."""
    latencies: list[float] = []
    failures: list[str] = []
    lock = threading.Lock()
    remaining = [requests]

    def client():
        with httpx.Client(headers=headers, timeout=30) as session:
            while True:
                with lock:
                    if remaining[0] == 0:
                        return
                    remaining[0] -= 1
                started = time.perf_counter()
                response = session.get(url)
                elapsed = time.perf_counter() - started
                with lock:
                    if response.status_code == 200:
                        latencies.append(elapsed)
                    else:
                        failures.append(f"{response.status_code}: {response.text[:200]}")

    started = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    if failures:  # a figure over failed requests would be a wrong figure
        raise RuntimeError(f"{len(failures)} of {requests} requests failed: {failures[0]}")
    latencies.sort()
    return {
        "requests": requests,
        "rps": round(requests / wall, 1),
        "p50_ms": round(statistics.median(latencies) * 1000, 2),
        "p95_ms": round(latencies[int(len(latencies) * 0.95)] * 1000, 2),
    }
