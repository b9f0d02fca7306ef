"""Reverting runs with a real Celery worker: entities edited since are skipped and named,
`force` reverts them too, and reverting a revert redoes the run: 10,000 entities, 100 of
them edited through the API after the run; two reverts asked at once revert each entity
once; a revert while another workflow's run holds the entities keeps both changes."""

from collections import Counter
from datetime import timedelta

import pytest
from django.utils import timezone

from entities.models import Entity, EntityRevision
from jobs.models import RunItem
from tests.factories import make_entities, make_workflow, start_run
from tests.workers import all_waiting, wait_for_run, wait_until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]

N = 10_000
EDITED = 100
STEPS = [
    {
        "id": "sum",
        "type": "transform",
        "config": {"operations": [{"op": "set", "field": "summary", "value": "generated"}]},
    },
    {"id": "pub", "type": "publish", "config": {}},
]


def _revert(api, run, **body):
    response = api.post(f"/api/v1/workflows/{run.workflow_id}/runs/{run.pk}/revert", body)
    assert response.status_code == 202, response.json()
    assert set(response.json()) == {"jobId", "runId"}
    return wait_for_run(response.json()["runId"], timeout=300)


def _items(run) -> Counter:
    return Counter(RunItem.objects.filter(run=run).values_list("status", flat=True))


def test_a_run_is_reverted_skipping_what_was_edited_since_then_forced_and_redone(
    celery_worker, api, product_type
):
    ids = make_entities(product_type, N)
    workflow = make_workflow(product_type, STEPS)
    run = wait_for_run(start_run(workflow, ids).pk, timeout=300)
    assert run.status == "completed"
    edited = sorted(ids)[::20][:EDITED]
    for entity_id in edited:
        assert api.patch(f"/api/v1/entities/{entity_id}", {"data": {"price": 7}}).status_code == 200

    revert = _revert(api, run)
    assert revert.trigger == {"type": "revert", "runId": run.pk, "force": False}
    assert revert.status == "completed" and revert.total == N
    assert _items(revert) == {"completed": N - EDITED, "skipped": EDITED}
    skipped = RunItem.objects.filter(run=revert, status="skipped")
    assert set(skipped.values_list("entity_id", flat=True)) == set(edited)
    assert "at version 3, the run left version 2" in skipped.first().error
    # The run's answer says how many were reverted and how many skipped.
    progress = api.get(f"/api/v1/workflows/{workflow.pk}/runs/{revert.pk}").json()["progress"]
    reverted = progress["completed"] - progress["skipped"]
    assert (reverted, progress["skipped"]) == (N - EDITED, EDITED)
    entities = {e.pk: e for e in Entity.objects.filter(pk__in=ids)}
    for entity_id in ids:
        entity = entities[entity_id]
        if entity_id in edited:
            assert entity.status == "published" and entity.data["summary"] == "generated"
        else:
            assert "summary" not in entity.data and entity.status == "draft"
            assert entity.published_at is None and entity.version == 3
    revision = EntityRevision.objects.get(run_id=revert.pk, entity_id=ids[1])
    assert revision.source == "revert"

    redo = _revert(api, revert)  # reverting the revert redoes the run
    assert _items(redo) == {"completed": N - EDITED}
    redone = Entity.objects.filter(pk__in=ids, status="published", data__summary="generated")
    assert redone.count() == N

    forced = _revert(api, run, force=True)
    assert _items(forced) == {"completed": N}
    left = Entity.objects.filter(pk__in=ids)
    assert not left.filter(data__has_key="summary").exists()
    assert set(left.values_list("status", flat=True)) == {"draft"}
    # What was edited since, in fields the run did not change, is kept.
    assert set(left.filter(pk__in=edited).values_list("data__price", flat=True)) == {7}


@pytest.mark.django_db(transaction=False)  # nothing commits: no worker takes the run
def test_a_revert_of_an_open_run_is_a_409(api, product_type):
    workflow = make_workflow(product_type, STEPS)
    run = start_run(workflow, make_entities(product_type, 2))
    response = api.post(f"/api/v1/workflows/{workflow.pk}/runs/{run.pk}/revert", {})
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "run_not_ended"
    response = api.post(f"/api/v1/workflows/{workflow.pk}/runs/{run.pk}/revert", {"force": 1})
    assert response.status_code == 400


def test_two_reverts_of_a_run_asked_at_once_revert_each_entity_once(
    celery_worker, api, product_type
):
    """A double click: the second revert, asked before the first has made its items, takes
    no entity the first reverts (the first holds them, or has changed them since the run)."""
    ids = make_entities(product_type, 2_000)
    run = wait_for_run(start_run(make_workflow(product_type, STEPS), ids).pk, timeout=300)
    url = f"/api/v1/workflows/{run.workflow_id}/runs/{run.pk}/revert"
    first, second = (api.post(url, {}) for _ in range(2))
    assert (first.status_code, second.status_code) == (202, 202)
    reverts = [wait_for_run(r.json()["runId"], timeout=300) for r in (first, second)]
    assert [r.status for r in reverts] == ["completed", "completed"]
    progress = [_progress(r) for r in reverts]
    assert [p["completed"] for p in progress] == [len(ids), len(ids)]
    assert sum(p["completed"] - p["skipped"] for p in progress) == len(ids)
    items = _items(reverts[0]) + _items(reverts[1])
    assert items == {"completed": len(ids), "skipped": len(ids)}
    assert set(Entity.objects.filter(pk__in=ids).values_list("version", flat=True)) == {3}
    assert EntityRevision.objects.filter(entity_id__in=ids, source="revert").count() == len(ids)
    assert not Entity.objects.filter(pk__in=ids, data__has_key="summary").exists()


def _progress(run) -> dict:
    run.refresh_from_db()
    return {"completed": run.completed, "skipped": run.skipped}


def test_a_revert_while_another_workflow_s_run_holds_the_entities_loses_neither_change(
    celery_worker, api, product_type
):
    """The other run read the entities (as the run left them) and waits at a delay while the
    revert writes them: its commit then merges its own field into what the revert wrote,
    writing the run's fields neither back nor over."""
    ids = make_entities(product_type, 500)
    run = wait_for_run(start_run(make_workflow(product_type, STEPS), ids).pk, timeout=300)
    until = (timezone.now() + timedelta(seconds=10)).isoformat().replace("+00:00", "Z")
    tagging = [
        {
            "id": "tag",
            "type": "transform",
            "config": {"operations": [{"op": "set", "field": "tag", "value": "t"}]},
        },
        {"id": "later", "type": "delay", "config": {"until": until}},
    ]
    other = start_run(make_workflow(product_type, tagging), ids)
    wait_until(all_waiting(other.pk, len(ids)), "the other run's entities to wait", timeout=60)
    revert = _revert(api, run)
    assert _items(revert) == {"completed": len(ids)}
    assert wait_for_run(other.pk, timeout=120).status == "completed"
    entities = Entity.objects.filter(pk__in=ids)
    assert {(e.data["tag"], "summary" in e.data, e.status, e.version) for e in entities} == {
        ("t", False, "draft", 4)
    }
