"""Request and token limits, and a 429 back-off, shared by every worker process and machine.

Celery's `rate_limit` is per worker; these live in Redis (the broker), per provider and model,
as GCRA "theoretical arrival time" counters. A call goes once the time is free under all
three, and then atomically advances them: the request counter by `60 / AI_RATE_LIMIT_RPM` s,
the token counter by `60 / AI_RATE_LIMIT_TPM` s per token (an estimate before the call,
corrected by the usage the provider reports after it, sent with the process's next
reservation); the third is the "paused until" time a 429 sets for everyone. Until then a
caller sleeps holding nothing, so every waiter sees a refund or a pause. Without Redis (the
embedded defaults) the same algorithm runs per process.
"""

import logging
import math
import threading
import time
from dataclasses import dataclass
from functools import lru_cache

import redis
from django.conf import settings

logger = logging.getLogger(__name__)

# A call may be this late for its time without the time being lost (a waiter wakes a little
# after it); it is also the most that can go together after an idle spell. Waiters look
# again at least this often, so a refund (an estimate corrected down) is not lost either.
SLACK_S = 0.1
MAX_SLEEP_S = SLACK_S
# The answer's share of the estimate when a step sets no maxTokens.
DEFAULT_OUTPUT_TOKENS = 1024

RESERVE = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
-- First the token corrections this process has not sent yet (ARGV[4], signed).
local delta = tonumber(ARGV[4])
if delta ~= 0 then
    local tokens = tonumber(redis.call('GET', KEYS[2]) or '0')
    if delta > 0 and tokens < now then tokens = now end
    tokens = tokens + delta
    if tokens > now then
        redis.call('SET', KEYS[2], tokens, 'PX', math.floor((tokens - now) / 1000) + 1000)
    else
        redis.call('DEL', KEYS[2])
    end
end
local held = {}
local at = now
for i = 1, 3 do
    held[i] = tonumber(redis.call('GET', KEYS[i]) or '0')
    if held[i] > at then at = held[i] end
end
if at > now then return {0, at - now} end
local slack = tonumber(ARGV[3])
for i = 1, 2 do
    local cost = tonumber(ARGV[i])
    if cost > 0 then
        local next = math.max(held[i], now - slack) + cost
        redis.call('SET', KEYS[i], next, 'PX', math.floor((next - now) / 1000) + 1000)
    end
end
return {now, 0}
"""

# A signed correction of the token counter: a charge starts no earlier than now.
CORRECT = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local delta = tonumber(ARGV[1])
local held = tonumber(redis.call('GET', KEYS[1]) or '0')
if delta > 0 and held < now then held = now end
held = held + delta
if held > now then
    redis.call('SET', KEYS[1], held, 'PX', math.floor((held - now) / 1000) + 1000)
end
return 0
"""

PAUSE = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local until_us = now + tonumber(ARGV[1])
if until_us > tonumber(redis.call('GET', KEYS[1]) or '0') then
    redis.call('SET', KEYS[1], until_us, 'PX', math.floor(tonumber(ARGV[1]) / 1000) + 1000)
end
return 0
"""

# Seconds left of a 429's pause (0 when none).
PAUSED = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local until_us = tonumber(redis.call('GET', KEYS[1]) or '0')
if until_us > now then return until_us - now end
return 0
"""

COUNTERS = ("rpm", "tpm", "paused")
# With no request or token limit set, only a 429's pause can hold a call: a process asks
# Redis about it at most this often, not before every call (a round trip costs about as
# much CPU as a tenth of the call). A pause set elsewhere is seen this much later at most;
# one this process sets, at once.
PAUSE_CHECK_S = 0.025


@dataclass(frozen=True)
class Slot:
    at: float  # when the call was let go, seconds since the epoch (the limiter's clock)
    waited: float  # seconds slept for it


class LocalLimiter:
    def __init__(self):
        self._lock = threading.Lock()
        self._held: dict[tuple[str, str], float] = {}

    def take(self, key: str, costs: tuple[float, float], delta: float) -> tuple[float, float]:
        if delta:
            self.correct(key, delta)
        with self._lock:
            now = time.time()
            held = [self._held.get((key, name), 0.0) for name in COUNTERS]
            if max(held) > now:
                return 0.0, max(held) - now
            for name, cost, was in zip(COUNTERS, costs, held, strict=False):
                if cost > 0:
                    self._held[key, name] = max(was, now - SLACK_S) + cost
            return now, 0.0

    def correct(self, key: str, delta: float) -> None:
        with self._lock:
            held = self._held.get((key, "tpm"), 0.0)
            self._held[key, "tpm"] = (max(held, time.time()) if delta > 0 else held) + delta

    def pause(self, key: str, seconds: float) -> None:
        with self._lock:
            until = time.time() + seconds
            self._held[key, "paused"] = max(self._held.get((key, "paused"), 0.0), until)

    def paused_for(self, key: str) -> float:
        with self._lock:
            return max(0.0, self._held.get((key, "paused"), 0.0) - time.time())


class RedisLimiter:
    def __init__(self, url: str):
        # Short timeouts: a Redis that does not answer falls back quickly (`_limited`).
        client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
        self._reserve = client.register_script(RESERVE)
        self._correct = client.register_script(CORRECT)
        self._pause = client.register_script(PAUSE)
        self._paused = client.register_script(PAUSED)

    @staticmethod
    def _keys(key: str, *names: str) -> list[str]:
        return [f"workflows:ai-rate:{key}:{name}" for name in names]

    def take(self, key: str, costs: tuple[float, float], delta: float) -> tuple[float, float]:
        at, wait = self._reserve(
            keys=self._keys(key, *COUNTERS),
            args=[*map(_us, costs), _us(SLACK_S), _us(delta)],
        )
        return int(at) / 1_000_000, int(wait) / 1_000_000

    def correct(self, key: str, delta: float) -> None:
        self._correct(keys=self._keys(key, "tpm"), args=[_us(delta)])

    def pause(self, key: str, seconds: float) -> None:
        self._pause(keys=self._keys(key, "paused"), args=[_us(seconds)])

    def paused_for(self, key: str) -> float:
        return int(self._paused(keys=self._keys(key, "paused"))) / 1_000_000


def _us(seconds: float) -> int:
    return int(seconds * 1_000_000)


@lru_cache(maxsize=1)
def _shared():
    url = settings.CELERY_BROKER_URL
    return RedisLimiter(url) if url.startswith(("redis://", "rediss://")) else LocalLimiter()


_fallback = LocalLimiter()


def _limited(method: str, *args):
    """The shared limiter's answer; while Redis is unreachable, this process's own (the
    limits then hold per process), so that a Redis outage does not fail model calls."""
    try:
        return getattr(_shared(), method)(*args)
    except redis.RedisError as exc:
        logger.warning("AI rate limit: Redis unreachable (%s); limiting per process.", exc)
        return getattr(_fallback, method)(*args)


def estimate_tokens(*, text: str, max_tokens: int | None) -> int:
    """What a call will count before it is made: about four characters a token for the
    prompt, and the answer at its most (maxTokens, else DEFAULT_OUTPUT_TOKENS)."""
    return math.ceil(len(text) / 4) + (max_tokens or DEFAULT_OUTPUT_TOKENS)


def _token_s() -> float:
    tpm = settings.AI_RATE_LIMIT_TPM
    return 60.0 / tpm if tpm else 0.0


# key -> (when Redis was last asked, the pause's end), both on this process's monotonic clock
_pauses_seen: dict[str, tuple[float, float]] = {}


def _paused_for(key: str) -> float:
    """Seconds left of the shared pause, as last seen (asked again after PAUSE_CHECK_S)."""
    now = time.monotonic()
    checked, until = _pauses_seen.get(key, (-math.inf, 0.0))
    if now - checked >= PAUSE_CHECK_S:
        # Marked asked first: the other threads go on with what was seen meanwhile, so
        # that a chunk's calls starting together make one round trip, not one each.
        _pauses_seen[key] = (now, until)
        until = now + _limited("paused_for", key)
        _pauses_seen[key] = (now, until)
    return max(0.0, until - now)


def rate_limit_reserve(key: str, *, tokens: int) -> Slot:
    """Wait for a time free under the request and token limits and any shared pause, and
    take it. `key` names the provider and model."""
    rpm = settings.AI_RATE_LIMIT_RPM
    costs = (60.0 / rpm if rpm else 0.0, tokens * _token_s())
    waited = 0.0
    if not any(costs):  # nothing to take: only a pause holds the call
        while wait := _paused_for(key):
            wait = min(wait, MAX_SLEEP_S)
            time.sleep(wait)
            waited += wait
        return Slot(time.time(), waited)
    while True:
        at, wait = _limited("take", key, costs, _corrections_take(key))
        if not wait:
            return Slot(at, waited)
        # Nothing is held while waiting, so a refund is seen on waking; the cap keeps a
        # waiter from sleeping through one.
        wait = min(wait, MAX_SLEEP_S)
        time.sleep(wait)
        waited += wait


# Token corrections not sent yet, key -> (seconds of token time, since when): they go with
# this process's next reservation (no round trip of their own), or on their own once
# SLACK_S old, or when a step's calls are done (`rate_limit_flush`).
_corrections: dict[str, tuple[float, float]] = {}
_corrections_lock = threading.Lock()


def _corrections_take(key: str) -> float:
    with _corrections_lock:
        return _corrections.pop(key, (0.0, 0.0))[0]


def rate_limit_correct(key: str, *, estimated: int, used: int) -> None:
    """Charge (or refund) the difference between a call's estimate and the tokens the
    provider counted; a call that failed counted none."""
    if not settings.AI_RATE_LIMIT_TPM or used == estimated:
        return
    now = time.monotonic()
    with _corrections_lock:
        pending, since = _corrections.get(key, (0.0, now))
        _corrections[key] = (pending + (used - estimated) * _token_s(), since)
    if now - since >= SLACK_S:
        rate_limit_flush(key)


def rate_limit_flush(key: str | None = None) -> None:
    """Send the token corrections not sent yet (of `key`, or of every key)."""
    with _corrections_lock:
        keys = [key] if key is not None else list(_corrections)
    for name in keys:
        delta = _corrections_take(name)
        if delta:
            _limited("correct", name, delta)


def rate_limit_pause(key: str, seconds: float) -> None:
    """Hold every worker's calls to this provider and model for `seconds` (after a 429)."""
    if seconds > 0:
        _limited("pause", key, seconds)
        now = time.monotonic()
        _pauses_seen[key] = (now, now + seconds)  # this process holds at once
