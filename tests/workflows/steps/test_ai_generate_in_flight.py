"""A worker process keeps AI_MAX_CONCURRENCY model calls in flight at once: nothing between
the step and the server (its threads, the SDK's connection pool, the server's backlog)
holds fewer. The fake server counts the calls it holds at once."""

import threading

import pytest

from tests.servers import Reply

pytestmark = pytest.mark.django_db

GENERATE = {
    "type": "ai_generate",
    "config": {"prompt": "Describe {{ entity.title }}", "outputField": "d", "provider": "openai"},
}


@pytest.mark.parametrize("concurrency", [64])
def test_a_chunk_keeps_ai_max_concurrency_calls_in_flight(
    run_steps, openai_server, settings, concurrency
):
    settings.AI_MAX_CONCURRENCY = concurrency
    settings.AI_RUN_CHUNK_SIZE = 2 * concurrency
    settings.WORKER_CONCURRENCY = 1  # one chunk of two rounds of calls
    openai_server.default = Reply(delay=0.5)  # long enough for every thread to have sent
    items, _ = run_steps([GENERATE], *({"title": f"Item {i}"} for i in range(2 * concurrency)))
    assert [item.status for item in items] == ["completed"] * 2 * concurrency
    assert len(openai_server.requests) == 2 * concurrency
    assert openai_server.peak_in_flight == concurrency


def test_the_threads_of_a_chunk_are_kept_for_the_next(run_steps, openai_server, settings):
    settings.AI_MAX_CONCURRENCY = 4
    run_steps([GENERATE], *({"title": f"Item {i}"} for i in range(8)))
    before = {t.ident for t in threading.enumerate() if t.name.startswith("bounded-calls")}
    run_steps([GENERATE], *({"title": f"Item {i}"} for i in range(8)))
    after = {t.ident for t in threading.enumerate() if t.name.startswith("bounded-calls")}
    assert len(before) >= 4 and after == before
