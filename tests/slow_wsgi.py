"""The real WSGI application for tests that start gunicorn, plus one test-only hook: a
request with an `X-Test-Sleep: <seconds>` header sleeps that long inside Django's request
handling (on the `request_started` signal), so a test can make gunicorn's timeout fire
without a slow endpoint in the product."""

import time

from django.core.signals import request_started

from config.wsgi import application

__all__ = ["application"]


def _sleep_if_asked(sender, environ, **kwargs):
    seconds = environ.get("HTTP_X_TEST_SLEEP")
    if seconds:
        time.sleep(float(seconds))


request_started.connect(_sleep_if_asked)
