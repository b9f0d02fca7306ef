"""Child processes for tests and benchmarks: a Celery worker, a web server. No Django here,
so the benchmarks can use it before Django is set up."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def celery_worker_command(
    concurrency: int = 2, name: str | None = None, queues: str | None = None
) -> list[str]:
    """A worker as the Procfile starts one; `queues` (`-Q`, "waits") as its `waits` process
    does, every queue when None."""
    command = [
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
    ]
    if queues:
        command += ["-Q", queues]
    return [*command, "-n", name] if name else command


def celery_beat_command(max_interval: float = 1) -> list[str]:
    """Celery beat on the database schedule (django-celery-beat), looking at it every
    `max_interval` seconds."""
    return [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "config",
        "beat",
        "--loglevel",
        "INFO",
        "--scheduler",
        "django_celery_beat.schedulers:DatabaseScheduler",
        "--max-interval",
        str(max_interval),
    ]


class ManagedProcess:
    """A process in its own session, logging to a file, started once `ready` is logged."""

    def __init__(self, args: list[str], ready: str, log_path: Path, env: dict, timeout: float = 60):
        self.args, self.ready, self.env, self.timeout = args, ready, env, timeout
        self.log_path = log_path
        self.log = open(log_path, "w")  # noqa: SIM115  (closed in stop)
        self._start()

    def _start(self) -> None:
        start = self.log_path.stat().st_size
        self.process = subprocess.Popen(
            self.args,
            cwd=ROOT,
            env=self.env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + self.timeout
        while self.ready not in self.log_text(start):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{self.args[2]} did not start:\n{self.log_text(start)}")
            time.sleep(0.2)

    def log_text(self, start: int = 0) -> str:
        """What the process logged, from byte `start` on."""
        with open(self.log_path, "rb") as log:
            log.seek(start)
            return log.read().decode(errors="replace")

    def log_size(self) -> int:
        return self.log_path.stat().st_size

    def kill(self) -> None:
        """SIGKILL the process and its children at once, as a machine dying would."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def restart(self) -> None:
        """Start it again (after `kill`), logging on in the same file."""
        self.kill()
        self._start()

    def child_pids(self) -> list[int]:
        out = subprocess.run(
            ["pgrep", "-P", str(self.process.pid)], capture_output=True, text=True
        ).stdout
        return [int(pid) for pid in out.split()]

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.log.close()
