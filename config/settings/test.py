"""Test settings: the production engines (PostgreSQL, Redis) on this machine by default."""

import os
import tempfile

os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/workflows")
os.environ.setdefault("CELERY_BROKER_URL", "redis://127.0.0.1:6379/15")
# Production settings otherwise (DEBUG off), so a key of the tests' own; their worker and
# command processes inherit it.
os.environ.setdefault("SECRET_KEY", "tests-" + "k" * 60)
# A folder of the session's own (its worker processes inherit the variable).
os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", tempfile.mkdtemp(prefix="workflows-metrics-"))

from config.settings.base import *  # noqa: F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"

# Threads of the live server keep no connection open past a request, so the test database
# can be dropped at the end.
DATABASES["default"]["CONN_MAX_AGE"] = 0  # noqa: F405
