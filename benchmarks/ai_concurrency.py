"""How many model calls a worker process keeps in flight.

400 `ai_generate` calls, in chunks of RUN_CHUNK_SIZE as a worker takes them, through the real
OpenAI SDK against an OpenAI-compatible server on loopback (its own process) that answers in
100 ms. Effective concurrency = calls x latency / wall time, compared with AI_MAX_CONCURRENCY
(aim: >= 80%).
"""

import os
import socket
import subprocess
import sys
import time

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.base")

CALLS = 400
LATENCY_S = 0.1


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run() -> dict:
    import django

    django.setup()
    from django.conf import settings

    from workflows import providers
    from workflows.steps import registry
    from workflows.steps.runtime import DryRun, EntityState, StepContext

    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.llm_server", str(port), str(LATENCY_S)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout.readline().strip() == "ready"
        settings.OPENAI_BASE_URL = f"http://127.0.0.1:{port}/v1"
        providers._instances.clear()
        step = registry.get("ai_generate")
        config = step.with_defaults(
            {
                "prompt": "Describe {{ entity.title }}",
                "outputField": "description",
                "provider": "openai",
            }
        )

        def states(n):
            return [
                EntityState(
                    entity_id=f"ent_{i}", status="draft", data={"title": f"Item {i}"}, committed={}
                )
                for i in range(n)
            ]

        def ctx():
            return StepContext(
                run_id="bench", workflow_id="wf", step_id="gen", step_index=0, engine=DryRun()
            )

        step.run_batch(states(16), config, ctx())  # warm: SDK imported, connections open
        batch = states(CALLS)
        chunk = settings.RUN_CHUNK_SIZE
        started = time.perf_counter()
        for first in range(0, CALLS, chunk):
            step.run_batch(batch[first : first + chunk], config, ctx())
        wall = time.perf_counter() - started
    finally:
        server.kill()
    failed = [s for s in batch if s.outcome == "failed"]
    assert not failed, failed[0].error
    effective = CALLS * LATENCY_S / wall
    return {
        "calls": CALLS,
        "latency_s": LATENCY_S,
        "chunk_size": settings.RUN_CHUNK_SIZE,
        "wall_s": round(wall, 3),
        "configured_concurrency": settings.AI_MAX_CONCURRENCY,
        "effective_concurrency": round(effective, 2),
        "ratio": round(effective / settings.AI_MAX_CONCURRENCY, 3),
        "target_ratio": 0.8,
    }


if __name__ == "__main__":
    import json

    print(json.dumps(run(), indent=2))
