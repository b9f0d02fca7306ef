"""A call's token correction (its estimate against the usage reported) reaches the shared
token counter in Redis: with the process's next reservation, or when flushed."""

import uuid

import pytest
import redis
from django.conf import settings

from workflows.providers.ratelimit import (
    rate_limit_correct,
    rate_limit_flush,
    rate_limit_reserve,
)

pytestmark = pytest.mark.skipif(
    not settings.CELERY_BROKER_URL.startswith("redis"), reason="needs Redis"
)


def tokens_ahead_s(key: str) -> float:
    """How far ahead of Redis' clock the token counter stands, in seconds."""
    client = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    seconds, micros = client.time()
    held = int(client.get(f"workflows:ai-rate:{key}:tpm") or 0)
    return (held - (seconds * 1_000_000 + micros)) / 1_000_000


@pytest.fixture
def key(settings):
    settings.AI_RATE_LIMIT_RPM = 0
    settings.AI_RATE_LIMIT_TPM = 60_000  # a millisecond a token
    return f"test:{uuid.uuid4().hex}"


def test_a_refund_goes_with_the_next_reservation(key):
    rate_limit_reserve(key, tokens=1000)  # from idle: 1 s taken, of it the 0.1 s slack
    assert 0.6 < tokens_ahead_s(key) <= 0.9  # less the time since, on a busy machine
    rate_limit_correct(key, estimated=1000, used=100)
    rate_limit_reserve(key, tokens=100)  # 0.9 s refunded first, then 0.1 s taken
    assert tokens_ahead_s(key) < 0.1  # without the refund: 1.0 s


def test_a_flush_sends_the_corrections_no_call_carried(key):
    rate_limit_reserve(key, tokens=1000)
    rate_limit_correct(key, estimated=1000, used=1500)  # more than estimated: charged
    rate_limit_flush()
    assert 1.1 < tokens_ahead_s(key) <= 1.4
