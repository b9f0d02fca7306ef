"""Runs over a filter: `POST /workflows/:id/run` with `filter`, items made in batches."""

import threading
import time
from collections import Counter
from datetime import timedelta

import pytest
from django.db import OperationalError, connection, transaction
from django.utils import timezone

from entities.models import Entity
from jobs import filter_runs, queue
from jobs.cancel import run_cancel
from jobs.engine.chunk import chunk_execute
from jobs.engine.outcomes import run_count
from jobs.filter_runs import run_items_make
from jobs.lifecycle import run_end_if_done
from jobs.models import Run, RunItem
from jobs.queue import chunks_enqueue
from tests.factories import make_entities, make_workflow, run_inline
from workflows.usage import ZERO

pytestmark = pytest.mark.django_db

PUBLISH = [{"type": "publish", "config": {}}]


@pytest.fixture
def workflow(product_type):
    return make_workflow(product_type, PUBLISH)


def _run(api, workflow, body):
    return api.post(f"/api/v1/workflows/{workflow.pk}/run", body)


def _ms(moment) -> int:
    return int(moment.timestamp() * 1000)


def test_a_run_over_a_filter_answers_202_pending_with_no_total_until_its_items_are_made(
    api, workflow, product_type
):
    ids = make_entities(product_type, 7)
    response = _run(api, workflow, {"filter": {}})
    assert response.status_code == 202
    run = Run.objects.get(pk=response.json()["runId"])
    assert run.status == "pending" and run.total is None
    progress = api.get(f"/api/v1/workflows/{workflow.pk}/runs/{run.pk}").json()["progress"]
    assert progress["total"] is None
    assert run_items_make(run_id=run.pk) == 7
    run.refresh_from_db()
    assert run.total == 7
    assert sorted(RunItem.objects.filter(run=run).values_list("entity_id", flat=True)) == sorted(
        ids
    )


def test_items_are_made_in_batches_in_id_order_with_their_chunks_numbered_across_batches(
    api, workflow, product_type, settings
):
    settings.RUN_ITEMS_BATCH_SIZE = 3
    settings.RUN_CHUNK_SIZE = 4
    ids = sorted(make_entities(product_type, 10))
    run_id = _run(api, workflow, {"filter": {}}).json()["runId"]
    run_items_make(run_id=run_id)
    items = list(RunItem.objects.filter(run_id=run_id).order_by("entity_id"))
    assert [item.entity_id for item in items] == ids
    assert [item.chunk for item in items] == [0, 0, 0, 0, 1, 1, 1, 1, 2, 2]
    run_inline(run_id)
    run = Run.objects.get(pk=run_id)
    assert (run.status, run.completed, run.total) == ("completed", 10, 10)
    assert set(Entity.objects.filter(pk__in=ids).values_list("status", flat=True)) == {"published"}


def test_making_items_again_after_a_crash_resumes_from_the_cursor_without_repeats(
    api, workflow, product_type, settings
):
    settings.RUN_ITEMS_BATCH_SIZE = 4
    make_entities(product_type, 10)
    run_id = _run(api, workflow, {"filter": {}}).json()["runId"]
    first = sorted(Entity.objects.values_list("pk", flat=True))[:4]
    # As if a worker died after committing the first batch.
    RunItem.objects.bulk_create(RunItem(run_id=run_id, entity_id=e, chunk=0) for e in first)
    Run.objects.filter(pk=run_id).update(items_made=4, items_cursor=first[-1])
    assert run_items_make(run_id=run_id) == 10
    assert run_items_make(run_id=run_id) == 10  # a redelivery does nothing
    assert RunItem.objects.filter(run_id=run_id).count() == 10


def test_the_filter_selects_by_status_times_and_ids(api, workflow, product_type):
    old = make_entities(product_type, 3)
    Entity.objects.filter(pk__in=old).update(created_at=timezone.now() - timedelta(days=2))
    new = make_entities(product_type, 4)
    Entity.objects.filter(pk=new[0]).update(status="published")
    yesterday = _ms(timezone.now() - timedelta(days=1))
    cases = [
        ({"createdAfter": yesterday}, set(new)),
        ({"createdBefore": yesterday}, set(old)),
        ({"createdAfter": yesterday, "status": "draft"}, set(new[1:])),
        ({"status": "published"}, {new[0]}),
        ({"ids": [old[0], new[1], "ent_nope"]}, {old[0], new[1]}),
        ({"updatedAfter": yesterday}, set(old + new)),
    ]
    for entity_filter, expected in cases:
        run_id = _run(api, workflow, {"filter": entity_filter}).json()["runId"]
        run_items_make(run_id=run_id)
        made = set(RunItem.objects.filter(run_id=run_id).values_list("entity_id", flat=True))
        assert made == expected, entity_filter


def test_limit_caps_the_run_at_the_first_entities_in_id_order(api, workflow, product_type):
    ids = sorted(make_entities(product_type, 6))
    run_id = _run(api, workflow, {"filter": {}, "limit": 4}).json()["runId"]
    assert run_items_make(run_id=run_id) == 4
    made = sorted(RunItem.objects.filter(run_id=run_id).values_list("entity_id", flat=True))
    assert made == ids[:4]


def test_more_matches_than_run_max_entities_is_a_400_saying_how_many(
    api, workflow, product_type, settings
):
    settings.RUN_MAX_ENTITIES = 5
    make_entities(product_type, 8)
    response = _run(api, workflow, {"filter": {"status": "draft"}})
    assert response.status_code == 400
    body = response.json()
    assert "8 entities match" in body["error"]["message"]
    assert body["error"]["details"][0]["field"] == "filter"
    # With a limit under the maximum it runs.
    assert _run(api, workflow, {"filter": {}, "limit": 5}).status_code == 202
    assert _run(api, workflow, {"filter": {}, "limit": 6}).status_code == 400
    assert not Run.objects.filter(total__gt=5).exists()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"filter": {"status": "gone"}}, "filter.status"),
        ({"filter": {"colour": "red"}}, "filter.colour"),
        ({"filter": {"createdAfter": "yesterday"}}, "filter.createdAfter"),
        ({"filter": {"createdAfter": 10**20}}, "filter.createdAfter"),
        ({"filter": {"ids": "ent_1"}}, "filter.ids"),
        ({"filter": {"ids": []}}, "filter.ids"),
        ({"filter": {"ids": [5]}}, "filter.ids[0]"),
        ({"filter": []}, "filter"),
        ({"filter": {}, "limit": 0}, "limit"),
        ({"filter": {}, "limit": "ten"}, "limit"),
        ({"entityIds": ["x"], "limit": 3}, "limit"),
        ({"entityIds": ["x"], "filter": {}}, "entityIds"),
        ({}, "entityIds"),
    ],
)
def test_a_bad_filter_request_is_a_400_naming_the_field(api, workflow, product_type, body, field):
    make_entities(product_type, 2)
    response = _run(api, workflow, body)
    assert response.status_code == 400, response.content
    fields = [d["field"] for d in response.json()["error"]["details"]]
    assert field in fields
    assert not Run.objects.exists()


def test_a_filter_matching_nothing_is_a_400(api, workflow, product_type):
    make_entities(product_type, 2)
    response = _run(api, workflow, {"filter": {"status": "published"}})
    assert response.status_code == 400
    assert "matches the filter" in response.json()["error"]["message"]


def test_entities_created_after_the_run_started_are_not_in_it(api, workflow, product_type):
    before = make_entities(product_type, 3)
    run_id = _run(api, workflow, {"filter": {}}).json()["runId"]
    make_entities(product_type, 2)
    run_items_make(run_id=run_id)
    made = set(RunItem.objects.filter(run_id=run_id).values_list("entity_id", flat=True))
    assert made == set(before)


def test_a_run_cancelled_while_its_items_are_made_stops_making_them_and_adds_up(
    api, workflow, product_type, settings
):
    make_entities(product_type, 5)
    run_id = _run(api, workflow, {"filter": {}}).json()["runId"]
    run_cancel(run_id=run_id)
    run_items_make(run_id=run_id)
    run = Run.objects.get(pk=run_id)
    assert (run.status, run.total, run.cancelled, run.completed) == ("cancelled", 0, 0, 0)


def test_runs_and_jobs_say_what_started_them(api, workflow, product_type):
    ids = make_entities(product_type, 2)
    body = _run(api, workflow, {"entityIds": ids}).json()
    run = api.get(f"/api/v1/workflows/{workflow.pk}/runs/{body['runId']}").json()
    job = api.get(f"/api/v1/jobs/{body['jobId']}").json()
    assert run["trigger"] == job["trigger"] == {"type": "api"}
    Run.objects.filter(pk=body["runId"]).update(status="failed")
    RunItem.objects.filter(run_id=body["runId"], entity_id=ids[0]).update(status="failed")
    retry = api.post(f"/api/v1/workflows/{workflow.pk}/runs/{body['runId']}/retry", {}).json()
    shown = api.get(f"/api/v1/jobs/{retry['jobId']}").json()["trigger"]
    assert shown == {"type": "retry", "runId": body["runId"]}


def _queued_chunks(callbacks) -> list[list[int]]:
    return [list(c.args[1]) for c in callbacks if getattr(c, "func", None) is chunks_enqueue]


def test_each_batch_queues_the_chunks_it_completed_and_the_last_queues_the_rest(
    api, workflow, product_type, settings, django_capture_on_commit_callbacks
):
    settings.RUN_ITEMS_BATCH_SIZE = 4
    settings.RUN_CHUNK_SIZE = 3
    make_entities(product_type, 10)
    run_id = _run(api, workflow, {"filter": {}}).json()["runId"]
    with django_capture_on_commit_callbacks() as callbacks:
        run_items_make(run_id=run_id)
    # Batches of 4, 4 and 2 items: chunk 0 (items 0-2) after the first, chunk 1 (3-5) once
    # the second made item 5, the rest (6-8 and 9) once the total is known.
    assert _queued_chunks(callbacks) == [[0], [1], [2, 3]]
    run_inline(run_id)
    run = Run.objects.get(pk=run_id)
    assert (run.status, run.completed, run.total) == ("completed", 10, 10)


def test_a_model_steps_smaller_chunks_are_queued_as_they_are_made(
    api, product_type, settings, django_capture_on_commit_callbacks
):
    """A workflow with a model step has chunks of AI_RUN_CHUNK_SIZE: each batch queues the
    chunks of that size it completed, every one exactly once."""
    settings.RUN_ITEMS_BATCH_SIZE, settings.RUN_CHUNK_SIZE, settings.AI_RUN_CHUNK_SIZE = 4, 6, 2
    generate = {"type": "ai_generate", "config": {"prompt": "x", "outputField": "y"}}
    workflow = make_workflow(product_type, [generate])
    make_entities(product_type, 10)
    run_id = _run(api, workflow, {"filter": {}}).json()["runId"]
    with django_capture_on_commit_callbacks() as callbacks:
        run_items_make(run_id=run_id)
    assert _queued_chunks(callbacks) == [[0, 1], [2, 3], [4]]
    assert sorted(set(RunItem.objects.filter(run_id=run_id).values_list("chunk", flat=True))) == [
        0,
        1,
        2,
        3,
        4,
    ]
    run_inline(run_id)
    run = Run.objects.get(pk=run_id)
    assert (run.status, run.completed, run.total) == ("completed", 10, 10)


def test_a_run_its_first_chunks_started_is_still_made_in_full_and_ended_by_its_last_batch(
    api, workflow, product_type, settings, django_capture_on_commit_callbacks
):
    settings.RUN_ITEMS_BATCH_SIZE = 4
    settings.RUN_CHUNK_SIZE = 4
    ids = sorted(make_entities(product_type, 8))
    run_id = _run(api, workflow, {"filter": {}}).json()["runId"]
    # As if both batches were made and their chunks ran before the last (empty) batch: the
    # chunks could not end the run, its total unknown.
    RunItem.objects.bulk_create(
        RunItem(run_id=run_id, entity_id=e, chunk=i // 4) for i, e in enumerate(ids)
    )
    Run.objects.filter(pk=run_id).update(items_made=8, items_cursor=ids[-1])
    chunk_execute(run_id=run_id, chunk=0)
    chunk_execute(run_id=run_id, chunk=1)
    run = Run.objects.get(pk=run_id)
    assert (run.status, run.completed, run.total) == ("running", 8, None)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        assert run_items_make(run_id=run_id) == 8
    assert _queued_chunks(callbacks) == [[]]
    for callback in callbacks:
        if getattr(callback, "func", None) is run_end_if_done:
            callback()
    run = Run.objects.get(pk=run_id)
    assert (run.status, run.completed, run.total) == ("completed", 8, 8)


def test_batches_after_the_first_chunks_started_the_run_are_still_made(
    api, workflow, product_type, settings
):
    settings.RUN_ITEMS_BATCH_SIZE = 4
    settings.RUN_CHUNK_SIZE = 4
    ids = sorted(make_entities(product_type, 10))
    run_id = _run(api, workflow, {"filter": {}}).json()["runId"]
    RunItem.objects.bulk_create(RunItem(run_id=run_id, entity_id=e, chunk=0) for e in ids[:4])
    Run.objects.filter(pk=run_id).update(items_made=4, items_cursor=ids[3])
    chunk_execute(run_id=run_id, chunk=0)  # the run is running now
    assert run_items_make(run_id=run_id) == 10
    run_inline(run_id)
    run = Run.objects.get(pk=run_id)
    assert (run.status, run.completed, run.total) == ("completed", 10, 10)


def test_a_large_runs_chunk_size_is_fixed_when_it_starts_and_every_batch_keeps_it(
    api, workflow, product_type, settings, django_capture_on_commit_callbacks
):
    """1,000 entities at RUN_CHUNK_SIZE 2 would be 500 chunks: the run is cut into chunks of
    10 (RUN_CHUNK_SIZE_MAX: 100 chunks), sized on what matched at the request. Changing the
    settings while its items are made changes nothing: every batch numbers its chunks with
    the stored size."""
    settings.RUN_ITEMS_BATCH_SIZE, settings.RUN_CHUNK_SIZE, settings.RUN_CHUNK_SIZE_MAX = 250, 2, 10
    settings.WORKER_CONCURRENCY = 2
    make_entities(product_type, 1000)
    run_id = _run(api, workflow, {"filter": {}}).json()["runId"]
    assert Run.objects.get(pk=run_id).chunk_size == 10
    settings.RUN_CHUNK_SIZE = 3  # a deploy between the request and the making of the items
    with django_capture_on_commit_callbacks() as callbacks:
        assert run_items_make(run_id=run_id) == 1000
    queued = _queued_chunks(callbacks)
    # A first batch of 20 items (two chunks, one per worker process: WORKER_CONCURRENCY),
    # three full batches of 250 (25 chunks each), the last 230.
    assert queued == [[0, 1], *(list(range(s, s + 25)) for s in (2, 27, 52)), list(range(77, 100))]
    sizes = Counter(RunItem.objects.filter(run_id=run_id).values_list("chunk", flat=True))
    assert sorted(sizes) == list(range(100)) and set(sizes.values()) == {10}
    run_inline(run_id)
    run = Run.objects.get(pk=run_id)
    assert (run.status, run.completed, run.total) == ("completed", 1000, 1000)


def test_a_limit_sizes_the_chunks_on_what_the_run_takes(api, workflow, product_type, settings):
    settings.RUN_CHUNK_SIZE, settings.RUN_CHUNK_SIZE_MAX = 2, 50
    make_entities(product_type, 1000)
    run_id = _run(api, workflow, {"filter": {}, "limit": 300}).json()["runId"]
    assert Run.objects.get(pk=run_id).chunk_size == 30  # 10 chunks of the 300 it takes


def _no_tasks(monkeypatch) -> None:
    """A test whose data is committed: the session's worker, if one runs, must not take
    the run's tasks (it would make the items or run the chunks itself)."""
    for name in ("items_make_enqueue", "chunks_enqueue", "run_cancel_enqueue"):
        monkeypatch.setattr(queue, name, lambda *args, **kwargs: None)


def _in_a_thread(target) -> threading.Thread:
    def run():
        try:
            target()
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


@pytest.mark.django_db(transaction=True)
def test_a_batch_being_made_holds_off_neither_the_chunks_counters_nor_a_cancel_which_undoes_it(
    api, workflow, product_type, settings, monkeypatch
):
    """Every chunk that ends updates its run's row (its counters): a maker holding that row
    for a whole batch (0.1-0.2 s for 10,000 items) made every chunk ending meanwhile wait.
    The row is locked once the batch is made; a cancel asked while it was made is seen
    then, and the batch is undone."""
    settings.RUN_ITEMS_BATCH_SIZE, settings.RUN_CHUNK_SIZE, settings.WORKER_CONCURRENCY = 4, 2, 1
    _no_tasks(monkeypatch)
    make_entities(product_type, 10)
    run_id = _run(api, workflow, {"filter": {}}).json()["runId"]
    made_by = filter_runs._insert_batch
    asked, meanwhile = [], []

    def counted_then_cancelled():
        try:
            with transaction.atomic():
                with connection.cursor() as cursor:
                    cursor.execute("SET LOCAL lock_timeout = '2s'")
                run_count(run_id, {"completed": 0}, ZERO, timezone.now())
        except OperationalError as exc:
            meanwhile.append(f"the counters waited: {exc}")
            return
        meanwhile.append("counted")
        run_cancel(run_id=run_id)
        meanwhile.append("cancelled")

    def batch(run, count):
        asked.append(count)
        made = made_by(run, count)
        if len(asked) == 2:  # the first batch is made; while the second is
            thread = _in_a_thread(counted_then_cancelled)
            thread.join(20)
            assert not thread.is_alive(), "the cancel waited for the batch"
        return made

    monkeypatch.setattr(filter_runs, "_insert_batch", batch)
    assert run_items_make(run_id=run_id) == 2
    assert asked == [2, 4]  # a first batch of one chunk per worker process, then 4
    assert meanwhile == ["counted", "cancelled"]
    run = Run.objects.get(pk=run_id)
    # The first batch's two items, cancelled by the cancel's batch; the second undone.
    assert (run.status, run.total, run.items_made, run.cancelled) == ("cancelled", 2, 2, 2)
    assert set(RunItem.objects.filter(run_id=run_id).values_list("status", flat=True)) == {
        "cancelled"
    }


def _until_a_lock_is_awaited(thread, timeout: float = 20) -> None:
    """Until a statement of another connection waits for a lock this one holds (`pg_locks`
    and `pg_blocking_pids` are read live, not from the transaction's snapshot; other tests'
    waits do not count), `thread` still going."""
    deadline = time.monotonic() + timeout
    with connection.cursor() as cursor:
        while time.monotonic() < deadline:
            assert thread.is_alive(), "the thread ended without waiting for a lock"
            cursor.execute(
                "SELECT count(*) FROM pg_locks WHERE NOT granted "
                "AND pg_backend_pid() = ANY(pg_blocking_pids(pid))"
            )
            if cursor.fetchone()[0]:
                return
            time.sleep(0.02)
    raise AssertionError("no statement waited for a lock")


@pytest.mark.django_db(transaction=True)
def test_a_cancel_asked_once_a_batch_holds_the_run_waits_for_it_and_ends_its_items_too(
    api, workflow, product_type, settings, monkeypatch
):
    settings.RUN_ITEMS_BATCH_SIZE, settings.RUN_CHUNK_SIZE, settings.WORKER_CONCURRENCY = 4, 2, 1
    _no_tasks(monkeypatch)
    make_entities(product_type, 10)
    run_id = _run(api, workflow, {"filter": {}}).json()["runId"]
    locked_by = filter_runs._run_lock
    threads = []

    def lock(locked_id):
        goes_on = locked_by(locked_id)
        if not threads:  # the first batch, made and holding the run's row
            threads.append(_in_a_thread(lambda: run_cancel(run_id=run_id)))
            # The cancel waits for the batch's COMMIT: seen waiting for a lock, not just
            # not finished yet (on a loaded machine it may not have asked yet).
            _until_a_lock_is_awaited(threads[0])
        return goes_on

    monkeypatch.setattr(filter_runs, "_run_lock", lock)
    assert run_items_make(run_id=run_id) == 2  # the next batch sees the cancel
    threads[0].join(20)
    assert not threads[0].is_alive()
    run = Run.objects.get(pk=run_id)
    # The batch kept, its items seen by the cancel's batch.
    assert (run.status, run.total, run.cancelled) == ("cancelled", 2, 2)
