"""Entity triggers: the outbox, gathering, no loops, the depth cut, validation."""

import logging

import pytest
from django.core.cache import cache

from entities import services as entity_services
from entities.models import Entity, EntityEvent
from jobs.models import Run, RunItem, RunLog
from jobs.triggers import QUEUED_KEY, entity_events_dispatch
from tests.factories import make_entities, make_workflow, run_inline, start_run

pytestmark = pytest.mark.django_db

SET_TITLE = {
    "type": "transform",
    "config": {"operations": [{"op": "set", "field": "title", "value": "T {{ entity.title }}"}]},
}
PUBLISH = {"type": "publish", "config": {}}


@pytest.fixture(autouse=True)
def no_wait(settings):
    settings.TRIGGER_DEBOUNCE_S = 0
    yield
    cache.delete(QUEUED_KEY)  # the shared cache: a dispatch queued here is not the next's


def _items(run) -> list[str]:
    return list(RunItem.objects.filter(run=run).values_list("entity_id", flat=True))


def test_a_bulk_create_starts_one_run_over_all_the_new_entities(product_type):
    workflow = make_workflow(product_type, [PUBLISH], triggers=[{"on": "entity.created"}])
    ids = make_entities(product_type, 300)
    assert entity_events_dispatch() == 1
    run = Run.objects.get(workflow=workflow)
    assert sorted(_items(run)) == sorted(ids)
    assert run.trigger == {"type": "entity.created", "depth": 1}
    assert not EntityEvent.objects.exists()


def test_an_update_of_a_watched_field_triggers_and_one_of_another_field_does_not(product_type):
    [entity_id] = make_entities(product_type, 1)
    EntityEvent.objects.all().delete()
    workflow = make_workflow(
        product_type, [PUBLISH], triggers=[{"on": "entity.updated", "fields": ["title"]}]
    )
    entity_services.entity_update(entity_id=entity_id, data={"price": 3})
    assert entity_events_dispatch() == 0
    entity_services.entity_update(entity_id=entity_id, data={"title": "Item 0"})  # same value
    assert entity_events_dispatch() == 0
    entity_services.entity_update(entity_id=entity_id, data={"title": "New"})
    assert entity_events_dispatch() == 1
    assert _items(Run.objects.get(workflow=workflow)) == [entity_id]


def test_a_change_of_a_watched_field_s_json_type_alone_triggers(product_type):
    """`true` to `1`: equal to Python's `==`, a change of the entity's data all the same."""
    [entity_id] = make_entities(product_type, 1, flag=True)
    EntityEvent.objects.all().delete()
    workflow = make_workflow(
        product_type, [PUBLISH], triggers=[{"on": "entity.updated", "fields": ["flag"]}]
    )
    entity_services.entity_update(entity_id=entity_id, data={"flag": True})  # same value
    assert entity_events_dispatch() == 0
    entity_services.entity_update(entity_id=entity_id, data={"flag": 1})
    assert entity_events_dispatch() == 1
    assert _items(Run.objects.get(workflow=workflow)) == [entity_id]


def test_an_entity_changed_twice_while_gathering_is_in_the_run_once(product_type):
    ids = make_entities(product_type, 2)
    EntityEvent.objects.all().delete()
    workflow = make_workflow(product_type, [PUBLISH], triggers=[{"on": "entity.updated"}])
    for title in ("a", "b", "c"):
        entity_services.entity_update(entity_id=ids[0], data={"title": title})
    entity_services.entity_update(entity_id=ids[1], data={"title": "x"})
    assert entity_events_dispatch() == 1
    assert sorted(_items(Run.objects.get(workflow=workflow))) == sorted(ids)


def test_events_wait_for_the_debounce_window(product_type, settings):
    settings.TRIGGER_DEBOUNCE_S = 3600
    make_workflow(product_type, [PUBLISH], triggers=[{"on": "entity.created"}])
    make_entities(product_type, 2)
    assert entity_events_dispatch() == 0
    assert EntityEvent.objects.count() == 1  # still gathering
    settings.TRIGGER_DEBOUNCE_S = 0
    assert entity_events_dispatch() == 1


def test_a_dispatch_delivered_again_starts_no_second_run(product_type):
    make_workflow(product_type, [PUBLISH], triggers=[{"on": "entity.created"}])
    make_entities(product_type, 3)
    assert entity_events_dispatch() == 1
    assert entity_events_dispatch() == 0
    assert Run.objects.count() == 1


def test_only_active_workflows_trigger(product_type):
    make_workflow(product_type, [PUBLISH], triggers=[{"on": "entity.created"}], status="draft")
    make_entities(product_type, 3)
    assert entity_events_dispatch() == 0
    assert not EntityEvent.objects.exists()  # nothing wanted them: dropped


def test_a_workflow_made_inactive_while_its_events_gather_is_not_started(api, product_type):
    workflow = make_workflow(product_type, [PUBLISH], triggers=[{"on": "entity.created"}])
    make_entities(product_type, 3)
    assert EntityEvent.objects.count() == 1  # recorded: the workflow was active then
    patched = api.patch(f"/api/v1/workflows/{workflow.pk}", {"status": "archived"})
    assert patched.status_code == 200, patched.content
    assert entity_events_dispatch() == 0
    assert not Run.objects.exists() and not EntityEvent.objects.exists()


def test_a_run_that_edits_the_watched_field_does_not_trigger_its_own_workflow(product_type):
    [entity_id] = make_entities(product_type, 1)
    EntityEvent.objects.all().delete()
    watch = [{"on": "entity.updated", "fields": ["title"]}]
    looping = make_workflow(product_type, [SET_TITLE, PUBLISH], triggers=watch)
    other = make_workflow(product_type, [PUBLISH], triggers=watch)
    entity_services.entity_update(entity_id=entity_id, data={"title": "Start"})
    assert entity_events_dispatch() == 2
    first = Run.objects.get(workflow=looping)
    run_inline(first.pk)
    Run.objects.filter(workflow=other).delete()
    # The run changed `title`: the other workflow is triggered, the looping one is not.
    assert entity_events_dispatch() == 1
    assert Run.objects.filter(workflow=looping).count() == 1
    again = Run.objects.get(workflow=other)
    assert again.trigger == {"type": "entity.updated", "depth": 2}


def _loop(product_type, settings):
    """Workflows a and b, each setting the title the other watches (a loop), at
    TRIGGER_MAX_DEPTH 2, and an entity whose title a person just edited."""
    settings.TRIGGER_MAX_DEPTH = 2
    [entity_id] = make_entities(product_type, 1)
    EntityEvent.objects.all().delete()
    watch = [{"on": "entity.updated", "fields": ["title"]}]
    a = make_workflow(product_type, [SET_TITLE], triggers=watch)
    b = make_workflow(product_type, [SET_TITLE], triggers=watch)
    entity_services.entity_update(entity_id=entity_id, data={"title": "Start"})
    return entity_id, a, b


def test_a_chain_of_triggers_is_cut_at_the_depth_setting_with_a_log_line(
    product_type, settings, caplog
):
    _, a, b = _loop(product_type, settings)
    assert entity_events_dispatch() == 2  # depth 1: a and b
    for run in Run.objects.all():
        run_inline(run.pk)
    assert entity_events_dispatch() == 2  # depth 2: a by b's change, b by a's
    for run in Run.objects.filter(trigger__depth=2):
        run_inline(run.pk)
    with caplog.at_level(logging.WARNING, logger="jobs.triggers"):
        assert entity_events_dispatch() == 0
    assert "Trigger chain cut at depth 3" in caplog.text
    assert Run.objects.filter(workflow=a).count() == Run.objects.filter(workflow=b).count() == 2


def test_a_cut_chain_says_why_in_the_log_of_each_run_whose_changes_it_did_not_run(
    product_type, settings
):
    """Workflows a and b trigger each other (a loop). At the depth limit the chain stops,
    and the runs whose changes started nothing say so in their own logs (their job's, `GET
    /jobs/:id/logs`), where the API's user looks: the worker's log alone told only its
    operator."""
    entity_id, a, b = _loop(product_type, settings)
    assert entity_events_dispatch() == 2
    for run in Run.objects.all():
        run_inline(run.pk)
    assert entity_events_dispatch() == 2
    deepest = list(Run.objects.filter(trigger__depth=2).order_by("pk"))
    for run in deepest:
        run_inline(run.pk)
    assert entity_events_dispatch() == 0
    for run in deepest:
        other = b if run.workflow_id == a.pk else a
        [line] = RunLog.objects.filter(run=run, level="warning").values_list("message", flat=True)
        assert line == (
            f"Trigger chain cut at depth 3 (TRIGGER_MAX_DEPTH=2): this run's changes did not "
            f"start workflow {other.pk} (entity.updated) on 1 entities, nor will on its later "
            "changes. Workflows triggering each other in a loop stop here."
        )
    # The same runs' later changes (a long run commits chunk by chunk) are cut without a
    # line each.
    for run in deepest:
        EntityEvent.objects.create(
            kind="entity.updated",
            entity_type_id=product_type.pk,
            entity_ids=[entity_id],
            fields=["title"],
            origin_workflow_id=run.workflow_id,
            origin_run_id=run.pk,
            depth=2,
        )
    assert entity_events_dispatch() == 0
    assert RunLog.objects.filter(run__in=deepest, message__startswith="Trigger chain").count() == 2
    shallower = Run.objects.exclude(pk__in=[run.pk for run in deepest])
    assert not RunLog.objects.filter(run__in=shallower, message__startswith="Trigger chain")


def test_a_persons_change_gathered_with_a_chain_cut_at_the_depth_is_still_run(
    product_type, settings, caplog
):
    """The depth cut is per event: the chain's change is dropped (and logged), the person's
    edit of another entity, gathered in the same window, starts its run."""
    settings.TRIGGER_MAX_DEPTH = 1
    chained, edited = make_entities(product_type, 2)
    EntityEvent.objects.all().delete()
    other = make_workflow(product_type, [SET_TITLE])
    watcher = make_workflow(product_type, [PUBLISH], triggers=[{"on": "entity.updated"}])
    entity_services.entity_update(entity_id=chained, data={"title": "By a person"})
    assert entity_events_dispatch() == 1
    run_inline(Run.objects.get(workflow=watcher).pk)
    # A run of `other` (itself at depth 1) edits `chained`; a person edits `edited`.
    run_inline(start_run(other, [chained], trigger={"type": "entity.created", "depth": 1}).pk)
    entity_services.entity_update(entity_id=edited, data={"title": "Also by a person"})
    with caplog.at_level(logging.WARNING, logger="jobs.triggers"):
        assert entity_events_dispatch() == 1
    assert "Trigger chain cut at depth 2" in caplog.text and "for 1 entities" in caplog.text
    run = Run.objects.filter(workflow=watcher).order_by("-created_at").first()
    assert _items(run) == [edited] and run.trigger == {"type": "entity.updated", "depth": 1}
    assert not EntityEvent.objects.exists()


def test_an_entity_created_then_edited_while_gathering_is_run_once_as_created(product_type):
    [edited_only] = make_entities(product_type, 1)
    EntityEvent.objects.all().delete()
    workflow = make_workflow(
        product_type, [PUBLISH], triggers=[{"on": "entity.created"}, {"on": "entity.updated"}]
    )
    new = entity_services.entity_create(entity_type=product_type, data={"title": "New"}).pk
    for entity_id in (new, edited_only):
        entity_services.entity_update(entity_id=entity_id, data={"title": "Renamed"})
    assert entity_events_dispatch() == 2
    runs = {run.trigger["type"]: _items(run) for run in Run.objects.filter(workflow=workflow)}
    assert runs == {"entity.created": [new], "entity.updated": [edited_only]}


def test_entities_created_one_by_one_start_one_run_up_to_the_id_limit(product_type, settings):
    """Single creates write an event each: the dispatch gathers them up to RUN_MAX_IDS
    entities a run, so 650 single creates start one run, not one per 200 events."""
    workflow = make_workflow(product_type, [PUBLISH], triggers=[{"on": "entity.created"}])
    ids = [
        entity_services.entity_create(entity_type=product_type, data={"title": f"P{i}"}).pk
        for i in range(650)
    ]
    assert EntityEvent.objects.count() == 650
    assert entity_events_dispatch() == 1
    assert sorted(_items(Run.objects.get(workflow=workflow))) == sorted(ids)
    settings.RUN_MAX_IDS = 300  # then: runs of at most 300, each event in one of them
    more = [
        entity_services.entity_create(entity_type=product_type, data={"title": f"Q{i}"}).pk
        for i in range(650)
    ]
    bulk = make_entities(product_type, 260)  # one event of 260: it is never split
    assert entity_events_dispatch() == 4
    runs = [_items(run) for run in Run.objects.filter(workflow=workflow).order_by("created_at")]
    assert [len(items) for items in runs] == [650, 300, 300, 50, 260]
    assert sorted(i for items in runs[1:4] for i in items) == sorted(more)
    assert sorted(runs[4]) == sorted(bulk)
    assert not EntityEvent.objects.exists()


def test_events_are_written_in_the_transaction_of_the_change(product_type):
    """A failed write leaves no event: the row goes or stays with the change."""
    from config.api.errors import InvalidInput

    make_workflow(product_type, [PUBLISH], triggers=[{"on": "entity.updated"}])
    [entity_id] = make_entities(product_type, 1)
    EntityEvent.objects.all().delete()
    with pytest.raises(InvalidInput):
        entity_services.entity_update(entity_id=entity_id, data={"title": ""})  # schema: min 1
    assert not EntityEvent.objects.exists()
    entity_services.entity_update(entity_id=entity_id, data={"title": "ok"})
    event = EntityEvent.objects.get()
    assert (event.kind, event.entity_ids, event.fields) == (
        "entity.updated",
        [entity_id],
        ["title"],
    )


def test_changes_no_active_workflow_listens_to_record_no_event(product_type):
    """No outbox rows (and no changed keys worked out) for what starts nothing: a draft
    workflow's trigger, or one on another kind of change, does not listen."""
    make_workflow(product_type, [PUBLISH], triggers=[{"on": "entity.created"}])
    make_workflow(product_type, [PUBLISH], triggers=[{"on": "entity.updated"}], status="draft")
    [entity_id] = make_entities(product_type, 1)
    assert EntityEvent.objects.filter(kind="entity.created").count() == 1
    entity_services.entity_update(entity_id=entity_id, data={"title": "changed"})
    run = start_run(make_workflow(product_type, [SET_TITLE, PUBLISH]), [entity_id])
    run_inline(run.pk)
    assert not EntityEvent.objects.filter(kind="entity.updated").exists()


def test_a_change_to_an_entity_an_open_run_of_the_workflow_holds_runs_once_that_run_ends(
    product_type,
):
    """The title is edited again while the run the first edit started still holds the entity
    (an AI call in flight, a review): the second edit's run left it out (item `skipped`,
    the change never run: the workflow's output stayed that of the first title). It waits
    in the outbox instead, for this workflow only, and runs once the holding run has ended."""
    watch = [{"on": "entity.updated", "fields": ["title"]}]
    [entity_id, other_id] = make_entities(product_type, 2)
    EntityEvent.objects.all().delete()
    workflow = make_workflow(product_type, [PUBLISH], triggers=watch)
    bystander = make_workflow(product_type, [PUBLISH], triggers=watch)
    entity_services.entity_update(entity_id=entity_id, data={"title": "First"})
    assert entity_events_dispatch() == 2
    first = Run.objects.get(workflow=workflow)
    run_inline(Run.objects.get(workflow=bystander).pk)
    entity_services.entity_update(entity_id=entity_id, data={"title": "Second"})
    entity_services.entity_update(entity_id=other_id, data={"title": "Other"})
    assert entity_events_dispatch() == 2  # the workflow on `other` only; the bystander on both
    assert not RunItem.objects.filter(run__workflow=workflow, status="skipped").exists()
    assert entity_events_dispatch() == 0  # still held: it waits
    run_inline(first.pk)
    assert entity_events_dispatch() == 1
    latest = Run.objects.filter(workflow=workflow).order_by("-created_at", "-pk").first()
    assert _items(latest) == [entity_id]
    assert latest.trigger == {"type": "entity.updated", "depth": 1}
    assert Run.objects.filter(workflow=bystander).count() == 2  # not run again on it
    assert not EntityEvent.objects.exists()


def test_a_trigger_made_after_a_change_is_not_started_on_it(product_type):
    """A change is run by the workflows whose triggers it met when it was made: one made
    while they gathered, and not by a workflow created, edited to watch its field or
    activated after it (the outbox is read seconds later, or much later after an outage)."""
    [entity_id] = make_entities(product_type, 1)
    EntityEvent.objects.all().delete()
    watch_price = [{"on": "entity.updated", "fields": ["price"]}]
    watch_title = [{"on": "entity.updated", "fields": ["title"]}]
    edited = make_workflow(product_type, [PUBLISH], triggers=watch_price)
    paused = make_workflow(product_type, [PUBLISH], triggers=watch_title, status="draft")
    ran = make_workflow(product_type, [PUBLISH], triggers=watch_title)
    entity_services.entity_update(entity_id=entity_id, data={"title": "New"})
    make_workflow(product_type, [PUBLISH], triggers=watch_title)  # created after
    edited.triggers = watch_title
    edited.save()
    paused.status = "active"
    paused.save()
    assert entity_events_dispatch() == 1
    assert list(Run.objects.values_list("workflow_id", flat=True)) == [ran.pk]


def test_a_workflow_created_after_an_import_is_not_started_on_it(product_type):
    first = make_workflow(product_type, [PUBLISH], triggers=[{"on": "entity.created"}])
    make_entities(product_type, 3)
    make_workflow(product_type, [PUBLISH], triggers=[{"on": "entity.created"}])
    assert entity_events_dispatch() == 1
    assert list(Run.objects.values_list("workflow_id", flat=True)) == [first.pk]


def test_an_admin_save_that_only_publishes_the_entity_triggers_any_change(product_type):
    """`entity.updated` without `fields` runs on any change: the admin's save of the status
    alone (draft to published) is one, as a restore's or a run's publish is. It recorded
    nothing (only changed data keys were)."""
    [entity_id] = make_entities(product_type, 1)
    EntityEvent.objects.all().delete()
    any_change = make_workflow(product_type, [PUBLISH], triggers=[{"on": "entity.updated"}])
    make_workflow(product_type, [PUBLISH], triggers=[{"on": "entity.updated", "fields": ["x"]}])
    entity = Entity.objects.get(pk=entity_id)
    entity.status = "published"
    entity_services.entity_save(entity=entity, created=False, opened_version=entity.version)
    assert entity_events_dispatch() == 1
    assert list(Run.objects.values_list("workflow_id", flat=True)) == [any_change.pk]
