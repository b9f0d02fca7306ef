"""Beat's ticks of the waits, queued while no waits worker takes them, with real beat, a real
worker and Redis: the stale ones expire instead of all running when a worker comes back."""

import re
import time

import pytest
import redis
from django_celery_results.models import TaskResult

from config.metrics import registry_collect
from tests.workers import broker_of_its_own, start_beat, start_worker, wait_until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]

TICK = r"jobs\.tasks\.tick_waits\[[^\]]+\]"


@pytest.mark.long
def test_ticks_queued_while_the_waits_worker_was_down_are_dropped_not_run(settings, tmp_path):
    """Beat sends a tick every WAITS_TICK_S whether or not a worker takes it: an hour's
    outage of the waits worker left 3,600 on the broker, each run in turn by the worker
    coming back (each tick's queries for every kind, an hour of work behind the live ticks).
    A tick left past WAITS_TICK_EXPIRES_S is now dropped by the worker that finds it, and
    leaves no row behind."""
    dropped_before = _ticks_dropped()
    with broker_of_its_own(settings, tmp_path):
        broker = redis.Redis.from_url(settings.CELERY_BROKER_URL)
        beat = start_beat(tmp_path / "beat.log", WAITS_TICK_EXPIRES_S="2")
        try:
            wait_until(lambda: broker.llen("waits") >= 5, "beat to queue 5 ticks")
        finally:
            beat.stop()  # no tick is sent after those counted
        queued = broker.llen("waits")
        time.sleep(3)  # past the ticks' expiry: the worker was down that long
        worker = start_worker(tmp_path / "waits.log", queues="waits")
        try:

            def handled():
                log = worker.log_text()
                dropped = len(re.findall(rf"Discarding revoked task: {TICK}", log))
                ran = len(re.findall(rf"Task {TICK} succeeded", log))
                return (dropped, ran) if dropped + ran >= queued else None

            dropped, ran = wait_until(handled, f"the worker to take the {queued} ticks")
        finally:
            worker.stop()
    assert (dropped, ran) == (queued, 0)
    # Nor does each dropped tick leave a results row (REVOKED): an hour's outage made 3,600.
    assert not TaskResult.objects.exists()
    # The worker's log is not where an operator alerts: /metrics counts them.
    assert _ticks_dropped() - dropped_before == dropped


def _ticks_dropped() -> float:
    """workflows_wait_ticks_dropped_total as /metrics reads it (every process's files)."""
    return registry_collect().get_sample_value("workflows_wait_ticks_dropped_total") or 0.0
