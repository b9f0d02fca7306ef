"""Reverts run in this process (`run_inline`): what a revert undoes and what it skips.
The API and real workers: `test_worker_reverts.py`."""

import datetime

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from config.api.fields import to_millis
from entities.models import Entity, EntityRevision
from entities.revisions import revisions_prune
from entities.services import entity_delete, entity_update
from jobs import reverts
from jobs.engine import chunk
from jobs.filter_runs import run_items_make
from jobs.models import ItemStatus, Run, RunItem
from jobs.reverts import run_revert
from tests.factories import PUBLISH_BETWEEN, make_entities, make_workflow, run_inline, start_run

pytestmark = pytest.mark.django_db


def _revert(run, **options) -> RunItem:
    revert = run_revert(run_id=run.pk, **options)
    run_items_make(run_id=revert.pk)
    run_inline(revert.pk)
    [item] = RunItem.objects.filter(run=revert)
    return item


def test_a_run_whose_entity_waited_between_its_commits_is_reverted_whole_after_retention(
    product_type, settings
):
    """The run's publish (v2) is past the revisions' retention, its final commit (v3) not:
    retention keeps v2 with v3, so the revert gives back the draft without a summary."""
    settings.ENTITY_REVISIONS_KEEP_DAYS = 30
    [entity_id] = make_entities(product_type, 1)
    run = start_run(make_workflow(product_type, PUBLISH_BETWEEN), [entity_id])
    run_inline(run.pk)
    now = timezone.now()
    EntityRevision.objects.filter(entity_id=entity_id, version__lte=2).update(
        created_at=now - datetime.timedelta(days=31)
    )
    EntityRevision.objects.filter(entity_id=entity_id, version=3).update(
        created_at=now - datetime.timedelta(days=29)
    )
    revisions_prune(now=now, limit=100)
    item = _revert(run)
    entity = Entity.objects.get(pk=entity_id)
    assert item.status == ItemStatus.COMPLETED
    assert (entity.status, entity.version) == ("draft", 4)
    assert "summary" not in entity.data


SET_SUMMARY = [
    {
        "id": "a",
        "type": "transform",
        "config": {"operations": [{"op": "set", "field": "summary", "value": "generated"}]},
    }
]


def _edit_after_the_check(monkeypatch, entity_id: str) -> None:
    """A person's edit landing between the revert's "changed since" check (when its chunk
    has loaded the entity) and its commit: another request, in real life."""
    check = reverts.revert_states

    def check_then_edit(**kwargs):
        check(**kwargs)
        entity_update(entity_id=entity_id, data={"summary": "written by a person"})

    monkeypatch.setattr(chunk, "revert_states", check_then_edit)


def test_an_edit_made_while_the_revert_s_chunk_runs_is_kept_and_the_entity_skipped(
    product_type, monkeypatch
):
    [entity_id] = make_entities(product_type, 1)
    run = start_run(make_workflow(product_type, SET_SUMMARY), [entity_id])
    run_inline(run.pk)
    _edit_after_the_check(monkeypatch, entity_id)
    item = _revert(run)
    entity = Entity.objects.get(pk=entity_id)
    assert entity.data["summary"] == "written by a person"
    assert entity.version == 3  # the edit's: the revert wrote nothing
    assert item.status == ItemStatus.SKIPPED
    assert item.error == (
        "Changed since the run: the entity is at version 3, the run left version 2."
    )
    item.run.refresh_from_db()
    assert (item.run.status, item.run.completed, item.run.skipped) == ("completed", 1, 1)
    assert not EntityRevision.objects.filter(run_id=item.run_id).exists()


def test_a_forced_revert_writes_over_an_edit_made_while_its_chunk_runs(product_type, monkeypatch):
    [entity_id] = make_entities(product_type, 1)
    run = start_run(make_workflow(product_type, SET_SUMMARY), [entity_id])
    run_inline(run.pk)
    _edit_after_the_check(monkeypatch, entity_id)
    item = _revert(run, force=True)
    entity = Entity.objects.get(pk=entity_id)
    assert item.status == ItemStatus.COMPLETED
    assert "summary" not in entity.data and entity.version == 4


SUMMARY_THEN_REVIEW = [
    *SET_SUMMARY,
    {"id": "pub", "type": "publish", "config": {}},
    {"id": "check", "type": "review", "config": {"instructions": "Check", "fields": ["summary"]}},
    {
        "id": "tag",
        "type": "transform",
        "config": {"operations": [{"op": "set", "field": "tag", "value": "t"}]},
    },
]


def _run_edited_while_it_waited(product_type, edit: dict) -> tuple:
    """A run that committed the entity (v2: summary, published), waited at a review while
    `edit` was made through the API (v3), then committed again once approved (v4)."""
    from jobs.engine.waits import run_waits_resume
    from jobs.models import Review
    from jobs.waits.review.services import review_decide

    [entity_id] = make_entities(product_type, 1)
    run = start_run(make_workflow(product_type, SUMMARY_THEN_REVIEW), [entity_id])
    run_inline(run.pk)
    entity_update(entity_id=entity_id, data=edit)
    [review] = Review.objects.filter(run=run)
    reviewer = get_user_model().objects.create_superuser(f"reviewer-{entity_id}")
    review_decide(review_id=review.pk, decision="approve", user=reviewer)
    run_waits_resume(run_id=run.pk)
    run_inline(run.pk)
    run.refresh_from_db()
    assert run.status == "completed"
    assert Entity.objects.get(pk=entity_id).version == 4
    return run, entity_id


def test_an_edit_made_between_the_run_s_commits_is_not_undone_by_its_revert(product_type):
    """The person's summary (v3) came after the run's (v2): the entity was changed since the
    run changed that field, as much as by an edit after the run's last commit."""
    run, entity_id = _run_edited_while_it_waited(product_type, {"summary": "by a person"})
    item = _revert(run)
    entity = Entity.objects.get(pk=entity_id)
    assert entity.data["summary"] == "by a person"
    assert entity.version == 4
    assert item.status == ItemStatus.SKIPPED
    assert item.error == (
        "Changed during the run: version 3 was written by something else between the run's "
        "versions 2 and 4."
    )
    forced = _revert(run, force=True)
    entity.refresh_from_db()
    assert forced.status == ItemStatus.COMPLETED
    assert "summary" not in entity.data and "tag" not in entity.data
    assert entity.status == "draft" and entity.version == 5


def test_an_entity_whose_values_before_the_run_no_longer_fit_the_schema_fails_untouched(
    product_type,
):
    """The type's schema now requires what the run added: the revert fails that entity,
    naming the broken rule, and writes nothing to it."""
    from entities.services import entity_type_update
    from tests.factories import PRODUCT_SCHEMA

    [entity_id] = make_entities(product_type, 1)
    run = start_run(make_workflow(product_type, SET_SUMMARY), [entity_id])
    run_inline(run.pk)
    schema = {**PRODUCT_SCHEMA, "required": ["title", "summary"]}
    entity_type_update(entity_type=product_type, schema=schema)
    item = _revert(run)
    assert item.status == ItemStatus.FAILED
    assert item.error == "Cannot commit the entity: data: 'summary' is a required property"
    entity = Entity.objects.get(pk=entity_id)
    assert (entity.version, entity.data["summary"]) == (2, "generated")
    item.run.refresh_from_db()
    assert (item.run.status, item.run.failed) == ("failed", 1)


def _published_at(entity_id: str):
    return Entity.objects.get(pk=entity_id).published_at


def test_a_revert_gives_back_the_publication_time_a_run_that_published_again_moved(
    product_type,
):
    """A run that published entities published already changed their publishedAt alone:
    the revert gives back the time they were first published (to the millisecond, as the
    revisions keep it), as a version recording that change."""
    [entity_id] = make_entities(product_type, 1)
    publish = make_workflow(product_type, [{"id": "pub", "type": "publish", "config": {}}])
    run_inline(start_run(publish, [entity_id]).pk)
    first = _published_at(entity_id)
    again = start_run(publish, [entity_id])
    run_inline(again.pk)
    assert _published_at(entity_id) > first
    item = _revert(again)
    entity = Entity.objects.get(pk=entity_id)
    assert item.status == ItemStatus.COMPLETED
    assert entity.version == 4 and entity.status == "published"
    assert to_millis(entity.published_at) == to_millis(first)
    [change] = EntityRevision.objects.get(entity_id=entity_id, version=4).changes
    assert change["field"] == "publishedAt" and change["after"] == to_millis(first)


def test_a_revert_of_an_unpublishing_run_publishes_again_at_the_first_publication_time(
    product_type,
):
    [entity_id] = make_entities(product_type, 1)
    publish = make_workflow(product_type, [{"id": "pub", "type": "publish", "config": {}}])
    run_inline(start_run(publish, [entity_id]).pk)
    first = _published_at(entity_id)
    unpublish = make_workflow(
        product_type, [{"id": "draft", "type": "publish", "config": {"status": "draft"}}]
    )
    run = start_run(unpublish, [entity_id])
    run_inline(run.pk)
    assert _published_at(entity_id) is None
    item = _revert(run)
    entity = Entity.objects.get(pk=entity_id)
    assert item.status == ItemStatus.COMPLETED
    assert (entity.status, to_millis(entity.published_at)) == ("published", to_millis(first))


def test_an_entity_deleted_once_the_reverts_items_are_made_is_skipped_not_failed(
    product_type,
):
    """Its item names the delete, and the revert ends completed with the others reverted."""
    ids = make_entities(product_type, 2)
    run = start_run(make_workflow(product_type, SET_SUMMARY), ids)
    run_inline(run.pk)
    revert = run_revert(run_id=run.pk)
    run_items_make(run_id=revert.pk)
    entity_delete(entity=Entity.objects.get(pk=ids[0]))
    run_inline(revert.pk)
    items = {item.entity_id: item for item in RunItem.objects.filter(run=revert)}
    assert items[ids[0]].status == ItemStatus.SKIPPED
    assert items[ids[0]].error == "Deleted since the run: nothing to revert."
    assert items[ids[1]].status == ItemStatus.COMPLETED
    assert "summary" not in Entity.objects.get(pk=ids[1]).data
    revert.refresh_from_db()
    assert (revert.status, revert.completed, revert.failed) == ("completed", 2, 0)


def _failed_revert(product_type, api=None, **options):
    """A run that set `summary`, and a revert of it that failed its one entity (the schema
    came to require `summary`), the schema then relaxed again: (run, revert, entity id)."""
    from entities.services import entity_type_update
    from tests.factories import PRODUCT_SCHEMA

    [entity_id] = make_entities(product_type, 1)
    run = start_run(make_workflow(product_type, SET_SUMMARY), [entity_id])
    run_inline(run.pk)
    required = {**PRODUCT_SCHEMA, "required": ["title", "summary"]}
    entity_type_update(entity_type=product_type, schema=required)
    item = _revert(run, **options)
    assert item.status == ItemStatus.FAILED
    entity_type_update(entity_type=product_type, schema=PRODUCT_SCHEMA)
    return run, item.run, entity_id


def test_a_revert_is_not_retried_as_a_run_of_the_workflow_s_steps(api, product_type):
    """Retrying a revert would run the workflow's steps again on the entities it failed to
    revert (a transform here; new answers or notifications elsewhere): a 409 naming the run
    to revert again instead, and nothing is started."""
    run, revert, entity_id = _failed_revert(product_type, force=True)
    workflow = run.workflow_id
    response = api.post(f"/api/v1/workflows/{workflow}/runs/{revert.pk}/retry", {})
    assert response.status_code == 409, response.content
    error = response.json()["error"]
    assert error["code"] == "revert_not_retried"
    assert f"Revert run {run.pk} again instead, forced as this one was" in error["message"]
    assert not Run.objects.filter(retry_of=revert).exists()
    again = run_revert(run_id=run.pk)
    run_items_make(run_id=again.pk)
    run_inline(again.pk)
    entity = Entity.objects.get(pk=entity_id)
    assert "summary" not in entity.data
    assert entity.version == 3


def test_an_open_run_s_revisions_are_kept_so_its_revert_skips_an_entity_edited_while_it_waited(
    product_type, settings
):
    """The run published the entity (v2) and waited at a review past the revisions' keep
    days while a person edited it (v3): v2 looked prunable alone (an edit after it, no later
    revision of its run yet). Pruned, the revert saw the final commit (v4) alone, undid that
    and reported the entity reverted, published and summarised by the run still. Retention
    keeps an open run's revisions: the revert sees the edit between the run's commits."""
    from jobs.engine.waits import run_waits_resume
    from jobs.models import Review
    from jobs.retention import retention_prune
    from jobs.waits.review.services import review_decide

    settings.ENTITY_REVISIONS_KEEP_DAYS = 30
    [entity_id] = make_entities(product_type, 1)
    run = start_run(make_workflow(product_type, SUMMARY_THEN_REVIEW), [entity_id])
    run_inline(run.pk)
    entity_update(entity_id=entity_id, data={"price": 99})
    long_ago = timezone.now() - datetime.timedelta(days=31)
    EntityRevision.objects.filter(entity_id=entity_id, version__lte=2).update(created_at=long_ago)
    retention_prune()
    kept = EntityRevision.objects.filter(entity_id=entity_id).values_list("version", flat=True)
    assert sorted(kept) == [2, 3]  # v1 (the creation) is pruned, the run's v2 is not
    [review] = Review.objects.filter(run=run)
    reviewer = get_user_model().objects.create_superuser("reviewer-kept")
    review_decide(review_id=review.pk, decision="approve", user=reviewer)
    run_waits_resume(run_id=run.pk)
    run_inline(run.pk)
    item = _revert(run)
    assert item.status == ItemStatus.SKIPPED
    assert item.error == reverts.changed_during(3, 2, 4)
    entity = Entity.objects.get(pk=entity_id)
    assert (entity.version, entity.data["summary"]) == (4, "generated")


def test_a_revert_s_chunks_are_not_cut_to_the_size_of_the_steps_it_does_not_run(
    product_type, settings
):
    """A step of slow calls (`ai_generate`) keeps a run's chunks small; the revert of that
    run calls nothing, and was cut as small: 7,800 chunks of 128 for a million entities
    where 1,000 of 1,000 do, each paying a task, a claim and a commit."""
    from workflows.steps.chunking import chunk_size

    settings.RUN_CHUNK_SIZE, settings.RUN_CHUNK_SIZE_MAX, settings.AI_RUN_CHUNK_SIZE = 2, 5, 1
    ids = make_entities(product_type, 30)
    generate = {"id": "gen", "type": "ai_generate", "config": {"prompt": "x", "outputField": "d"}}
    run = start_run(make_workflow(product_type, [generate]), ids)
    run_inline(run.pk)
    assert Entity.objects.filter(pk__in=ids, data__has_key="d").count() == 30
    revert = run_revert(run_id=run.pk)
    assert revert.chunk_size == chunk_size([], 30) == 3
    run_items_make(run_id=revert.pk)
    run_inline(revert.pk)
    assert Entity.objects.filter(pk__in=ids, data__has_key="d").count() == 0


def test_a_patch_that_changes_nothing_leaves_the_entity_revertible(api, product_type):
    """A sync sending back the values an entity has made a new version with an empty
    revision: the entity looked changed since the run, and the revert skipped it."""
    [entity_id] = make_entities(product_type, 1)
    run = start_run(make_workflow(product_type, SET_SUMMARY), [entity_id])
    run_inline(run.pk)
    response = api.patch(f"/api/v1/entities/{entity_id}", {"data": {"summary": "generated"}})
    assert (response.status_code, response.json()["version"]) == (200, 2)
    assert EntityRevision.objects.filter(entity_id=entity_id).count() == 2
    item = _revert(run)
    assert item.status == ItemStatus.COMPLETED
    entity = Entity.objects.get(pk=entity_id)
    assert ("summary" in entity.data, entity.version) == (False, 3)


def test_a_run_being_reverted_keeps_its_revisions_until_the_revert_ends(product_type, settings):
    """A revert of a run near the revisions' keep days takes hours over a million entities,
    and retention runs hourly: the run's revisions pruned under it, its later chunks skipped
    their entities as no longer kept, the run half reverted. They are kept while a revert
    of the run is open, and pruned as usual once it has ended."""
    from jobs.retention import retention_prune

    settings.ENTITY_REVISIONS_KEEP_DAYS = 30
    [entity_id] = make_entities(product_type, 1)
    run = start_run(make_workflow(product_type, SET_SUMMARY), [entity_id])
    run_inline(run.pk)
    entity_update(entity_id=entity_id, data={"price": 7})  # v3: the run's v2 is not newest
    long_ago = timezone.now() - datetime.timedelta(days=31)
    EntityRevision.objects.filter(entity_id=entity_id).update(created_at=long_ago)
    revert = run_revert(run_id=run.pk, force=True)
    retention_prune()
    kept = EntityRevision.objects.filter(entity_id=entity_id).values_list("version", flat=True)
    assert sorted(kept) == [2, 3]  # the creation pruned, the reverted run's v2 kept
    run_items_make(run_id=revert.pk)
    run_inline(revert.pk)
    [item] = RunItem.objects.filter(run=revert)
    assert item.status == ItemStatus.COMPLETED
    assert "summary" not in Entity.objects.get(pk=entity_id).data
    EntityRevision.objects.filter(entity_id=entity_id).update(created_at=long_ago)
    retention_prune()
    kept = EntityRevision.objects.filter(entity_id=entity_id).values_list("version", flat=True)
    assert sorted(kept) == [4]  # the revert ended: only the newest is left
