"""A requests-per-minute limit shared by every worker process and machine.

Celery's `rate_limit` is per worker; this one lives in Redis (the broker), as a "virtual
scheduling" counter (GCRA without burst): each caller atomically reserves the next free slot,
`60 / rpm` seconds after the previous one, and sleeps until it. Without Redis (the embedded
defaults) the same algorithm runs per process.
"""

import threading
import time
from functools import lru_cache

import redis
from django.conf import settings

RESERVE = """
local interval = tonumber(ARGV[1])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local slot = tonumber(redis.call('GET', KEYS[1]) or '0')
if slot < now then slot = now end
local ttl_ms = math.floor((slot + interval - now) / 1000) + 1000
redis.call('SET', KEYS[1], slot + interval, 'PX', ttl_ms)
return slot - now
"""


class LocalLimiter:
    def __init__(self):
        self._lock = threading.Lock()
        self._next: dict[str, float] = {}

    def reserve(self, key: str, interval_s: float) -> float:
        with self._lock:
            now = time.monotonic()
            slot = max(self._next.get(key, 0.0), now)
            self._next[key] = slot + interval_s
            return slot - now


class RedisLimiter:
    def __init__(self, url: str):
        self._client = redis.Redis.from_url(url)
        self._reserve = self._client.register_script(RESERVE)

    def reserve(self, key: str, interval_s: float) -> float:
        waited_us = self._reserve(
            keys=[f"workflows:ai-rate:{key}"], args=[int(interval_s * 1_000_000)]
        )
        return int(waited_us) / 1_000_000


@lru_cache(maxsize=1)
def _limiter():
    url = settings.CELERY_BROKER_URL
    return RedisLimiter(url) if url.startswith(("redis://", "rediss://")) else LocalLimiter()


def rate_limit_wait(key: str) -> None:
    """Block until this caller's slot under AI_RATE_LIMIT_RPM (no-op when unset)."""
    rpm = settings.AI_RATE_LIMIT_RPM
    if not rpm:
        return
    wait = _limiter().reserve(key, 60.0 / rpm)
    if wait > 0:
        time.sleep(wait)
