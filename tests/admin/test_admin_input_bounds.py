"""Every admin form that takes JSON or text holds the API's bounds (config/api/parsers.py): a
NUL character (as typed, or `\\u0000` in JSON) and JSON nested deeper than MAX_JSON_DEPTH are
a form error (or, on the pages without a form, an error message), nothing is saved, and no
request is a 500 (they were: the database refuses NUL, the decoder recurses per level)."""

import json

import pytest

from config.api.models import ApiKey
from config.api.parsers import MAX_JSON_DEPTH
from entities.models import Entity, EntityType
from jobs.models import Review, ReviewStatus, Run
from tests.admin.test_review_pages import parked
from tests.factories import make_entities, make_workflow
from workflows.models import Workflow

pytestmark = pytest.mark.django_db

DEEP = "[" * 2000 + "]" * 2000  # past the decoder's recursion: was a 500
OVER = '{"a":' * (MAX_JSON_DEPTH + 1) + "1" + "}" * (MAX_JSON_DEPTH + 1)
NUL_JSON = '{"title": "a\\u0000b"}'
NUL_KEY_JSON = '{"ti\\u0000tle": "a"}'


def messages_of(response) -> str:
    return response.content.decode()


def assert_refused(response, *needles):
    """The form again with its error; or, for a NUL typed in (which no browser sends), the page
    again with an error message naming the field."""
    if response.status_code == 302:
        assert response["Location"] == response.wsgi_request.get_full_path()
        response = response.client.get(response["Location"])
    assert response.status_code == 200, response.status_code
    page = messages_of(response)
    assert "errorlist" in page or "errornote" in page or 'class="error"' in page
    assert any(needle.lower() in page.lower() for needle in needles), page[:3000]


# Entity types and entities ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value", "needles"),
    [
        ("name", "type\x00name", ["NUL character"]),
        ("description", "d\x00", ["NUL character"]),
        ("schema", DEEP, ["nest", "the limit is 64"]),
        ("schema", OVER, ["the limit is 64"]),
        ("schema", '{"type": "object", "title": "a\\u0000"}', ["NUL character"]),
    ],
)
def test_an_entity_type_form_refuses_nul_and_deep_json(staff, field, value, needles):
    form = {"name": "t", "description": "", "schema": "{}", field: value}
    assert_refused(staff.post("/admin/entities/entitytype/add/", form), *needles)
    assert not EntityType.objects.exists()


@pytest.mark.parametrize(
    ("data", "needles"),
    [
        (DEEP, ["the limit is 64"]),
        (OVER, ["the limit is 64"]),
        (NUL_JSON, ["NUL character"]),
        (NUL_KEY_JSON, ["NUL character"]),
    ],
)
def test_an_entity_form_refuses_nul_and_deep_json(staff, product_type, data, needles):
    [entity_id] = make_entities(product_type, 1)
    entity = Entity.objects.get(pk=entity_id)
    response = staff.post(
        f"/admin/entities/entity/{entity_id}/change/",
        {"data": data, "status": entity.status, "published_at_0": "", "published_at_1": ""},
    )
    assert_refused(response, *needles)
    entity.refresh_from_db()
    assert entity.version == 1
    added = staff.post(
        "/admin/entities/entity/add/",
        {"entity_type": product_type.pk, "data": data, "status": "draft"},
    )
    assert_refused(added, *needles)
    assert Entity.objects.count() == 1


def test_an_entity_form_naming_a_type_with_nul_is_a_form_error(staff, product_type):
    response = staff.post(
        "/admin/entities/entity/add/",
        {"entity_type": "ety_\x00", "data": "{}", "status": "draft"},
    )
    assert_refused(response, "NUL character")
    assert not Entity.objects.exists()


# Workflows: name, triggers, step configs -------------------------------------------------


def workflow_form(product_type, **extra):
    form = {
        "name": "From the admin",
        "description": "",
        "entity_type": product_type.id,
        "status": "active",
        "triggers": "[]",
        "steps-TOTAL_FORMS": "1",
        "steps-INITIAL_FORMS": "0",
        "steps-MIN_NUM_FORMS": "0",
        "steps-MAX_NUM_FORMS": "1000",
        "steps-0-position": "1",
        "steps-0-step_id": "",
        "steps-0-type": "publish",
        "steps-0-config": "{}",
        "versions-TOTAL_FORMS": "0",
        "versions-INITIAL_FORMS": "0",
    }
    return {**form, **extra}


@pytest.mark.parametrize(
    ("extra", "needles"),
    [
        ({"name": "w\x00"}, ["NUL character"]),
        ({"triggers": DEEP}, ["the limit is 64"]),
        ({"triggers": "[" + OVER + "]"}, ["the limit is 64"]),
        (
            {"triggers": json.dumps([{"on": "entity.updated", "fields": ["ti\x00tle"]}])},
            ["NUL character"],
        ),
        ({"triggers": '[{"on": "entity.created\\u0000"}]'}, ["NUL character"]),
        ({"steps-0-config": DEEP}, ["the limit is 64"]),
        ({"steps-0-config": '{"x": "\\u0000"}'}, ["NUL character"]),
        ({"steps-0-step_id": "a\x00"}, ["NUL character"]),
        ({"steps-0-type": "publish\x00"}, ["NUL character"]),
    ],
)
def test_a_workflow_form_refuses_nul_and_deep_json(staff, product_type, extra, needles):
    response = staff.post("/admin/workflows/workflow/add/", workflow_form(product_type, **extra))
    assert_refused(response, *needles)
    assert not Workflow.objects.exists()


def test_a_workflow_change_form_refuses_deep_triggers_and_keeps_the_old(staff, product_type):
    workflow = make_workflow(product_type, [{"type": "publish", "config": {}}])
    step = workflow.steps.get()
    form = workflow_form(
        product_type,
        triggers=DEEP,
        **{
            "steps-INITIAL_FORMS": "1",
            "steps-0-id": step.pk,
            "steps-0-workflow": workflow.pk,
            "steps-0-step_id": step.step_id,
        },
    )
    form.pop("entity_type")
    response = staff.post(f"/admin/workflows/workflow/{workflow.pk}/change/", form)
    assert_refused(response, "the limit is 64")
    workflow.refresh_from_db()
    assert workflow.triggers == [] and workflow.version == 1


# Reviews: one decision, and many ----------------------------------------------------------


def decide(staff, review, **form):
    return staff.post(
        "/admin/jobs/review/decide/",
        {"review": review.pk, "decision": "approve", "back": "/admin/jobs/review/", **form},
        follow=True,
    )


@pytest.mark.parametrize(
    "form",
    [
        {"kind-0": "text", "value-0": "slug\x00"},
        {"kind-1": "json", "value-1": DEEP},
        {"kind-1": "json", "value-1": OVER},
        {"kind-1": "json", "value-1": '"\\u0000"'},
        {"kind-1": "json", "value-1": '{"k\\u0000": 1}'},
        {"comment": "fine\x00"},
        {"decision": "approve\x00"},
    ],
)
def test_a_review_decision_refuses_nul_and_deep_json(staff, product_type, form):
    run, _ = parked(product_type, n=1)
    review = Review.objects.get(run=run)
    proposed = (review.changes, review.removed)
    response = decide(staff, review, **form)
    assert response.status_code == 200
    page = messages_of(response)
    assert 'class="error"' in page, page[:3000]
    review.refresh_from_db()
    assert review.status == ReviewStatus.PENDING and (review.changes, review.removed) == proposed


def test_a_review_named_with_nul_is_an_error_message(staff, product_type):
    response = staff.post(
        "/admin/jobs/review/decide/",
        {"review": "rev_\x00", "decision": "approve"},
        follow=True,
    )
    assert response.status_code == 200 and 'class="error"' in messages_of(response)


@pytest.mark.parametrize(
    "form",
    [
        {"ids": ["rev_\x00"], "decision": "approve"},
        {"decision": "reject", "comment": "no\x00"},
    ],
)
def test_bulk_decisions_refuse_nul(staff, product_type, form):
    run, _ = parked(product_type, n=2)
    ids = list(Review.objects.filter(run=run).values_list("pk", flat=True))
    form = {"ids": ids, **form} if "ids" not in form else {**form, "ids": [*ids, *form["ids"]]}
    response = staff.post("/admin/jobs/review/decide-many/", form, follow=True)
    assert response.status_code == 200
    assert 'class="error"' in messages_of(response)
    assert set(Review.objects.filter(run=run).values_list("status", flat=True)) == {
        ReviewStatus.PENDING
    }


# Running and testing a workflow, the entity action, API keys -------------------------------


def test_a_run_or_test_of_entities_named_with_nul_is_an_error_message(staff, product_type):
    workflow = make_workflow(product_type, [{"type": "publish", "config": {}}])
    ids = make_entities(product_type, 2)
    run = staff.post(
        f"/admin/workflows/workflow/{workflow.pk}/run/",
        {"entity_ids": [ids[0], "ent_\x00"]},
        follow=True,
    )
    assert run.status_code == 200 and 'class="error"' in messages_of(run)
    assert not Run.objects.exists()
    test = staff.post(
        f"/admin/workflows/workflow/{workflow.pk}/test/", {"entity_id": "ent_\x00"}, follow=True
    )
    assert test.status_code == 200 and 'class="error"' in messages_of(test)


@pytest.mark.parametrize(
    "form",
    [
        {"_selected_action": ["ent_\x00"]},
        {"workflow": "wf_\x00"},
    ],
)
def test_the_entity_run_action_refuses_nul(staff, product_type, form):
    make_workflow(product_type, [{"type": "publish", "config": {}}])
    ids = make_entities(product_type, 2)
    base = {"action": "run_workflow", "index": "0", "_selected_action": ids}
    if "_selected_action" in form:
        base["_selected_action"] = [*ids, *form.pop("_selected_action")]
    response = staff.post("/admin/entities/entity/", {**base, **form}, follow=True)
    assert response.status_code == 200
    assert 'class="error"' in messages_of(response) or "errornote" in messages_of(response)
    assert not Run.objects.exists()


def test_an_api_key_named_with_nul_is_a_form_error(staff, django_user_model):
    user = django_user_model.objects.get(username="staff")
    response = staff.post("/admin/api/apikey/add/", {"user": user.pk, "name": "ci\x00"})
    assert_refused(response, "name: Contains a NUL character")
    assert not ApiKey.objects.exists()
