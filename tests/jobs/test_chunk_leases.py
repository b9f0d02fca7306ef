"""A chunk delivered twice: only the delivery holding an item's lease records its outcome or
commits its entity. Driven step by step in this process, the way `chunk_execute` runs."""

import json
import threading
import time
from datetime import timedelta
from unittest import mock

import pytest
from django.core import mail
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from entities.models import Entity
from entities.services import entity_update
from jobs.engine.committer import ChunkCommitter
from jobs.engine.leases import items_claim
from jobs.engine.outcomes import chunk_finish
from jobs.engine.recovery import runs_resume_stalled
from jobs.engine.states import states_load
from jobs.engine.steps import steps_run
from jobs.lifecycle import run_end_if_done, run_mark_running
from jobs.models import Run, RunItem
from tests.factories import make_entities, make_workflow, run_inline, start_run

pytestmark = pytest.mark.django_db

STEPS = [
    {"id": "check", "type": "validate", "config": {"rules": [{"field": "price", "maximum": 5}]}},
    {"id": "pub", "type": "publish", "config": {}},
]


def deliver(run: Run):
    """Claim chunk 0 and take its entities through the steps, without finishing."""
    run_mark_running(run_id=run.pk)
    leases = items_claim(run, 0)
    states = states_load(leases, run.workflow.entity_type.schema)
    committer = ChunkCommitter(
        run.pk,
        {lease.entity_id: (lease.pk, lease.attempts) for lease in leases},
        seen_at=time.monotonic(),
    )
    steps_run(
        states=states,
        steps=run.workflow_version.steps,
        run_id=run.pk,
        workflow_id=run.workflow_id,
        engine=committer,
    )
    return committer, states


@pytest.fixture
def run(product_type):
    ids = make_entities(product_type, 8)  # prices 0..7: 6, 7 fail the check
    return start_run(make_workflow(product_type, STEPS), ids)


def test_a_delivery_that_kept_its_leases_records_everything(run):
    committer, states = deliver(run)
    assert Run.objects.get(pk=run.pk).heartbeat_at is not None  # the claim showed life
    chunk_finish(committer, states)
    run.refresh_from_db()
    assert (run.completed, run.failed) == (6, 2)
    items = RunItem.objects.filter(run=run)
    assert sorted(items.values_list("status", flat=True)) == ["completed"] * 6 + ["failed"] * 2
    assert Entity.objects.filter(status="published").count() == 6


def test_items_ended_by_a_machine_whose_clock_is_behind_do_not_end_before_they_started(run):
    """A delivery claims the chunk on a machine 2 s ahead (an entity resumed after a wait is
    started by one worker and ended by another): the items' `completedAt` is not before
    their `startedAt`, whether they end alike (one UPDATE by key) or each its own way."""
    ahead = timezone.now() + timedelta(seconds=2)
    with mock.patch("jobs.engine.leases.timezone.now", return_value=ahead):
        committer, states = deliver(run)
    chunk_finish(committer, states)
    ended = RunItem.objects.filter(run=run)
    assert sorted(ended.values_list("status", flat=True)) == ["completed"] * 6 + ["failed"] * 2
    assert {item.started_at for item in ended} == {ahead}
    assert {item.completed_at for item in ended} == {ahead}


def test_a_stale_delivery_writes_nothing_and_the_new_one_counts_each_entity_once(run):
    stale, stale_states = deliver(run)
    fresh, fresh_states = deliver(run)  # the chunk is delivered again and claimed anew
    assert chunk_finish(stale, stale_states) is False  # nothing of it is written, nothing counted
    run.refresh_from_db()
    assert (run.completed, run.failed) == (0, 0)
    assert set(RunItem.objects.filter(run=run).values_list("status", flat=True)) == {"running"}
    assert not Entity.objects.filter(status="published").exists()
    assert chunk_finish(fresh, fresh_states) is True  # every item is counted: the run may end
    run.refresh_from_db()
    assert (run.completed, run.failed, run.total) == (6, 2, 8)
    assert set(RunItem.objects.filter(run=run).values_list("attempts", flat=True)) == {2}
    assert run_end_if_done(run_id=run.pk) is True
    assert run_end_if_done(run_id=run.pk) is False  # it ends once
    assert Run.objects.get(pk=run.pk).status == "failed"


def test_items_whose_lease_moved_are_left_to_their_new_owner(run):
    committer, states = deliver(run)
    by_price = {s.entity_id: s.data["price"] for s in states}
    moved = [entity_id for entity_id, price in by_price.items() if price in (0, 1, 6)]
    RunItem.objects.filter(run=run, entity_id__in=moved).update(attempts=F("attempts") + 1)
    chunk_finish(committer, states)
    run.refresh_from_db()
    assert (run.completed, run.failed) == (4, 1)  # prices 2..5 completed, 7 failed
    items = dict(RunItem.objects.filter(run=run).values_list("entity_id", "status"))
    assert {items[entity_id] for entity_id in moved} == {"running"}
    published = set(Entity.objects.filter(status="published").values_list("pk", flat=True))
    assert published == {e for e, price in by_price.items() if 2 <= price <= 5}


def test_an_entity_deleted_before_its_chunk_runs_fails_alone(run):
    gone = RunItem.objects.filter(run=run).order_by("pk").first().entity_id
    Entity.objects.filter(pk=gone).delete()
    committer, states = deliver(run)
    chunk_finish(committer, states)
    run.refresh_from_db()
    assert (run.completed, run.failed) == (5, 3)  # price 0 gone; 6 and 7 fail the check
    item = RunItem.objects.get(run=run, entity_id=gone)
    assert (item.status, item.error) == ("failed", "The entity no longer exists.")


def test_a_long_chunk_keeps_the_run_s_heartbeat_moving(run):
    """Steps beat the engine's heartbeat inside long batches, so a chunk slower than
    RUN_STALL_AFTER_S is not queued again under its own feet."""
    Run.objects.filter(pk=run.pk).update(heartbeat_at=timezone.now() - timedelta(hours=1))
    started = time.monotonic()
    committer = ChunkCommitter(run.pk, {}, seen_at=started)
    with mock.patch("jobs.engine.committer.time.monotonic", return_value=started + 1):
        committer.heartbeat()  # too soon for a heartbeat
        assert committer.cancelled() is False
    assert Run.objects.get(pk=run.pk).heartbeat_at < timezone.now() - timedelta(minutes=59)
    with mock.patch("jobs.engine.committer.time.monotonic", return_value=started + 6):
        committer.heartbeat()
    assert Run.objects.get(pk=run.pk).heartbeat_at > timezone.now() - timedelta(minutes=1)
    assert runs_resume_stalled(stalled_after=timedelta(minutes=10)) == 0


@pytest.mark.django_db(transaction=True)
def test_a_claim_that_waited_for_a_publish_reads_what_it_published(product_type):
    """Another delivery publishes while this claim waits for its row locks: the claim gets
    the checkpoint past the publish (no data: the data is the entity's) and must pair it
    with the entity as published, not as it was when the claim's statement began."""
    with mock.patch("jobs.queue.chunks_enqueue"):  # no worker of the session's takes it
        run = start_run(make_workflow(product_type, STEPS), make_entities(product_type, 3))
    items_claim(run, 0)  # the first delivery holds the items
    claimed: list = []

    def redelivery():
        try:
            claimed.extend(items_claim(Run.objects.get(pk=run.pk), 0))
        finally:
            connection.close()

    with transaction.atomic():  # the first delivery publishes, holding the items' rows
        items = list(RunItem.objects.select_for_update().filter(run=run).order_by("pk"))
        Entity.objects.filter(pk__in=[i.entity_id for i in items]).update(
            data={"title": "Published"}, version=F("version") + 1
        )
        RunItem.objects.filter(run=run).update(
            next_step=2, state={"outputs": {}, "status": "published", "version": 2, "usage": {}}
        )
        thread = threading.Thread(target=redelivery)
        thread.start()
        time.sleep(0.5)  # the redelivery's claim is now waiting for these rows
    thread.join(10)
    assert len(claimed) == 3
    for lease in claimed:
        raw, _status, version, _published = lease.entity
        assert (json.loads(raw), version) == ({"title": "Published"}, 2)
        assert lease.state["version"] == 2 and lease.attempts == 2


def test_an_edit_made_during_the_run_survives_the_commit(product_type):
    """The entity changed after the chunk read it: its commit merges the run's changes into
    the entity as it is now (the base the run started from is parsed only for this)."""
    steps = [
        {
            "type": "transform",
            "config": {"operations": [{"op": "set", "field": "slug", "value": "x"}]},
        },
        {"type": "publish", "config": {}},
    ]
    run = start_run(make_workflow(product_type, steps), make_entities(product_type, 2))
    committer, states = deliver(run)
    edited = states[0].entity_id
    entity_update(entity_id=edited, data={"title": "Edited meanwhile"})
    chunk_finish(committer, states)
    entity = Entity.objects.get(pk=edited)
    assert entity.data["title"] == "Edited meanwhile" and entity.data["slug"] == "x"
    assert (entity.status, entity.version) == ("published", 3)
    other = Entity.objects.get(pk=states[1].entity_id)
    assert (other.data["slug"], other.version) == ("x", 2)


def test_a_working_copy_the_database_cannot_store_fails_before_a_side_effect(product_type):
    """A template (or a model) can make a NUL character, which no checkpoint can hold: that
    entity fails at the side effect's step, unsent, and the others go on."""
    steps = [
        {
            "id": "odd",
            "type": "transform",
            "config": {
                "operations": [
                    {"op": "set", "field": "note", "value": "{{ '\\x00' if entity.price else '' }}"}
                ]
            },
        },
        {"id": "mail", "type": "notify", "config": {"channel": "email", "to": "a@example.com"}},
    ]
    ids = make_entities(product_type, 2)  # prices 0 and 1
    run = start_run(make_workflow(product_type, steps), ids)
    run_inline(run.pk)
    items = {item.entity_id: item for item in RunItem.objects.filter(run=run)}
    assert items[ids[0]].status == "completed" and len(mail.outbox) == 1
    assert items[ids[1]].status == "failed" and items[ids[1]].step_id == "mail"
    assert "data.note: Contains a NUL character" in items[ids[1]].error


def _items_end_statements(run: Run) -> list[str]:
    """The UPDATEs of the chunk's finish that end its items: "by ids" (one value for the
    items named by primary key) or "from rows" (a value per item, from a row set)."""
    from django.test.utils import CaptureQueriesContext

    committer, states = deliver(run)
    with CaptureQueriesContext(connection) as captured:
        chunk_finish(committer, states)
    return [
        "by ids" if "= ANY(" in query["sql"] else "from rows"
        for query in captured.captured_queries
        if query["sql"].startswith('UPDATE "jobs_runitem"') and '"completed_at"' in query["sql"]
    ]


def test_items_ending_alike_end_in_one_statement_per_kind_whatever_their_number(product_type):
    """Completed at the same step: one UPDATE by primary key; failed (each its error): one
    from a row set. 8 entities or 16, the same statements."""
    statements = []
    for count in (8, 16):
        run = start_run(make_workflow(product_type, STEPS), make_entities(product_type, count))
        statements.append(_items_end_statements(run))
        items = RunItem.objects.filter(run=run)
        assert items.filter(status="completed", step_id="pub", error="").count() == 6
        failed = items.filter(status="failed", step_id="check")
        assert failed.count() == count - 6 and not failed.filter(error="").exists()
        assert not items.filter(completed_at=None).exists()
        assert set(items.values_list("state", flat=True)) == {None}
    assert statements == [["by ids", "from rows"]] * 2


def test_a_chunk_whose_items_end_in_many_kinds_ends_them_from_one_row_set(product_type):
    """Stopped at five different steps, and completed: six kinds, more than are worth a
    statement each."""
    stops = [
        {
            "id": f"not{price}",
            "type": "condition",
            "config": {"if": {"field": "price", "operator": "ne", "value": price}},
        }
        for price in range(5)
    ]
    workflow = make_workflow(product_type, [*stops, {"id": "pub", "type": "publish", "config": {}}])
    run = start_run(workflow, make_entities(product_type, 8))
    assert _items_end_statements(run) == ["from rows"]
    ended = sorted(
        (Entity.objects.get(pk=entity_id).data["price"], status, step_id)
        for entity_id, status, step_id in RunItem.objects.filter(run=run).values_list(
            "entity_id", "status", "step_id"
        )
    )
    assert ended == [
        *((price, "skipped", f"not{price}") for price in range(5)),
        *((price, "completed", "pub") for price in range(5, 8)),
    ]
