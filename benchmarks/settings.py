"""The product's settings plus a trivial DRF endpoint to measure the API against."""

from config.settings.base import *  # noqa: F403

ROOT_URLCONF = "benchmarks.urls"
ALLOWED_HOSTS = ["*"]
