import json

import pytest

from tests.factories import make_entities, make_workflow, start_run
from workflows.models import Workflow

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff(client, django_user_model):
    django_user_model.objects.create_superuser("staff", "s@example.com", "pw-for-tests-1")
    client.login(username="staff", password="pw-for-tests-1")
    return client


def _form(product_type, steps, **extra):
    data = {
        "name": "From the admin",
        "description": "",
        "entity_type": product_type.id,
        "status": "active",
        "steps-TOTAL_FORMS": str(len(steps)),
        "steps-INITIAL_FORMS": "0",
        "steps-MIN_NUM_FORMS": "0",
        "steps-MAX_NUM_FORMS": "1000",
        "versions-TOTAL_FORMS": "0",
        "versions-INITIAL_FORMS": "0",
        **extra,
    }
    for index, step in enumerate(steps):
        data[f"steps-{index}-position"] = str(step.get("position", index))
        data[f"steps-{index}-step_id"] = step.get("id", "")
        data[f"steps-{index}-type"] = step["type"]
        data[f"steps-{index}-config"] = json.dumps(step["config"]) if "config" in step else ""
    return data


def test_admin_creates_a_workflow_with_ordered_steps(staff, product_type):
    steps = [
        {"type": "publish", "config": {}, "position": 2},
        {"type": "transform", "position": 1},  # empty config: the type's example is used
    ]
    response = staff.post("/admin/workflows/workflow/add/", _form(product_type, steps))
    assert response.status_code == 302, response.content.decode()[:2000]
    workflow = Workflow.objects.get()
    assert workflow.version == 1
    assert [step.type for step in workflow.steps.order_by("position")] == ["transform", "publish"]
    assert workflow.versions.get().steps[0]["config"]["operations"]


def test_admin_shows_the_api_message_next_to_the_step(staff, product_type):
    steps = [
        {"type": "publish", "config": {}},
        {"type": "ai_generate", "config": {"outputField": "x"}},
    ]
    response = staff.post("/admin/workflows/workflow/add/", _form(product_type, steps))
    assert response.status_code == 200
    assert "steps[1].config.prompt: This field is required." in response.content.decode()
    assert Workflow.objects.count() == 0


def test_admin_edit_of_steps_bumps_the_version_and_names_its_author(staff, api, product_type):
    created = api.post(
        "/api/v1/workflows",
        {
            "name": "W",
            "entityTypeId": product_type.id,
            "steps": [{"type": "publish", "config": {}}],
        },
    ).json()
    workflow = Workflow.objects.get(pk=created["id"])
    step = workflow.steps.get()
    data = _form(
        product_type,
        [{"type": "publish", "config": {"status": "draft"}, "id": "publish_1"}],
        **{"steps-INITIAL_FORMS": "1", "steps-0-id": str(step.pk), "steps-0-workflow": workflow.pk},
    )
    response = staff.post(f"/admin/workflows/workflow/{workflow.pk}/change/", data)
    assert response.status_code == 302, response.content.decode()[:3000]
    workflow.refresh_from_db()
    assert workflow.version == 2
    assert workflow.steps.get().config == {"status": "draft"}
    assert workflow.versions.get(number=2).created_by.username == "staff"  # "who made it"


def test_step_type_reference_lists_the_six_types(staff):
    response = staff.get("/admin/workflows/workflow/step-types/")
    assert response.status_code == 200
    html = response.content.decode()
    for type_name in ["ai_generate", "validate", "publish", "notify", "transform", "condition"]:
        assert f'id="{type_name}"' in html
    assert "outputField" in html and "Example config" in html


def test_admin_requires_staff(client):
    response = client.get("/admin/workflows/workflow/step-types/")
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]


def test_admin_never_shows_a_notify_secret_and_an_edit_keeps_it(staff, api, product_type):
    """Secrets are write-only in the admin as in the API: the step's form and the versions
    show `secretSet`, and saving the form as shown keeps the secret."""
    secret = "a-private-signing-key-of-the-tests"
    notify = {"channel": "webhook", "url": "https://hooks.example.com/done", "secret": secret}
    created = api.post(
        "/api/v1/workflows",
        {
            "name": "W",
            "entityTypeId": product_type.id,
            "steps": [{"type": "notify", "id": "tell", "config": notify}],
        },
    )
    assert created.status_code == 201, created.json()
    workflow = Workflow.objects.get(pk=created.json()["id"])
    page = staff.get(f"/admin/workflows/workflow/{workflow.pk}/change/").content.decode()
    assert secret not in page and "secretSet" in page

    shown = {"channel": "email", "to": "ops@example.com", "secretSet": True}
    data = _form(
        product_type,
        [{"type": "notify", "config": shown, "id": "tell"}],
        **{
            "steps-INITIAL_FORMS": "1",
            "steps-0-id": str(workflow.steps.get().pk),
            "steps-0-workflow": workflow.pk,
        },
    )
    response = staff.post(f"/admin/workflows/workflow/{workflow.pk}/change/", data)
    assert response.status_code == 302, response.content.decode()[:3000]
    workflow.refresh_from_db()
    assert workflow.version == 2
    assert workflow.steps.get().config["secret"] == secret
    assert "secretSet" not in workflow.steps.get().config
    page = staff.get(f"/admin/workflows/workflow/{workflow.pk}/change/").content.decode()
    assert secret not in page


def test_admin_refuses_to_delete_a_workflow_with_runs_in_a_line_not_a_list_of_them(
    staff, product_type, django_assert_max_num_queries
):
    """The API archives workflows; Django's page would load and list every run first."""
    workflow = make_workflow(product_type, [{"type": "publish", "config": {}}], name="Used")
    for _ in range(3):
        start_run(workflow, make_entities(product_type, 1))
    url = f"/admin/workflows/workflow/{workflow.pk}/delete/"
    with django_assert_max_num_queries(30):
        page = staff.get(url)
    assert page.status_code == 200
    text = page.content.decode()
    assert "it has runs, which stay readable: archive it instead" in text
    assert text.count("Run ") == 0  # no run listed
    staff.post(url, {"post": "yes"})
    assert Workflow.objects.filter(pk=workflow.pk).exists()
    unused = make_workflow(product_type, [{"type": "publish", "config": {}}], name="Unused")
    staff.post(f"/admin/workflows/workflow/{unused.pk}/delete/", {"post": "yes"})
    assert not Workflow.objects.filter(pk=unused.pk).exists()


@pytest.mark.parametrize("how", ["page", "action"])
def test_a_workflow_that_a_run_came_to_use_as_it_was_deleted_is_kept_saying_so(
    staff, product_type, monkeypatch, how
):
    """A run started between the delete page's check and the delete: Django's collector
    refuses it (a 500 before); the workflow and the run stay, and the page says why."""
    from workflows.admin import WorkflowAdmin

    workflow = make_workflow(product_type, [{"type": "publish", "config": {}}], name="Raced")
    checked = WorkflowAdmin.get_deleted_objects

    def check_then_a_run_starts(self, objs, request):
        answer = checked(self, objs, request)
        if request.method == "POST" and not workflow.runs.exists():
            start_run(workflow, make_entities(product_type, 1))
        return answer

    monkeypatch.setattr(WorkflowAdmin, "get_deleted_objects", check_then_a_run_starts)
    if how == "page":
        response = staff.post(
            f"/admin/workflows/workflow/{workflow.pk}/delete/", {"post": "yes"}, follow=True
        )
    else:
        response = staff.post(
            "/admin/workflows/workflow/",
            {"action": "delete_selected", "_selected_action": [workflow.pk], "post": "yes"},
            follow=True,
        )
    assert response.status_code == 200
    text = response.content.decode()
    assert "Nothing was deleted: something came to use the workflow as it was deleted" in text
    assert Workflow.objects.filter(pk=workflow.pk).exists()
    # The page's delete is one transaction, rolled back whole: here the run was made inside
    # it (another request's, in production), so it goes too; the action's was made before.
    assert workflow.runs.count() == (0 if how == "page" else 1)


def test_a_version_cannot_be_deleted_alone(staff, product_type):
    """Versions go with their workflow; the live one deleted alone would leave it nothing."""
    workflow = make_workflow(product_type, [{"type": "publish", "config": {}}], name="W")
    version = workflow.versions.get()
    url = f"/admin/workflows/workflowversion/{version.pk}/delete/"
    assert staff.post(url, {"post": "yes"}).status_code == 403
    assert workflow.versions.exists()
