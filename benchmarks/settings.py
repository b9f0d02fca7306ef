"""The product's settings plus a trivial DRF endpoint to measure the API against."""

import os

# Production settings otherwise (DEBUG off), so a key of the benchmarks' own.
os.environ.setdefault("SECRET_KEY", "benchmarks-" + "b" * 60)

from config.settings.base import *  # noqa: F403

ROOT_URLCONF = "benchmarks.urls"
ALLOWED_HOSTS = ["*"]
