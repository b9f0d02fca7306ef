import pytest

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
