"""AI_RATE_LIMIT_RPM, AI_RATE_LIMIT_TPM and the 429 back-off hold across worker processes:
they live in Redis.

Each probe process records the time the limiter let each of its calls go (Redis' clock, so the
machine's load can delay a call but not move its slot); the fake server records arrivals."""

import json
import subprocess
import sys
import textwrap

import pytest
from django.conf import settings

from tests.processes import ROOT
from tests.servers import Buckets, Reply
from tests.workers import worker_env
from workflows.providers import ratelimit

pytestmark = pytest.mark.skipif(
    not settings.CELERY_BROKER_URL.startswith("redis"), reason="needs Redis"
)

PROBE = textwrap.dedent("""
    import json, os, sys
    import django
    from concurrent.futures import ThreadPoolExecutor
    django.setup()
    from workflows.providers import GenerationRequest, network, provider_get
    from workflows.steps.runtime import StepError

    slots, real = [], network.rate_limit_reserve
    def recording(*args, **kwargs):
        slot = real(*args, **kwargs)
        slots.append(slot.at)
        return slot
    network.rate_limit_reserve = recording

    provider = provider_get("openai")
    provider.client  # built before the clock starts, as in a warm worker
    request = GenerationRequest(
        prompt="x" * int(os.environ["PROBE_PROMPT_CHARS"]),
        model="m",
        max_tokens=int(os.environ["PROBE_MAX_TOKENS"]),
    )
    def call(_):
        try:
            provider.generate(request)
        except StepError as exc:
            print(exc.message, file=sys.stderr)
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(call, range(int(os.environ["PROBE_CALLS"]))))
    print(json.dumps(slots))
""")


def run_probes(server, *, calls: int, prompt_chars: int = 8, max_tokens: int = 8, **limits):
    """Two processes of four threads, `calls` each; the slots they were given, merged."""
    env = {
        **worker_env(),
        "OPENAI_BASE_URL": server.url + "/v1",
        "PROBE_CALLS": str(calls),
        "PROBE_PROMPT_CHARS": str(prompt_chars),
        "PROBE_MAX_TOKENS": str(max_tokens),
        **{name: str(value) for name, value in limits.items()},
    }
    processes = [
        subprocess.Popen([sys.executable, "-c", PROBE], cwd=ROOT, env=env, stdout=subprocess.PIPE)
        for _ in range(2)
    ]
    slots = []
    for process in processes:
        out, _ = process.communicate(timeout=120)
        assert process.returncode == 0
        slots += json.loads(out)
    return sorted(slots)


def test_the_rate_limit_is_shared_by_two_processes(openai_server):
    slots = run_probes(openai_server, calls=8, AI_RATE_LIMIT_RPM=300)  # one call every 0.2 s
    times = sorted(openai_server.times)
    assert len(slots) == len(times) == 16
    # The limiter let the 16 calls of both processes go 0.2 s apart (bar its 0.1 s slack),
    # whatever each process alone would have done (4 threads, no waiting)...
    assert slots[-1] - slots[0] >= 15 * 0.2 - 0.1
    for start in slots:  # one second holds 5 slots, 6 with the slack
        assert sum(1 for t in slots if start <= t < start + 1) <= 6
    # ...and none reached the server before its slot (load can only make calls later).
    assert all(arrived >= slot - 0.01 for arrived, slot in zip(times, slots, strict=True))


def _throughput(accepted: list[tuple[float, int]]) -> tuple[float, float]:
    """Requests and tokens per minute the server took, over the time from its first to its
    last acceptance (the last one's share is outside that span)."""
    span = accepted[-1][0] - accepted[0][0]
    return 60 * (len(accepted) - 1) / span, 60 * sum(t for _, t in accepted[:-1]) / span


@pytest.mark.parametrize(
    ("bound", "calls", "prompt_chars", "max_tokens", "used"),
    [
        # 20 tokens a call, estimated right: 600 RPM binds (200 tokens/s of 1,000).
        ("rpm", 25, 40, 10, (10, 10)),
        # Estimated at 200 tokens (50 of prompt + maxTokens 150), counted 100: 12,000 TPM
        # binds at 2 calls/s, only if the estimate is corrected (1 call/s if not).
        ("tpm", 6, 200, 150, (50, 50)),
    ],
)
def test_request_and_token_limits_hold_without_a_429_storm_near_full_throughput(
    openai_server, bound, calls, prompt_chars, max_tokens, used
):
    rpm, tpm = 600, 60_000 if bound == "rpm" else 12_000
    openai_server.limits = Buckets(rpm=rpm, tpm=tpm)  # a provider's limits, 2 s of burst
    openai_server.usage_of = lambda request: used
    run_probes(
        openai_server,
        calls=calls,
        prompt_chars=prompt_chars,
        max_tokens=max_tokens,
        AI_RATE_LIMIT_RPM=rpm,
        AI_RATE_LIMIT_TPM=tpm,
    )
    limits = openai_server.limits
    assert len(limits.accepted) == 2 * calls  # every call made it, retried or not
    assert len(limits.rejected) <= 2  # not a storm
    requests_pm, tokens_pm = _throughput(limits.accepted)
    # (No upper bound here: the server's 429s are the judge of that; over a few seconds the
    # limiter's 0.1 s slack shows as a few per cent above the rate.)
    if bound == "rpm":
        assert requests_pm >= 0.9 * rpm, requests_pm
    else:
        assert tokens_pm >= 0.9 * tpm, tokens_pm


def test_a_429_pauses_every_process_not_only_the_one_that_got_it(openai_server):
    first_429 = []

    def one_429(request):
        if len(openai_server.requests) == 6 and not first_429:
            first_429.append(openai_server.times[-1])
            return Reply(status=429, headers={"Retry-After": "1"}, error="slow down")
        return None

    openai_server.decide = one_429
    openai_server.default = Reply(delay=0.1)  # each thread has one call in flight at most
    slots = run_probes(openai_server, calls=20)  # no limits set: only the pause holds them
    [paused_at] = first_429
    assert len(slots) == 41  # 40 calls, one of them twice
    # 34 calls were left, for eight threads at ~10 calls a second each: without a shared
    # pause they would all have arrived within the second the 429 asked for. With it, only
    # calls sent before the pause was set arrive (a margin for a process slow to set it).
    held_back = [t for t in openai_server.times if paused_at < t < paused_at + 0.9]
    assert len(held_back) <= 12
    assert max(openai_server.times) >= paused_at + 0.9  # the rest went after the pause


@pytest.mark.django_db
def test_model_calls_go_on_limited_per_process_while_redis_is_unreachable(
    run_steps, openai_server, settings, caplog
):
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"  # nothing listens there
    settings.AI_RATE_LIMIT_RPM = 6000
    ratelimit._shared.cache_clear()
    try:
        step = {
            "type": "ai_generate",
            "config": {"prompt": "x", "outputField": "y", "provider": "openai"},
        }
        items, _ = run_steps([step], {"title": "Lamp"}, {"title": "Chair"})
    finally:
        ratelimit._shared.cache_clear()
    assert [item.status for item in items] == ["completed", "completed"]
    assert len(openai_server.requests) == 2
    assert "Redis unreachable" in caplog.text and "limiting per process" in caplog.text
