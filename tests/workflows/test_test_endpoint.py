import pytest
from django.core import mail

from entities.models import Entity
from jobs.models import Run, RunItem
from tests.factories import make_entities, make_entity_type, make_workflow, run_inline, start_run

pytestmark = pytest.mark.django_db


def test_test_runs_one_entity_and_commits_and_sends_nothing(
    api, product_type, receiver, allow_loopback
):
    workflow = make_workflow(
        product_type,
        [
            {
                "id": "gen",
                "type": "ai_generate",
                "config": {"prompt": "Describe {{ entity.title }}", "outputField": "description"},
            },
            {
                "id": "check",
                "type": "condition",
                "config": {"if": {"field": "description", "operator": "exists"}},
            },
            {"id": "pub", "type": "publish", "config": {}},
            {
                "id": "hook",
                "type": "notify",
                "config": {"channel": "webhook", "url": receiver.url, "message": "{{ steps.gen }}"},
            },
            {"id": "mail", "type": "notify", "config": {"channel": "email", "to": "a@example.com"}},
        ],
    )
    [entity_id] = make_entities(product_type, 1)
    response = api.post(f"/api/v1/workflows/{workflow.pk}/test", {"entityId": entity_id})
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "completed"
    assert [(s["stepId"], s["outcome"]) for s in body["steps"]] == [
        ("gen", "completed"),
        ("check", "completed"),
        ("pub", "completed"),
        ("hook", "completed"),
        ("mail", "completed"),
    ]
    assert body["steps"][2]["output"] == {"published": False, "status": "published"}
    hook = body["steps"][3]["output"]
    assert hook["sent"] is False and hook["url"] == receiver.url
    assert hook["event"]["message"] == body["steps"][0]["output"]
    assert body["data"]["description"] == body["steps"][0]["output"]
    entity = Entity.objects.get(pk=entity_id)
    assert entity.version == 1 and entity.status == "draft" and "description" not in entity.data
    assert receiver.requests == [] and mail.outbox == []
    assert Run.objects.count() == 0


def test_test_reports_the_failing_and_unreached_steps(api, product_type):
    workflow = make_workflow(
        product_type,
        [
            {
                "id": "v",
                "type": "validate",
                "config": {"rules": [{"field": "nope", "required": True}]},
            },
            {"id": "p", "type": "publish", "config": {}},
        ],
    )
    [entity_id] = make_entities(product_type, 1)
    body = api.post(f"/api/v1/workflows/{workflow.pk}/test", {"entityId": entity_id}).json()
    assert body["status"] == "failed"
    assert body["error"] == "Validation failed: nope: is required"
    assert [(s["stepId"], s["outcome"]) for s in body["steps"]] == [
        ("v", "failed"),
        ("p", "skipped"),
    ]


def test_test_needs_an_entity_of_the_workflow_type(api, product_type):
    workflow = make_workflow(product_type, [{"type": "publish", "config": {}}])
    other = make_entities(make_entity_type(schema=None), 1)[0]
    for body in ({"entityId": other}, {"entityId": "ent_missing"}, {}):
        response = api.post(f"/api/v1/workflows/{workflow.pk}/test", body)
        assert response.status_code == 400
        assert response.json()["error"]["details"][0]["field"] == "entityId"


@pytest.mark.parametrize("url_of", [lambda r: r.url, lambda r: "http://10.0.0.1/hook"])
def test_test_fails_a_webhook_a_run_would_refuse_with_the_runs_error(
    api, product_type, receiver, url_of
):
    steps = [
        {"id": "hook", "type": "notify", "config": {"channel": "webhook", "url": url_of(receiver)}},
        {"id": "pub", "type": "publish", "config": {}},
    ]
    workflow = make_workflow(product_type, steps)
    [entity_id] = make_entities(product_type, 1)
    body = api.post(f"/api/v1/workflows/{workflow.pk}/test", {"entityId": entity_id}).json()
    assert body["status"] == "failed"
    assert [(s["stepId"], s["outcome"]) for s in body["steps"]] == [
        ("hook", "failed"),
        ("pub", "skipped"),
    ]
    assert "non-public address" in body["steps"][0]["error"]
    run = start_run(workflow, [entity_id])
    run_inline(run.pk)
    item = RunItem.objects.get(run=run)
    assert (item.status, item.step_id) == ("failed", "hook")
    assert item.error == body["steps"][0]["error"] == body["error"]
    assert receiver.requests == []
