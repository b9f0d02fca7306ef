"""How many entities one chunk (one task) of a run takes.

RUN_CHUNK_SIZE, grown for larger runs so that a run of more than LARGE_RUN_CHUNKS chunks
has that many, bigger ones (up to RUN_CHUNK_SIZE_MAX): past that many chunks every worker has
plenty to take, and each chunk's fixed cost (its task, lease, reads, counter updates and
commits: about 18 ms of a worker's CPU, against 60 us per entity through the pipeline's steps)
is paid fewer times. A 10,000-entity run is 10 chunks of 1,000 (25 of 400 before: 0.28 s more
of the workers' CPU), a 100,000 one 100 of 1,000.

Less when a step of the workflow asks for less (`StepType.chunk_size_limit`): a step whose
entities wait on slow calls (`ai_generate` in sync mode, `notify`) keeps chunks within its
limit whatever the run's size, cut so that every worker process gets as many
(WORKER_CONCURRENCY)."""

from django.conf import settings

from workflows.steps.registry import registry

# A run is cut into RUN_CHUNK_SIZE chunks until it would have more than this many.
LARGE_RUN_CHUNKS = 10


def chunk_size(steps: list[dict], entities: int | None = None) -> int:
    """The chunk size for a run of `entities` through a version's `steps`
    ([{"id", "type", "config"}, ...]); `entities` None is a run of unknown, small size."""
    size = settings.RUN_CHUNK_SIZE
    if entities:
        wanted = -(-entities // LARGE_RUN_CHUNKS)  # the size that makes LARGE_RUN_CHUNKS chunks
        size = max(size, min(wanted, settings.RUN_CHUNK_SIZE_MAX))
    # A type no longer registered sets no limit: the engine fails its entities at that step.
    limits = [
        registry.get(step["type"]).chunk_size_limit(step.get("config") or {})
        for step in steps
        if step.get("type") in registry
    ]
    limits = [limit for limit in limits if limit]
    if not limits:
        return size
    limit = min(size, *limits)
    if not entities:
        return limit
    return _spread(entities, limit, settings.WORKER_CONCURRENCY)


def _spread(entities: int, limit: int, processes: int) -> int:
    """The size of chunks of at most `limit` that share `entities` evenly among `processes`
    worker processes: a multiple of `processes` chunks, as few as the limit allows. Each
    chunk of slow calls pays a start and an end with none of its calls in flight (its
    claim, its last calls finishing at different times, its commit), so fewer chunks keep
    more calls in flight; and a chunk count that is not a multiple of the processes leaves
    some of them idle while the others finish theirs (800 calls in chunks of 128: 4
    chunks for one process, 3 for the other)."""
    per_process = -(-entities // processes)
    chunks = -(-per_process // limit) * processes
    return -(-entities // chunks)
