"""A run's chunk size: RUN_CHUNK_SIZE, or less when a step of the workflow asks for less."""

from workflows.steps.chunking import chunk_size

GENERATE = {"id": "gen", "type": "ai_generate", "config": {"prompt": "x", "outputField": "y"}}
TIDY = {"id": "tidy", "type": "transform", "config": {"operations": []}}


def test_a_workflow_without_a_model_step_keeps_the_run_chunk_size(settings):
    settings.RUN_CHUNK_SIZE, settings.AI_RUN_CHUNK_SIZE = 400, 64
    assert chunk_size([TIDY]) == 400


def test_a_model_step_makes_the_chunks_ai_run_chunk_size(settings):
    settings.RUN_CHUNK_SIZE, settings.AI_RUN_CHUNK_SIZE = 400, 64
    assert chunk_size([TIDY, GENERATE]) == 64


def test_a_run_chunk_size_smaller_than_the_ai_one_wins(settings):
    settings.RUN_CHUNK_SIZE, settings.AI_RUN_CHUNK_SIZE = 10, 64
    assert chunk_size([GENERATE]) == 10


def test_a_step_type_no_longer_registered_sets_no_limit(settings):
    settings.RUN_CHUNK_SIZE, settings.AI_RUN_CHUNK_SIZE = 400, 64
    assert chunk_size([{"id": "old", "type": "retired_step", "config": {}}]) == 400


def test_a_batch_mode_model_step_keeps_the_run_chunk_size(settings):
    """Its calls become one provider batch per chunk and hold no worker: larger chunks,
    fewer batches."""
    settings.RUN_CHUNK_SIZE, settings.AI_RUN_CHUNK_SIZE = 400, 64
    batch = {**GENERATE, "config": {**GENERATE["config"], "mode": "batch"}}
    assert chunk_size([TIDY, batch]) == 400
    assert chunk_size([batch, GENERATE]) == 64


def test_a_large_run_gets_bigger_chunks_up_to_the_maximum(settings):
    """Up to 10 chunks of RUN_CHUNK_SIZE; past that, about 10 chunks, none over the most."""
    settings.RUN_CHUNK_SIZE, settings.RUN_CHUNK_SIZE_MAX = 400, 1000
    assert chunk_size([TIDY], 4_000) == 400
    assert chunk_size([TIDY], 6_001) == 601
    assert chunk_size([TIDY], 100_000) == 1000
    assert chunk_size([TIDY], 1_000_000) == 1000


def test_a_model_steps_limit_holds_whatever_the_runs_size(settings):
    settings.RUN_CHUNK_SIZE, settings.RUN_CHUNK_SIZE_MAX, settings.AI_RUN_CHUNK_SIZE = 400, 1000, 64
    assert chunk_size([TIDY, GENERATE], 1_000_000) == 64


def test_a_maximum_below_the_chunk_size_never_shrinks_it(settings):
    settings.RUN_CHUNK_SIZE, settings.RUN_CHUNK_SIZE_MAX = 400, 100
    assert chunk_size([TIDY], 1_000_000) == 400


def test_a_notify_step_keeps_a_large_runs_chunks_at_the_run_chunk_size(settings):
    """A webhook may take its attempts' timeouts per entity: a chunk of 1,000 of them could
    outlast the broker's visibility timeout, so notify keeps RUN_CHUNK_SIZE."""
    settings.RUN_CHUNK_SIZE, settings.RUN_CHUNK_SIZE_MAX = 400, 1000
    notify = {"id": "tell", "type": "notify", "config": {"channel": "email", "to": "a@b.co"}}
    assert chunk_size([TIDY], 1_000_000) == 1000
    assert chunk_size([TIDY, notify], 1_000_000) == 400


def test_a_run_of_more_than_ten_chunks_gets_ten_bigger_ones_up_to_the_max(settings):
    """Each chunk has a fixed cost (its task, lease, reads, counters, commits): past ten
    chunks a run's chunks grow, up to RUN_CHUNK_SIZE_MAX, rather than multiply."""
    settings.RUN_CHUNK_SIZE, settings.RUN_CHUNK_SIZE_MAX = 400, 1000
    assert chunk_size([TIDY], 800) == 400  # two chunks: both worker processes take one
    assert chunk_size([TIDY], 4000) == 400
    assert chunk_size([TIDY], 6000) == 600
    assert chunk_size([TIDY], 10_000) == 1000
    assert chunk_size([TIDY], 100_000) == 1000
    # At most AI_RUN_CHUNK_SIZE, cut evenly over the worker processes (see below).
    assert chunk_size([TIDY, GENERATE], 10_000) <= settings.AI_RUN_CHUNK_SIZE


def test_a_model_steps_run_is_cut_into_a_multiple_of_the_worker_processes(settings):
    """800 calls over 2 processes in chunks of at most 128: 8 chunks of 100 (4 each), not 7
    of 128 (4 for one process, 3 for the other); within a limit of 400, one chunk each."""
    settings.RUN_CHUNK_SIZE, settings.RUN_CHUNK_SIZE_MAX = 400, 400
    settings.WORKER_CONCURRENCY, settings.AI_RUN_CHUNK_SIZE = 2, 128
    assert chunk_size([GENERATE], 800) == 100
    settings.AI_RUN_CHUNK_SIZE = 512  # RUN_CHUNK_SIZE is the lower
    assert chunk_size([GENERATE], 800) == 400
    assert chunk_size([GENERATE], 10_000) == 385  # 26 chunks, 13 each
    assert chunk_size([GENERATE], 1) == 1
    settings.WORKER_CONCURRENCY = 3
    assert chunk_size([GENERATE], 800) == 267
