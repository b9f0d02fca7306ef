"""Entities that wait at a `review` step, driven in this process the way workers run chunks:
parked with their checkpoint, decided, queued again and resumed under a fresh lease."""

from datetime import timedelta
from unittest import mock

import pytest
from django.contrib.auth import get_user_model
from django.db.models.functions import Now
from django.utils import timezone

from entities.models import Entity
from entities.services import entity_update
from jobs.cancel import run_cancel
from jobs.engine.chunk import chunk_execute
from jobs.engine.recovery import runs_resume_stalled
from jobs.engine.waits import run_waits_resume, waits_resume_overdue, waits_tick
from jobs.models import Review, Run, RunItem, RunLog, Wait
from jobs.waits.review.services import review_decide, reviews_decide
from tests.factories import make_entities, make_workflow, run_inline, start_run

pytestmark = pytest.mark.django_db

REVIEWED = [
    {
        "id": "tidy",
        "type": "transform",
        "config": {"operations": [{"op": "set", "field": "slug", "value": "{{ entity.title }}"}]},
    },
    {
        "id": "check",
        "type": "review",
        "config": {"instructions": "Is {{ entity.slug }} right for {{ entity.title }}?"},
    },
    {"id": "pub", "type": "publish", "config": {}},
]


def reviewed_workflow(product_type, **review_config):
    steps = [dict(step) for step in REVIEWED]
    steps[1] = {**steps[1], "config": {**steps[1]["config"], **review_config}}
    return make_workflow(product_type, steps)


@pytest.fixture
def reviewer(db):
    user = get_user_model().objects.create_user("reviewer")
    user.user_permissions.add(*_perms("decide_review", "view_review"))
    return get_user_model().objects.get(pk=user.pk)  # no permission cache


def _perms(*codenames):
    from django.contrib.auth.models import Permission

    return Permission.objects.filter(content_type__app_label="jobs", codename__in=codenames)


def resume(run: Run) -> None:
    """What the resume task and the chunk tasks it queues do."""
    run_waits_resume(run_id=run.pk)
    run_inline(run.pk)


def parked_run(product_type, n=3, **review_config):
    ids = make_entities(product_type, n)
    run = start_run(reviewed_workflow(product_type, **review_config), ids)
    run_inline(run.pk)
    run.refresh_from_db()
    return run, ids


def test_entities_wait_at_a_review_holding_their_checkpoint_and_the_run_stays_running(
    product_type,
):
    run, ids = parked_run(product_type)
    assert (run.status, run.waiting, run.completed) == ("running", 3, 0)
    items = RunItem.objects.filter(run=run)
    assert {(i.status, i.step_id, i.next_step) for i in items} == {("waiting", "check", 2)}
    item = items.get(entity_id=ids[0])
    # What the run changed, not copies of the entity.
    assert (item.state["changes"], item.state["removed"]) == ({"slug": "Item 0"}, [])
    assert "data" not in item.state and "committed" not in item.state
    review = Review.objects.get(entity_id=ids[0])
    assert (
        review.status == "pending" and review.instructions_rendered == "Is Item 0 right for Item 0?"
    )
    assert review.fields == ["slug"]  # the field the run changed
    assert (review.changes, review.removed) == ({"slug": "Item 0"}, [])
    assert item.state["wait"] == review.wait_id
    # Nothing was committed, nothing is left for a worker.
    assert not Entity.objects.filter(pk__in=ids, status="published").exists()

    # The stalled-run check sees no progress, and nothing that should be moving.
    Run.objects.filter(pk=run.pk).update(heartbeat_at=timezone.now() - timedelta(hours=1))
    assert runs_resume_stalled(stalled_after=timedelta(minutes=10)) == 0
    assert not RunLog.objects.filter(run=run, level="warning").exists()
    assert Run.objects.get(pk=run.pk).heartbeat_at < timezone.now() - timedelta(minutes=59)


def test_a_resume_whose_task_is_overdue_is_done_by_the_waits_tick(product_type, reviewer, settings):
    run, _ = parked_run(product_type, n=2)
    reviews_decide(
        review_ids=list(Review.objects.filter(run=run).values_list("pk", flat=True)),
        decision="approve",
        user=reviewer,
    )
    assert waits_resume_overdue() == 0  # asked for just now: its task has time to run
    assert waits_tick() == 0
    # Its worker died holding the task: past the resume's time and its lease (the
    # database's clock), the tick resumes the run itself.
    lease = timedelta(seconds=settings.WAIT_RESUME_DELAY_S + settings.WAIT_RESUME_LEASE_S)
    asked = Run.objects.filter(pk=run.pk)
    asked.update(resume_requested_at=Now() - lease + timedelta(milliseconds=500))
    assert waits_resume_overdue() == 0
    asked.update(resume_requested_at=Now() - lease - timedelta(milliseconds=1))
    assert waits_resume_overdue() == 1
    assert Run.objects.get(pk=run.pk).resume_requested_at is None
    assert RunItem.objects.filter(run=run, status="pending").count() == 2
    assert RunLog.objects.filter(run=run, message__startswith="The resume of resolved").exists()
    assert waits_resume_overdue() == 0  # once
    resume(run)
    assert Run.objects.get(pk=run.pk).status == "completed"


def test_a_decision_made_on_a_web_machine_behind_is_not_taken_for_a_dead_worker_s_resume(
    product_type, reviewer
):
    """A decision on a web machine whose clock is 4 s behind (more than WAIT_RESUME_DELAY_S +
    WAIT_RESUME_LEASE_S) asks for a resume that beat's waits tick, on another machine, does
    not take as overdue: both times are the database's. (Taken so, every decision's resume
    lost its debounce and wrote a false "its worker died" warning in the run's log.)"""
    run, _ = parked_run(product_type, n=2)
    behind = timezone.now() - timedelta(seconds=4)
    with mock.patch("django.utils.timezone.now", return_value=behind):
        reviews_decide(
            review_ids=list(Review.objects.filter(run=run).values_list("pk", flat=True)),
            decision="approve",
            user=reviewer,
        )
    assert waits_resume_overdue() == 0
    assert not RunLog.objects.filter(run=run, message__startswith="The resume of resolved").exists()


def test_an_approved_entity_resumes_at_the_next_step_and_the_run_ends(product_type, reviewer):
    run, ids = parked_run(product_type, n=2)
    first, second = Review.objects.filter(run=run).order_by("pk")
    review_decide(review_id=first.pk, decision="approve", user=reviewer, comment="fine")
    reviews_decide(review_ids=[second.pk], decision="approve", user=reviewer)
    assert Run.objects.get(pk=run.pk).resume_requested_at is not None
    resume(run)
    run.refresh_from_db()
    assert (run.status, run.completed, run.waiting) == ("completed", 2, 0)
    assert run.resume_requested_at is None
    entity = Entity.objects.get(pk=ids[0])
    assert (entity.status, entity.data["slug"], entity.version) == ("published", "Item 0", 2)
    item = RunItem.objects.get(run=run, entity_id=ids[0])
    assert (item.status, item.attempts, item.chunk) == ("completed", 2, 1)  # a fresh lease
    assert RunLog.objects.filter(run=run, message="1 review approved by reviewer.").exists()
    # Back from a wait is not a redelivery: no "Resumed at step" warning.
    assert not RunLog.objects.filter(run=run, level="warning").exists()


def test_approving_with_edits_merges_them_into_the_working_copy(product_type, reviewer):
    run, ids = parked_run(product_type, n=1)
    review = Review.objects.get(run=run)
    review_decide(
        review_id=review.pk,
        decision="approve",
        user=reviewer,
        data={"slug": "item-zero", "price": 9},
    )
    review.refresh_from_db()
    assert review.changes == {"slug": "item-zero", "price": 9}
    assert review.proposed_on(Entity.objects.get(pk=ids[0]).data)["slug"] == "item-zero"
    assert review.edits == {"slug": "item-zero", "price": 9}
    resume(run)
    entity = Entity.objects.get(pk=ids[0])
    assert (entity.data["slug"], entity.data["price"]) == ("item-zero", 9)
    assert entity.status == "published"


@pytest.mark.parametrize(
    ("edits", "field"),
    [
        ({"price": -1}, "data.price"),
        ({"price": "cheap"}, "data.price"),
        ({"title": ""}, "data.title"),
        ({"seo": {"title": 5}}, "data.seo.title"),
    ],
)
def test_edits_that_break_the_schema_are_refused_naming_the_field(
    product_type, reviewer, edits, field
):
    from config.api.errors import InvalidInput

    run, _ = parked_run(product_type, n=1)
    review = Review.objects.get(run=run)
    with pytest.raises(InvalidInput) as error:
        review_decide(review_id=review.pk, decision="approve", user=reviewer, data=edits)
    assert error.value.details[0].field == field
    assert Review.objects.get(pk=review.pk).status == "pending"
    assert Wait.objects.get(pk=review.wait_id).status == "waiting"


def test_a_rejected_entity_stops_with_its_data_unchanged(product_type, reviewer):
    run, ids = parked_run(product_type, n=2)
    rejected = Review.objects.get(entity_id=ids[0])
    review_decide(review_id=rejected.pk, decision="reject", user=reviewer, comment="no")
    review_decide(
        review_id=Review.objects.get(entity_id=ids[1]).pk, decision="approve", user=reviewer
    )
    before = Entity.objects.get(pk=ids[0])
    resume(run)
    run.refresh_from_db()
    assert (run.status, run.completed, run.failed) == ("completed", 2, 0)
    item = RunItem.objects.get(run=run, entity_id=ids[0])
    assert (item.status, item.step_id) == ("skipped", "check")
    after = Entity.objects.get(pk=ids[0])
    assert (after.data, after.version, after.status) == (before.data, before.version, "draft")
    assert "slug" not in after.data
    assert Entity.objects.get(pk=ids[1]).status == "published"


def test_a_rejection_with_on_reject_fail_names_who_rejected_and_why(product_type, reviewer):
    run, ids = parked_run(product_type, n=1, onReject="fail")
    review = Review.objects.get(run=run)
    review_decide(review_id=review.pk, decision="reject", user=reviewer, comment="Too vague")
    resume(run)
    run.refresh_from_db()
    assert (run.status, run.failed) == ("failed", 1)
    item = RunItem.objects.get(run=run)
    assert item.error == 'Rejected in review by reviewer: "Too vague"'
    assert "slug" not in Entity.objects.get(pk=ids[0]).data


def test_an_api_edit_made_during_the_wait_is_not_lost(product_type, reviewer):
    run, ids = parked_run(product_type, n=1)
    entity_update(entity_id=ids[0], data={"price": 123, "note": "edited meanwhile"})
    review = Review.objects.get(run=run)
    review_decide(review_id=review.pk, decision="approve", user=reviewer)
    resume(run)
    entity = Entity.objects.get(pk=ids[0])
    assert entity.data["note"] == "edited meanwhile" and entity.data["price"] == 123
    assert entity.data["slug"] == "Item 0" and entity.status == "published"


def test_a_resumed_chunk_delivered_twice_publishes_each_entity_once(product_type, reviewer):
    run, ids = parked_run(product_type, n=3)
    reviews_decide(
        review_ids=list(Review.objects.filter(run=run).values_list("pk", flat=True)),
        decision="approve",
        user=reviewer,
    )
    assert run_waits_resume(run_id=run.pk) == 3
    assert run_waits_resume(run_id=run.pk) == 0  # the resume is done once
    chunk = RunItem.objects.filter(run=run).values_list("chunk", flat=True).first()
    chunk_execute(run_id=run.pk, chunk=chunk)
    chunk_execute(run_id=run.pk, chunk=chunk)  # redelivered: every item has ended
    run.refresh_from_db()
    assert (run.status, run.completed) == ("completed", 3)
    assert set(Entity.objects.filter(pk__in=ids).values_list("version", flat=True)) == {2}


def test_a_redelivery_that_finds_the_items_still_running_resumes_them_alike(product_type, reviewer):
    """The first delivery of a resumed chunk died before finishing: the next claims the items
    again and applies the same decision (with its edits) from the same checkpoint."""
    from jobs.engine.leases import items_claim

    run, ids = parked_run(product_type, n=1)
    review = Review.objects.get(run=run)
    review_decide(review_id=review.pk, decision="approve", user=reviewer, data={"price": 7})
    run_waits_resume(run_id=run.pk)
    chunk = RunItem.objects.get(run=run).chunk
    items_claim(Run.objects.get(pk=run.pk), chunk)  # a delivery that died here
    chunk_execute(run_id=run.pk, chunk=chunk)
    item = RunItem.objects.get(run=run)
    assert (item.status, item.attempts) == ("completed", 3)
    [warning] = RunLog.objects.filter(run=run, level="warning").values_list("message", flat=True)
    assert warning == "Resumed at step 3 (attempt 3)."
    entity = Entity.objects.get(pk=ids[0])
    assert (entity.data["price"], entity.version) == (7, 2)


def test_bulk_decide_skips_what_it_cannot_decide_and_resumes_the_rest_together(
    product_type, reviewer, settings
):
    settings.RUN_CHUNK_SIZE = 2
    run, _ = parked_run(product_type, n=5)
    reviews = list(Review.objects.filter(run=run).order_by("pk").values_list("pk", flat=True))
    review_decide(review_id=reviews[0], decision="reject", user=reviewer)
    result = reviews_decide(review_ids=[*reviews, "rev_missing"], decision="approve", user=reviewer)
    assert result.decided == reviews[1:]
    assert [(s["id"], s["reason"]) for s in result.skipped] == [
        (reviews[0], "not_pending"),
        ("rev_missing", "not_found"),
    ]
    # Four approved at once, a chunk's worth or more: queued by the decision itself, in two
    # chunks of two; the rejection alone waited for the resume task.
    items = RunItem.objects.filter(run=run)
    assert items.filter(status="pending").count() == 4
    assert run_waits_resume(run_id=run.pk) == 1
    assert items.filter(status="pending").values("chunk").distinct().count() == 3
    resume(run)
    run.refresh_from_db()
    assert (run.status, run.completed, run.skipped, run.waiting) == ("completed", 5, 1, 0)


def test_a_group_limits_who_may_decide(product_type, reviewer):
    from django.contrib.auth.models import Group

    from config.api.errors import Forbidden

    group = Group.objects.create(name="editors")
    run, _ = parked_run(product_type, n=1, group="editors")
    review = Review.objects.get(run=run)
    with pytest.raises(Forbidden):
        review_decide(review_id=review.pk, decision="approve", user=reviewer)
    reviewer.groups.add(group)
    review_decide(review_id=review.pk, decision="approve", user=reviewer)
    assert Review.objects.get(pk=review.pk).status == "approved"


@pytest.mark.parametrize(
    ("on_timeout", "on_reject", "item_status", "published"),
    [
        ("approve", "stop", "completed", True),
        ("reject", "stop", "skipped", False),
        ("reject", "fail", "failed", False),
    ],
)
def test_expired_reviews_are_decided_by_on_timeout(
    product_type, on_timeout, on_reject, item_status, published
):
    run, ids = parked_run(
        product_type, n=2, timeoutMinutes=30, onTimeout=on_timeout, onReject=on_reject
    )
    assert waits_tick() == 0  # not yet
    review = Review.objects.get(entity_id=ids[0])
    assert review.expires_at - review.created_at == timedelta(minutes=30)
    Review.objects.filter(pk=review.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert waits_tick() == 1
    review.refresh_from_db()
    assert (review.status, review.decided_by) == ("expired", "")
    resume(run)
    item = RunItem.objects.get(run=run, entity_id=ids[0])
    assert item.status == item_status
    assert (Entity.objects.get(pk=ids[0]).status == "published") is published
    assert Review.objects.get(entity_id=ids[1]).status == "pending"  # its time has not come
    assert Run.objects.get(pk=run.pk).status == "running"


def test_reviews_of_a_run_being_cancelled_hold_back_no_other_runs_expiry(product_type, monkeypatch):
    """A run's cancel ends its reviews in batches; until it has, the tick skips them. A
    full batch of them, oldest first, ended the tick: other runs' reviews waited on it."""
    from jobs.waits.review import kind

    monkeypatch.setattr(kind, "DECIDE_MAX_IDS", 2)
    cancelling, _ = parked_run(product_type, n=3, timeoutMinutes=30, onTimeout="reject")
    other, [other_id] = parked_run(product_type, n=1, timeoutMinutes=30, onTimeout="reject")
    now = timezone.now()
    Review.objects.filter(run=cancelling).update(expires_at=now - timedelta(minutes=2))
    Review.objects.filter(run=other).update(expires_at=now - timedelta(minutes=1))
    Run.objects.filter(pk=cancelling.pk).update(cancel_requested_at=now)
    assert waits_tick() == 1
    assert Review.objects.get(entity_id=other_id).status == "expired"
    assert set(Review.objects.filter(run=cancelling).values_list("status", flat=True)) == {
        "pending"
    }  # left to the cancel


def test_cancel_ends_waiting_entities_and_their_reviews(product_type, reviewer):
    run, ids = parked_run(product_type, n=3)
    approved = Review.objects.get(entity_id=ids[0])
    review_decide(review_id=approved.pk, decision="approve", user=reviewer)
    cancelled = run_cancel(run_id=run.pk, cancelled_by="boss")
    assert (cancelled.status, cancelled.cancelled, cancelled.waiting) == ("cancelled", 3, 0)
    assert set(RunItem.objects.filter(run=run).values_list("status", flat=True)) == {"cancelled"}
    statuses = dict(Review.objects.filter(run=run).values_list("entity_id", "status"))
    assert statuses == {ids[0]: "approved", ids[1]: "cancelled", ids[2]: "cancelled"}
    assert run_waits_resume(run_id=run.pk) == 0  # the approval resumes nothing now
    assert not Entity.objects.filter(pk__in=ids, status="published").exists()
    late = Review.objects.get(entity_id=ids[1])
    result = reviews_decide(review_ids=[late.pk], decision="approve", user=reviewer)
    assert result.skipped[0]["reason"] == "not_pending"


def test_a_run_cancelled_while_a_chunk_parks_leaves_none_waiting(product_type):
    """The chunk that would park its entities finishes after the cancel: they end cancelled."""
    import time

    from jobs.engine.committer import ChunkCommitter
    from jobs.engine.leases import items_claim
    from jobs.engine.outcomes import chunk_finish
    from jobs.engine.states import states_load
    from jobs.engine.steps import steps_run
    from jobs.lifecycle import run_mark_running

    ids = make_entities(product_type, 2)
    run = start_run(reviewed_workflow(product_type), ids)
    run_mark_running(run_id=run.pk)
    leases = items_claim(run, 0)
    states = states_load(leases, product_type.schema)
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
    run_cancel(run_id=run.pk)
    chunk_finish(committer, states)
    run.refresh_from_db()
    assert (run.cancelled, run.waiting) == (2, 0)
    # Parked first, then ended under the run's lock with their waits, as a cancel's batch
    # ends waiting items: no review is left pending.
    assert set(RunItem.objects.filter(run=run).values_list("status", flat=True)) == {"cancelled"}
    assert set(Review.objects.filter(run=run).values_list("status", flat=True)) == {"cancelled"}
    assert set(Wait.objects.filter(run=run).values_list("status", flat=True)) == {"cancelled"}


def test_an_entity_can_wait_twice_and_each_decision_applies_once(product_type, reviewer):
    """Approved at a first review, the resumed chunk parks the entity again at a second."""
    steps = [
        REVIEWED[0],
        {"id": "first", "type": "review", "config": {"instructions": "First look"}},
        {
            "id": "more",
            "type": "transform",
            "config": {
                "operations": [{"op": "set", "field": "note", "value": "{{ entity.slug }}"}]
            },
        },
        {"id": "second", "type": "review", "config": {"instructions": "Second look"}},
        REVIEWED[2],
    ]
    [entity_id] = make_entities(product_type, 1)
    run = start_run(make_workflow(product_type, steps), [entity_id])
    run_inline(run.pk)
    first = Review.objects.get(run=run)
    review_decide(review_id=first.pk, decision="approve", user=reviewer, data={"slug": "one"})
    resume(run)
    second = Review.objects.exclude(pk=first.pk).get(run=run)
    assert (second.step_id, second.changes["note"]) == ("second", "one")
    assert sorted(second.fields) == ["note", "slug"]
    assert Run.objects.get(pk=run.pk).waiting == 1
    review_decide(review_id=second.pk, decision="approve", user=reviewer, data={"note": "two"})
    resume(run)
    entity = Entity.objects.get(pk=entity_id)
    assert (entity.data["slug"], entity.data["note"], entity.status) == ("one", "two", "published")
    assert Run.objects.get(pk=run.pk).status == "completed"


def test_an_entity_deleted_while_it_waits_fails_alone_when_approved(product_type, reviewer):
    run, ids = parked_run(product_type, n=2)
    Entity.objects.filter(pk=ids[0]).delete()
    reviews_decide(
        review_ids=list(Review.objects.filter(run=run).values_list("pk", flat=True)),
        decision="approve",
        user=reviewer,
    )
    resume(run)
    run.refresh_from_db()
    assert (run.status, run.completed, run.failed) == ("failed", 1, 1)
    item = RunItem.objects.get(run=run, entity_id=ids[0])
    assert (item.status, item.error) == ("failed", "The entity no longer exists.")


def test_entities_resumed_by_one_resolution_get_copies_of_what_it_holds():
    """A bulk decision resolves 1,000 waits with one resolution, parsed once for them all:
    each entity gets its own copy of its data and output, so a later step changing one
    entity's nested value changes no other, nor the resolution."""
    from jobs.engine.parking import resolution_apply
    from workflows.steps.runtime import EntityState
    from workflows.steps.waits import Resolution

    shared = Resolution(
        "continue",
        data={"specs": {"colors": ["red"]}},
        set={"meta.tags": ["a"]},
        output={"approved": True, "notes": {"by": ["ann"]}},
    )
    states = [
        EntityState(entity_id=f"ent_{n}", status="draft", data={"meta": {}}, committed={})
        for n in range(2)
    ]
    for state in states:
        resolution_apply(state, "check", shared)
    first, second = states
    first.data["specs"]["colors"].append("blue")
    first.data["meta"]["tags"].append("b")
    first.outputs["check"]["notes"]["by"].append("bob")
    assert second.data == {"meta": {"tags": ["a"]}, "specs": {"colors": ["red"]}}
    assert second.outputs["check"] == {"approved": True, "notes": {"by": ["ann"]}}
    assert shared.data == {"specs": {"colors": ["red"]}} and shared.set == {"meta.tags": ["a"]}
    assert shared.output == {"approved": True, "notes": {"by": ["ann"]}}
