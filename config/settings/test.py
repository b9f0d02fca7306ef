"""Test settings: the production engines (PostgreSQL, Redis) on this machine by default."""

import os
import tempfile

os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/workflows")
os.environ.setdefault("CELERY_BROKER_URL", "redis://127.0.0.1:6379/15")

# pytest-xdist runs the tests in several processes (gw0, gw1, ...): pytest-django gives each its
# own test database, and this gives each its own Redis database, counting down from the URL's
# (15, 14, ...), so one process's worker never takes another's tasks. From the URL the run was
# given, kept aside: the worker processes a test starts inherit this environment and read these
# settings again.
_shared_broker = os.environ.setdefault("TESTS_SHARED_BROKER_URL", os.environ["CELERY_BROKER_URL"])
_xdist_worker = os.environ.get("PYTEST_XDIST_WORKER", "")
# (Only while the URL is still the shared one: a worker a test starts on a broker of its own
# inherits PYTEST_XDIST_WORKER and keeps the URL it was given.)
if (
    _xdist_worker.startswith("gw")
    and _shared_broker.startswith("redis")
    and os.environ["CELERY_BROKER_URL"] == _shared_broker
):
    _server, _, _db = _shared_broker.rpartition("/")
    _db = (int(_db or 0) - int(_xdist_worker.removeprefix("gw"))) % 16
    os.environ["CELERY_BROKER_URL"] = f"{_server}/{_db}"
# Production settings otherwise (DEBUG off), so a key of the tests' own; their worker and
# command processes inherit it.
os.environ.setdefault("SECRET_KEY", "tests-" + "k" * 60)
# A metrics folder of the test process's own (its worker processes inherit the variable); an
# xdist worker inherits the controller's and takes one of its own.
if (
    "PROMETHEUS_MULTIPROC_DIR" not in os.environ
    or os.environ.get("TESTS_METRICS_DIR_OF", _xdist_worker) != _xdist_worker
):
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="workflows-metrics-")
    os.environ["TESTS_METRICS_DIR_OF"] = _xdist_worker

from config.settings.base import *  # noqa: E402, F403  (after the environment above)

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"

# Threads of the live server keep no connection open past a request, so the test database
# can be dropped at the end.
DATABASES["default"]["CONN_MAX_AGE"] = 0  # noqa: F405

# The network providers point where nothing listens (the discard port) unless a test's fake
# LLM sets its own (tests/conftest.py): no test reaches a real provider, and a step naming
# one is valid (a provider with neither a key nor a base URL is a 400 at create).
OPENAI_BASE_URL = OPENAI_BASE_URL or "http://127.0.0.1:9/v1"  # noqa: F405
ANTHROPIC_BASE_URL = ANTHROPIC_BASE_URL or "http://127.0.0.1:9"  # noqa: F405
