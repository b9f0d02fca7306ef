"""Parking, deciding and resuming in set-based statements: their number does not grow with
the entities, a resumed entity is read once, and a bulk decision holds its runs' rows in a
lock that the chunks' counters do not wait for (a cancel does)."""

import threading

import pytest
from django.contrib.auth import get_user_model
from django.db import OperationalError, connection, transaction
from django.test.utils import CaptureQueriesContext

from jobs.engine.chunk import chunk_execute
from jobs.engine.outcomes import run_count
from jobs.engine.waits import run_waits_resume, runs_lock
from jobs.models import Review, Run, RunItem, RunLog, Wait
from jobs.waits.review.services import reviews_decide
from tests.factories import make_entities, make_workflow, run_inline, start_run
from workflows.usage import ZERO

pytestmark = pytest.mark.django_db

STEPS = [
    {
        "id": "tidy",
        "type": "transform",
        "config": {"operations": [{"op": "set", "field": "slug", "value": "{{ entity.title }}"}]},
    },
    {"id": "check", "type": "review", "config": {"instructions": "Is {{ entity.slug }} right?"}},
    {"id": "pub", "type": "publish", "config": {}},
]


@pytest.fixture
def admin(db):
    return get_user_model().objects.create_superuser("boss", "boss@example.com", "x")


def _statements(callable_) -> list[str]:
    with CaptureQueriesContext(connection) as captured:
        callable_()
    return [query["sql"] for query in captured.captured_queries]


def _parked(product_type, n: int) -> tuple[Run, list[str]]:
    run = start_run(make_workflow(product_type, STEPS), make_entities(product_type, n))
    parking = _statements(lambda: chunk_execute(run_id=run.pk, chunk=0))
    return run, parking


def test_parking_a_chunk_takes_as_many_statements_for_3_entities_as_for_12(product_type):
    _, three = _parked(product_type, 3)
    run_12, twelve = _parked(product_type, 12)
    assert len(three) == len(twelve)
    # One INSERT of the waits and one of the reviews, however many entities.
    inserts = [sql.split(" (")[0] for sql in twelve if sql.startswith("INSERT")]
    assert inserts.count('INSERT INTO "jobs_wait"') == 1
    assert inserts.count('INSERT INTO "jobs_review"') == 1
    assert Run.objects.get(pk=run_12.pk).waiting == 12
    assert Review.objects.filter(run=run_12, status="pending").count() == 12


def test_a_bulk_decision_of_a_chunk_or_more_queues_its_entities_at_once(
    product_type, admin, settings
):
    settings.RUN_CHUNK_SIZE = 4
    run, _ = _parked(product_type, 10)
    run_inline(run.pk)  # the other chunks park too
    reviews = list(Review.objects.filter(run=run).order_by("pk").values_list("pk", flat=True))
    assert len(reviews) == 10
    small = _statements(
        lambda: reviews_decide(review_ids=reviews[:4], decision="approve", user=admin)
    )
    large = _statements(
        lambda: reviews_decide(review_ids=reviews[4:], decision="approve", user=admin)
    )
    # 4 or 6 reviews: the same statements, but one UPDATE of the items per new chunk (the 6
    # make two), never one per review.
    assert len(large) == len(small) + 1
    items = RunItem.objects.filter(run=run)
    # Queued by the decisions, no resume task needed: 4 in one chunk, 6 in two of three.
    assert items.filter(status="pending").count() == 10
    sizes = sorted(
        items.filter(chunk=chunk).count() for chunk in set(items.values_list("chunk", flat=True))
    )
    assert sizes == [3, 3, 4]
    run.refresh_from_db()
    assert run.waiting == 0 and run.resume_requested_at is None
    assert run_waits_resume(run_id=run.pk) == 0
    run_inline(run.pk)
    run.refresh_from_db()
    assert (run.status, run.completed) == ("completed", 10)


def test_fewer_decisions_than_a_chunk_wait_for_the_resume_task(product_type, admin, settings):
    settings.RUN_CHUNK_SIZE = 4
    run, _ = _parked(product_type, 4)
    reviews = list(Review.objects.filter(run=run).values_list("pk", flat=True))
    reviews_decide(review_ids=reviews[:3], decision="approve", user=admin)
    run.refresh_from_db()
    assert run.resume_requested_at is not None
    assert RunItem.objects.filter(run=run, status="waiting").count() == 4
    assert run_waits_resume(run_id=run.pk) == 3


def test_a_resumed_chunk_reads_each_entity_once(product_type, admin, settings):
    settings.RUN_CHUNK_SIZE = 6
    run, _ = _parked(product_type, 6)
    reviews = list(Review.objects.filter(run=run).values_list("pk", flat=True))
    reviews_decide(review_ids=reviews, decision="approve", user=admin)
    [chunk] = set(RunItem.objects.filter(run=run, status="pending").values_list("chunk", flat=True))
    resumed = _statements(lambda: chunk_execute(run_id=run.pk, chunk=chunk))
    # The claim joins the entities; no second read of them (`entity_rows`), and no search for
    # items to give up on (a first delivery since the wait).
    assert not [sql for sql in resumed if '("entities_entity"."data")::text' in sql]
    assert not [sql for sql in resumed if '"jobs_runitem"."attempts" >=' in sql]
    run.refresh_from_db()
    assert (run.status, run.completed) == ("completed", 6)
    assert not RunLog.objects.filter(run=run, level="warning").exists()  # no redelivery


@pytest.mark.django_db(transaction=True)
def test_a_decision_holding_its_run_does_not_stop_the_counters_but_a_cancel_waits(product_type):
    run = start_run(make_workflow(product_type, STEPS), make_entities(product_type, 1))
    held, release = threading.Event(), threading.Event()

    def decision():
        with transaction.atomic():
            runs_lock(run_ids=[run.pk])
            held.set()
            release.wait(10)
        connection.close()

    thread = threading.Thread(target=decision)
    thread.start()
    try:
        assert held.wait(10)
        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL lock_timeout = '2s'")
            run_count(run.pk, {"completed": 0}, ZERO, run.created_at)  # not blocked
        with pytest.raises(OperationalError), transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL lock_timeout = '200ms'")
            runs_lock(run_ids=[run.pk], exclusive=True)
    finally:
        release.set()
        thread.join()


@pytest.mark.django_db(transaction=True)
def test_a_decision_committed_while_a_resume_runs_is_resumed_after_it(
    product_type, admin, settings
):
    """A resume task clears its run's request and then reads the resolved waits. A decision
    whose transaction overlaps that one is either seen by it or asks for another resume:
    never neither, which left the decided entity waiting and the run open for ever."""
    # The test plays the resume task: the ones the decisions ask for come due long after it
    # (this session's real worker, if one runs, may take the chunks: run_inline waits).
    settings.WAIT_RESUME_DELAY_S = 3600
    run = start_run(make_workflow(product_type, STEPS), make_entities(product_type, 2))
    run_inline(run.pk)  # parks both
    first, second = Review.objects.filter(run=run).order_by("pk").values_list("pk", flat=True)
    reviews_decide(review_ids=[first], decision="approve", user=admin)  # asks for a resume
    assert Run.objects.get(pk=run.pk).resume_requested_at is not None
    decided = threading.Event()

    def decision():
        try:
            reviews_decide(review_ids=[second], decision="reject", user=admin)
            decided.set()
        finally:
            connection.close()

    thread = threading.Thread(target=decision)
    with transaction.atomic():  # the resume task, as far as its read of the resolved waits
        Run.objects.filter(pk=run.pk).update(resume_requested_at=None)
        thread.start()
        # The decision waits for this transaction (the run's row) instead of reading the
        # request this one is clearing.
        assert not decided.wait(1)
        resolved = Wait.objects.filter(run=run, status="resolved").count()
    thread.join(30)
    assert decided.is_set()
    assert resolved == 1  # this resume saw the first decision only
    assert Run.objects.get(pk=run.pk).resume_requested_at is not None  # the second asked again
    assert run_waits_resume(run_id=run.pk) == 2
    run_inline(run.pk)
    run.refresh_from_db()
    assert (run.status, run.completed, run.skipped, run.waiting) == ("completed", 2, 1, 0)


# Written per entity a run parks, decides or publishes: each index is one more entry a row.
PER_ENTITY_TABLES = [
    "entities_entity",
    "jobs_wait",
    "jobs_review",
    "jobs_delay",
    "jobs_eventwait",
    "jobs_aibatchrequest",
]


def test_the_tables_written_per_entity_have_no_index_for_like_queries_on_their_ids():
    """PostgreSQL gets a `varchar_pattern_ops` index beside each varchar key; ids are matched
    exactly, so the migrations drop them where a run writes a row per entity."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT tablename, indexname FROM pg_indexes WHERE tablename = ANY(%s)",
            [PER_ENTITY_TABLES],
        )
        indexes = cursor.fetchall()
    assert {table for table, _ in indexes} == set(PER_ENTITY_TABLES)
    assert [name for _, name in indexes if name.endswith("_like")] == []
