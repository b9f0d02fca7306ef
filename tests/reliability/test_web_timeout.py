"""A request that outlives gunicorn's worker timeout answers the API's JSON error shape (a
503), not gunicorn's HTML page, and the server goes on answering. Real gunicorn, with the
project's config file and a 2 s timeout; the request is made slow by a test-only header
(see tests/slow_wsgi.py)."""

import socket
import sys
import time

import pytest
import requests

from tests.processes import ManagedProcess
from tests.workers import worker_env


@pytest.fixture
def gunicorn(tmp_path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = ManagedProcess(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "-c",
            "config/gunicorn.py",
            "tests.slow_wsgi",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            "1",
            "--timeout",
            "2",
        ],
        "Booting worker",
        tmp_path / "gunicorn.log",
        worker_env(),
    )
    yield f"http://127.0.0.1:{port}"
    server.stop()


def answered(url: str, **kwargs) -> requests.Response:
    """The answer once a worker is up (a bound on waiting, not a speed assertion)."""
    deadline = time.monotonic() + 60
    while True:
        try:
            return requests.get(url, timeout=60, **kwargs)
        except requests.ConnectionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def test_a_request_past_the_worker_timeout_answers_the_json_error_shape(gunicorn):
    assert answered(f"{gunicorn}/api/v1/entities").status_code == 401  # a quick one works

    response = answered(f"{gunicorn}/api/v1/entities", headers={"X-Test-Sleep": "120"})

    assert response.status_code == 503
    assert response.headers["Content-Type"] == "application/json"
    error = response.json()["error"]
    assert error["code"] == "request_timeout"
    assert "2 s" in error["message"]
    assert error["details"] == []
    # The aborted worker is replaced; the next request is answered as usual.
    after = answered(f"{gunicorn}/api/v1/entities")
    assert after.status_code == 401
    assert after.json()["error"]["code"] == "not_authenticated"
