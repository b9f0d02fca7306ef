"""A real Celery worker process on the test database and the Redis broker."""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from django.conf import settings

from jobs.models import Run

ROOT = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# Where the session's worker finds an OpenAI-compatible server when a test starts one.
FAKE_LLM_PORT = _free_port()


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
        "AI_TIMEOUT_S": "1",
        "AI_BACKOFF_S": "0.05",
        "AI_MAX_ATTEMPTS": "4",
        "PYTHONUNBUFFERED": "1",
    }


class Worker:
    def __init__(self, log_path: Path, concurrency: int = 2):
        self.log_path = log_path
        self.log = open(log_path, "w")  # noqa: SIM115  (closed in stop)
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "config",
                "worker",
                "--pool",
                "prefork",
                "--concurrency",
                str(concurrency),
                "--loglevel",
                "INFO",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
                "-n",
                f"test-{os.getpid()}@%h",
            ],
            cwd=ROOT,
            env=worker_env(),
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self._wait_ready()

    def _wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if "ready." in self.log_path.read_text():
                return
            if self.process.poll() is not None:
                raise RuntimeError("The worker exited:\n" + self.log_path.read_text())
            time.sleep(0.2)
        raise RuntimeError("The worker did not start:\n" + self.log_path.read_text())

    def child_pids(self) -> list[int]:
        out = subprocess.run(
            ["pgrep", "-P", str(self.process.pid)], capture_output=True, text=True
        ).stdout
        return [int(pid) for pid in out.split()]

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.log.close()


def wait_for_run(run_id: str, timeout: float = 120) -> Run:
    """Poll until the run ends (a bound on waiting, not a speed assertion)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = Run.objects.get(pk=run_id)
        if run.is_ended:
            return run
        time.sleep(0.1)
    raise AssertionError(
        f"Run {run_id} did not end within {timeout}s: {run.status}, "
        f"{run.completed}+{run.failed}+{run.cancelled} of {run.total}"
    )
