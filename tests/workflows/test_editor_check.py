"""The step editor's check in the page (POST /admin/workflows/workflow/editor-check/): the
steps and triggers a workflow form holds, refused with the very message the form's save gives,
so the page and the server say the same."""

import json

import pytest
from django.contrib.auth.models import Permission

from tests.factories import make_workflow
from tests.workflows.test_workflow_admin import _form

pytestmark = pytest.mark.django_db
URL = "/admin/workflows/workflow/editor-check/"
SECRET = "whsec_" + "a" * 32
HOT = {"prompt": "Hi", "outputField": "d", "temperature": 5}


def _check(client, body):
    return client.post(URL, json.dumps(body), content_type="application/json")


def test_a_bad_value_is_refused_with_the_message_the_save_gives(admin_client, product_type):
    steps = [{"type": "transform", "config": ""}, {"type": "ai_generate", "config": HOT}]
    answer = _check(admin_client, {"entityType": product_type.pk, "steps": steps})
    assert answer.status_code == 200
    [problem] = answer.json()["problems"]
    assert problem["step"] == 1 and problem["field"] == "config"
    assert problem["text"].startswith("steps[1].config.temperature: ")
    assert problem["path"] == ["temperature"]  # where the page's form marks it
    saved = admin_client.post("/admin/workflows/workflow/add/", _form(product_type, steps))
    assert problem["text"] in saved.content.decode()


def test_good_steps_and_triggers_have_no_problem_and_bad_triggers_do(admin_client, product_type):
    steps = [{"type": "publish", "config": {"status": "published"}}]
    body = {"entityType": product_type.pk, "steps": steps, "triggers": [{"on": "entity.created"}]}
    assert _check(admin_client, body).json() == {"problems": []}
    body["triggers"] = [{"on": "schedule", "cron": "not a cron"}]
    [problem] = _check(admin_client, body).json()["problems"]
    assert problem["field"] == "triggers" and problem["text"].startswith("triggers[0].cron: ")


def test_a_saved_workflow_s_secret_is_kept_by_the_check_as_by_the_save(admin_client, product_type):
    secret = {
        "channel": "webhook",
        "url": "https://hooks.example.com/x",
        "secret": "whsec_" + "a" * 32,
    }
    workflow = make_workflow(product_type, [{"id": "tell", "type": "notify", "config": secret}])
    shown = {key: value for key, value in secret.items() if key != "secret"}
    body = {"workflow": workflow.pk, "steps": [{"id": "tell", "type": "notify", "config": shown}]}
    assert _check(admin_client, body).json() == {"problems": []}


def test_json_text_the_page_left_unread_is_named(admin_client, product_type):
    config = {"prompt": "Hi", "outputField": "d", "responseFormat": "json", "jsonSchema": "{no"}
    body = {"steps": [{"type": "ai_generate", "config": config}]}
    [problem] = _check(admin_client, body).json()["problems"]
    assert problem == {
        "step": 0,
        "field": "config",
        "text": "jsonSchema: Is not valid JSON.",
        "path": [],
    }


def test_a_nested_value_s_problem_names_its_place_in_the_config(admin_client):
    config = {"operations": [{"op": "trim", "field": "title"}, {"op": "trim", "field": "no!"}]}
    [problem] = _check(admin_client, {"steps": [{"type": "transform", "config": config}]}).json()[
        "problems"
    ]
    assert problem["path"] == ["operations", "1", "field"]


def test_the_check_needs_the_right_to_add_or_change_workflows(client, django_user_model):
    user = django_user_model.objects.create_user("viewer", password="x", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_workflow"))
    client.force_login(user)
    assert _check(client, {"steps": []}).status_code == 403
    assert client.get(URL).status_code in (403, 405)


def test_a_body_that_is_not_json_is_a_400_not_a_500(admin_client):
    answer = admin_client.post(URL, "{nope", content_type="application/json")
    assert answer.status_code == 400


def test_a_form_posted_instead_of_json_is_a_400_not_a_500(admin_client):
    """A form's POST is read by the admin's middleware (`UnstorableAdminPostMiddleware`)
    before the check reads the body, which Django then refuses to give: a 500."""
    answer = admin_client.post(URL, {"steps": "[]"})
    assert answer.status_code == 400
    assert answer.json()["problems"][0]["text"] == "Not JSON."


@pytest.mark.parametrize("steps", [5, "steps", {"type": "publish"}, None])
def test_steps_that_are_not_a_list_are_a_problem_not_a_500(admin_client, steps):
    answer = _check(admin_client, {"steps": steps, "triggers": 7})
    assert answer.status_code == 200
    assert answer.json()["problems"][0]["text"] == "Must be a list of steps."
