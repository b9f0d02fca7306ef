"""The product's Prometheus metrics, kept in prometheus-client's multiprocess mode.

Every process (web, each Celery worker child) writes its values to files under
PROMETHEUS_MULTIPROC_DIR, which the settings set before anything imports prometheus_client;
`/metrics` sums the files, so counters add up across processes and survive a child's exit.
Values that are facts in the database (runs by status) are read from it at scrape time
instead (`jobs.metrics`).
"""

import os
from contextlib import contextmanager

from django.core.exceptions import ImproperlyConfigured
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, multiprocess, values

if "PROMETHEUS_MULTIPROC_DIR" not in os.environ or values.ValueClass.__name__ != "MmapedValue":
    raise ImproperlyConfigured(
        "PROMETHEUS_MULTIPROC_DIR must be set before prometheus_client is imported "
        "(config.settings sets it)."
    )

MODEL = ["provider", "model"]
MODEL_CALLS = Counter(
    "workflows_model_calls", "Model calls (each attempt), by outcome.", [*MODEL, "outcome"]
)
MODEL_BATCH_CALLS = Counter(
    "workflows_model_batch_calls",
    "Batch API round trips (submit, status, results, cancel), by outcome; each request's "
    "answer counts in workflows_model_calls when its results are read.",
    ["provider", "operation", "outcome"],
)
MODEL_RETRIES = Counter("workflows_model_retries", "Model calls retried.", MODEL)
MODEL_RATE_LIMITED = Counter("workflows_model_rate_limited", "429 answers from the model.", MODEL)
MODEL_TOKENS = Counter("workflows_model_tokens", "Tokens the model counted.", [*MODEL, "kind"])
MODEL_COST = Counter(
    "workflows_model_cost_usd",
    "What the model calls cost, in USD, where the model's price is known.",
    MODEL,
)
MODEL_UNPRICED = Counter(
    "workflows_model_unpriced_calls", "Model calls whose model has no known price.", MODEL
)
MODEL_SECONDS = Histogram(
    "workflows_model_call_seconds",
    "Time of one model call (attempt), waiting for the rate limit excluded.",
    MODEL,
    buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 40, 60, 120),
)
MODEL_IN_FLIGHT = Gauge(
    "workflows_model_calls_in_flight", "Model calls in flight.", MODEL, multiprocess_mode="livesum"
)
ENTITIES = Counter(
    "workflows_entities_processed", "Entities a step took, by outcome.", ["step_type", "outcome"]
)
WAIT_TICKS_DROPPED = Counter(
    "workflows_wait_ticks_dropped",
    "Beat's ticks of the waits a worker dropped unrun, found past WAITS_TICK_EXPIRES_S: the "
    "waits worker was down or behind (delays, reviews' expiry, event timeouts waited).",
)
CHUNK_SECONDS = Histogram(
    "workflows_chunk_seconds",
    "Time of one chunk delivery, start to end.",
    buckets=(0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800),
)


@contextmanager
def model_call(provider: str, model: str):
    """Counts one call in flight and times it."""
    gauge = MODEL_IN_FLIGHT.labels(provider, model)
    gauge.inc()
    try:
        with MODEL_SECONDS.labels(provider, model).time():
            yield
    finally:
        gauge.dec()


def registry_collect(*extra) -> CollectorRegistry:
    """Every process's values, and the `extra` collectors."""
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    for collector in extra:
        registry.register(collector)
    return registry


def metrics_files_clear(folder: str) -> int:
    """Delete the processes' files in `folder` (PROMETHEUS_MULTIPROC_DIR) as the machine's
    processes start: the files of processes gone before (a Ctrl-C'd demo, whose children were
    never marked dead) would keep their live gauges (calls in flight) and add their counters
    to the new ones'. Returns how many it deleted."""
    deleted = 0
    for name in os.listdir(folder):
        if name.endswith(".db"):
            os.remove(os.path.join(folder, name))
            deleted += 1
    return deleted


def process_dead(pid: int) -> None:
    """Drop a finished process's live gauges (its counters stay counted)."""
    multiprocess.mark_process_dead(pid)
