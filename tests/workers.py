"""A real Celery worker process on the test database and the Redis broker."""

import json
import os
import socket
import time
from contextlib import contextmanager
from pathlib import Path
from unittest import mock

import redis
from django.conf import settings

from jobs.models import Run, RunLog, RunStatus
from jobs.queue import RUN_CHUNK
from tests.processes import ManagedProcess, celery_beat_command, celery_worker_command


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# Where the session's worker finds an OpenAI-compatible server when a test starts one.
FAKE_LLM_PORT = _free_port()
FAKE_ANTHROPIC_PORT = _free_port()  # and an Anthropic one
# A model of the local stand-in with a price (USD per million tokens), for the cost of runs.
PRICED_LOCAL = "priced-local"
PRICED_LOCAL_PRICE = {"input": 1.0, "output": 2.0}


def worker_env() -> dict:
    db = settings.DATABASES["default"]
    url = (
        f"postgres://{db['USER']}@{db['HOST']}:{db['PORT'] or 5432}/{db['NAME']}"
        if db["ENGINE"].endswith("postgresql")
        else f"sqlite:///{db['NAME']}"
    )
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "DATABASE_URL": url,
        "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
        "OUTBOUND_ALLOWED_HOSTS": "127.0.0.1",
        "OUTBOUND_BACKOFF_S": "0.05",
        "OPENAI_BASE_URL": f"http://127.0.0.1:{FAKE_LLM_PORT}/v1",
        "ANTHROPIC_BASE_URL": f"http://127.0.0.1:{FAKE_ANTHROPIC_PORT}",
        # A whole attempt's deadline: on CI's 2 cores, six suites' workers, browsers and fake
        # servers share them, and a 1 s deadline failed every call in flight at a stall.
        "AI_TIMEOUT_S": "3",
        "AI_BACKOFF_S": "0.05",
        "AI_MAX_ATTEMPTS": "4",
        "AI_LOCAL_BATCH_DELAY_S": "1",
        "AI_BATCH_POLL_S": "0.5",
        "AI_PRICES": json.dumps({PRICED_LOCAL: PRICED_LOCAL_PRICE}),
        "PYTHONUNBUFFERED": "1",
    }


def start_worker(log_path: Path, concurrency: int = 2, queues: str | None = None) -> ManagedProcess:
    """A worker taking every queue, or those named (`queues`: "celery", "waits")."""
    return ManagedProcess(
        celery_worker_command(
            concurrency, f"test-{os.getpid()}-{queues or 'all'}@%h".replace(",", "-"), queues
        ),
        "ready.",
        log_path,
        worker_env(),
    )


@contextmanager
def broker_of_its_own(settings, log_dir: Path):
    """A Redis server of the test's own on a free port, the broker of the test process and of
    the workers it starts meanwhile (`start_worker` after entering), so a test that restarts
    its broker disturbs no other test process sharing the machine's Redis. Yields the server:
    its `restart()` kills it, and what it held with it, and starts it again."""
    from config.celery import app  # the product's app, current from its import on

    port = _free_port()
    server = ManagedProcess(
        [
            "redis-server",
            "--bind",
            "127.0.0.1",
            "--port",
            str(port),
            "--save",
            "",
            "--appendonly",
            "no",
        ],
        "Ready to accept connections",
        log_dir / "redis.log",
        dict(os.environ),
    )
    shared = app.conf.broker_url
    settings.CELERY_BROKER_URL = f"redis://127.0.0.1:{port}/0"  # what worker_env() hands on
    _produce_to(settings.CELERY_BROKER_URL)
    try:
        yield server
    finally:
        _produce_to(shared)
        server.stop()


def _produce_to(url: str) -> None:
    """Send this process's tasks to `url` from now on."""
    from kombu import pools

    from config.celery import app

    pools.reset()  # kombu's connection and producer pools, closed and forgotten
    os.environ["CELERY_BROKER_URL"] = url  # Celery reads it before its configuration
    app.conf.broker_url = url
    app._after_fork()  # Celery's own reset of the app's references to them


def start_beat(log_path: Path, **env: str) -> ManagedProcess:
    """Celery beat on the test database's schedule (django-celery-beat), as the Procfile runs
    it, looking at the schedule every second; `env` adds settings (AI_BATCH_POLL_S="0.5")."""
    return ManagedProcess(
        celery_beat_command(max_interval=1),
        "beat: Starting...",
        log_path,
        {**worker_env(), **env},
    )


def wait_until(predicate, what: str, timeout: float = 120):
    """Poll until `predicate()` is truthy and return it (a bound on waiting, not a speed
    assertion)."""
    deadline = time.monotonic() + timeout
    while not (found := predicate()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)
    return found


def all_waiting(run_id: str, n: int):
    """A predicate for `wait_until`: `n` of the run's entities wait."""
    return lambda: Run.objects.get(pk=run_id).waiting == n


def wait_for_run(run_id: str, timeout: float = 120) -> Run:
    """Poll until the run ends (a bound on waiting, not a speed assertion)."""
    deadline = time.monotonic() + timeout
    open_statuses = RunStatus.open()
    while time.monotonic() < deadline:
        if Run.objects.filter(pk=run_id).values_list("status", flat=True)[0] not in open_statuses:
            return Run.objects.get(pk=run_id)
        time.sleep(0.05)
    run = Run.objects.get(pk=run_id)
    raise AssertionError(
        f"Run {run_id} did not end within {timeout}s: {run.status}, "
        f"{run.completed}+{run.failed}+{run.cancelled} of {run.total}"
    )


@contextmanager
def chunks_sent_to(queue: str):
    """Runs started meanwhile send their chunks to `queue` (a test's own worker consumes
    it), not to the queue the session's worker reads."""
    from celery import current_app

    def enqueue(run_id, chunks):
        for chunk in chunks:
            current_app.send_task(RUN_CHUNK, args=(run_id, chunk), queue=queue)

    with mock.patch("jobs.queue.chunks_enqueue", enqueue):
        yield


def resume_held_by_a_killed_worker(start, wake, *, settings, log_dir: Path) -> None:
    """On a broker of the test's own, with a chunk worker running: `start()` starts a run
    whose entities all come to wait; `wake(run)` resolves their waits (a decision, an
    event) while a `waits` worker holds their resume task (asked a minute later, as this
    process asks it). That worker is SIGKILLed and the Procfile's `waits` and `beat` come
    back: the run ends completed, resumed once, by beat's tick of the waits (the held task
    died with its worker)."""
    with broker_of_its_own(settings, log_dir):
        chunks = start_worker(log_dir / "chunks.log", concurrency=1, queues="celery")
        try:
            run = start()
            wait_until(all_waiting(run.pk, run.total), f"{run.total} entities to wait")
            run, log = _resume_after_the_kill(run, wake, settings=settings, log_dir=log_dir)
        finally:
            chunks.stop()
    assert (run.status, run.completed) == ("completed", run.total)
    assert RunLog.objects.filter(run=run, message__startswith="The resume of resolved").count() == 1
    assert "Task jobs.tasks.resume_waits" not in log


def _resume_after_the_kill(run: Run, wake, *, settings, log_dir: Path) -> tuple[Run, str]:
    settings.WAIT_RESUME_DELAY_S = 60  # a countdown, held unacknowledged by the worker
    waits = start_worker(log_dir / "waits1.log", concurrency=1, queues="waits")
    try:
        wake(run)
        broker = redis.Redis.from_url(settings.CELERY_BROKER_URL)
        wait_until(  # taken from its queue, not acknowledged (kombu's `unacked` hash)
            lambda: broker.llen("waits") == 0 and broker.hlen("unacked") == 1,
            "the waits worker to hold the resume",
        )
    finally:
        waits.kill()
    assert Run.objects.get(pk=run.pk).resume_requested_at is not None
    beat = start_beat(log_dir / "beat.log")
    waits = start_worker(log_dir / "waits2.log", concurrency=1, queues="waits")
    try:
        run = wait_for_run(run.pk, timeout=180)
    finally:
        waits.stop()
        beat.stop()
    return run, waits.log_text()
