"""AI_RATE_LIMIT_RPM holds across worker processes: the limit lives in Redis."""

import subprocess
import sys
import textwrap

import pytest
from django.conf import settings

from tests.processes import ROOT
from tests.workers import worker_env

CALLS_PER_PROCESS = 8
PROBE = textwrap.dedent(f"""
    import django
    from concurrent.futures import ThreadPoolExecutor
    django.setup()
    from workflows.providers import GenerationRequest, provider_get
    provider = provider_get("openai")
    provider.client  # built before the clock starts, as in a warm worker
    request = GenerationRequest(prompt="hello", model="m")
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda _: provider.generate(request), range({CALLS_PER_PROCESS})))
""")


@pytest.mark.skipif(not settings.CELERY_BROKER_URL.startswith("redis"), reason="needs Redis")
def test_the_rate_limit_is_shared_by_two_processes(openai_server):
    env = {
        **worker_env(),
        "AI_RATE_LIMIT_RPM": "300",  # one call every 0.2 s
        "OPENAI_BASE_URL": openai_server.url + "/v1",
    }
    processes = [
        subprocess.Popen([sys.executable, "-c", PROBE], cwd=ROOT, env=env) for _ in range(2)
    ]
    for process in processes:
        assert process.wait(timeout=60) == 0
    times = sorted(openai_server.times)
    assert len(times) == 2 * CALLS_PER_PROCESS
    # Slots are 0.2 s apart across both processes: 16 calls need 15 intervals, whatever
    # each process alone would have done (4 threads, no waiting).
    # Generous margins for a loaded machine: without the limit all 16 arrive within ~0.1 s.
    assert times[-1] - times[0] >= 15 * 0.2 - 0.5
    for start in times:  # no 1-second window holds more than 5 calls (+2 for jitter)
        assert sum(1 for t in times if start <= t < start + 1) <= 7
