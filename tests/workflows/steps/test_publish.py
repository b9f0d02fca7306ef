import pytest

from entities.models import Entity, EntityRevision
from entities.revisions import version_state
from entities.services import entity_update
from jobs.engine import committer as committer_module
from tests.factories import PUBLISH_BETWEEN, make_entities, make_workflow, run_inline, start_run

pytestmark = pytest.mark.django_db


def test_publish_commits_the_working_copy_and_sets_status(run_steps):
    steps = [
        {
            "type": "transform",
            "config": {"operations": [{"op": "set", "field": "title", "value": "New"}]},
        },
        {"type": "publish", "config": {}},
    ]
    [item], [entity] = run_steps(steps, {"title": "Old"})
    assert item.status == "completed"
    assert entity.status == "published"
    assert entity.published_at is not None
    assert entity.data["title"] == "New"
    assert entity.version == 2  # published once; nothing changed after it


def test_changes_after_publish_are_committed_at_the_end_as_a_new_version(run_steps):
    steps = [
        {"type": "publish", "config": {"status": "published"}},
        {
            "type": "transform",
            "config": {"operations": [{"op": "set", "field": "after", "value": 1}]},
        },
    ]
    [item], [entity] = run_steps(steps, {"title": "Old"})
    assert item.status == "completed"
    assert entity.data["after"] == 1
    assert entity.version == 3


def test_failure_after_publish_keeps_what_was_published(run_steps):
    steps = [
        {
            "type": "transform",
            "config": {"operations": [{"op": "set", "field": "title", "value": "Published title"}]},
        },
        {"type": "publish", "config": {}},
        {
            "type": "transform",
            "config": {
                "operations": [
                    {"op": "set", "field": "title", "value": "Discarded"},
                    {"op": "copy", "from": "nope", "to": "x"},
                ]
            },
        },
    ]
    [item], [entity] = run_steps(steps, {"title": "Old"})
    assert item.status == "failed"
    assert entity.status == "published"
    assert entity.data["title"] == "Published title"
    assert entity.version == 2


def test_publish_as_draft_clears_published_at(run_steps):
    [item], [entity] = run_steps(
        [{"type": "publish", "config": {"status": "draft"}}], {"title": "a"}
    )
    assert item.status == "completed"
    assert entity.status == "draft" and entity.published_at is None


def _edit_before_the_publish(monkeypatch, entity_id, data):
    """A person's PATCH landing while the run is between loading the entity and its
    mid-run publish step (another request, in real life)."""
    publish = committer_module.ChunkCommitter.publish

    def edit_then_publish(self, states, status, ctx):
        entity_update(entity_id=entity_id, data=data)
        return publish(self, states, status, ctx)

    monkeypatch.setattr(committer_module.ChunkCommitter, "publish", edit_then_publish)


def test_an_edit_merged_at_a_mid_run_publish_survives_the_final_commit(product_type, monkeypatch):
    """The publish step merges the run's copy onto the edit (v3 keeps price 99), but the
    final commit then writes the run's stale working copy whole (at v3, version matches),
    silently dropping the edit; its revision does not even record that price changed."""
    [entity_id] = make_entities(product_type, 1)  # price 0
    run = start_run(make_workflow(product_type, PUBLISH_BETWEEN), [entity_id])
    _edit_before_the_publish(monkeypatch, entity_id, {"price": 99})
    run_inline(run.pk)
    entity = Entity.objects.get(pk=entity_id)
    assert entity.data["summary"] == "second"
    assert entity.data["price"] == 99  # HEAD: 0, the person's edit is lost


def test_revisions_rebuild_the_version_after_a_merged_mid_run_publish(product_type, monkeypatch):
    """Whatever the final commit writes, the revisions must be able to rebuild each version:
    the version the publish made (it held price 99) is rebuilt from the current entity by
    undoing the newer revisions."""
    [entity_id] = make_entities(product_type, 1)
    run = start_run(make_workflow(product_type, PUBLISH_BETWEEN), [entity_id])
    _edit_before_the_publish(monkeypatch, entity_id, {"price": 99})
    run_inline(run.pk)
    entity = Entity.objects.get(pk=entity_id)
    published = EntityRevision.objects.get(entity_id=entity_id, step_id="pub")
    state = version_state(entity=entity, version=published.version)
    # v3 (the publish's merge) stored price 99: the rebuild must say so.
    assert state.data["price"] == 99
