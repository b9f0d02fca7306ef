"""What the API fixes at creation the admin fixes too: a workflow's and an entity's entity type,
an API key's user (tested with the keys). Editable on the add form, read-only on the change
form, and a forged POST naming another value changes nothing."""

import json

import pytest

from entities.models import Entity
from tests.factories import make_entities, make_entity_type, make_workflow
from workflows.models import Workflow

pytestmark = pytest.mark.django_db
STEPS = [{"id": "pub", "type": "publish", "config": {}}]


def unchanged_form_data(response) -> dict:
    """The admin change form as a browser sends it back unchanged, read from the page's forms."""
    forms = [response.context["adminform"].form]
    for inline in response.context["inline_admin_formsets"]:
        forms += [inline.formset.management_form, *inline.formset.forms]
    data = {}
    for form in forms:
        for name in form.fields:
            value = form[name].value()
            if value is None or value is False:
                continue
            data[form.add_prefix(name)] = "on" if value is True else value
    return data


@pytest.mark.parametrize("url", ["/admin/workflows/workflow/add/", "/admin/entities/entity/add/"])
def test_the_entity_type_is_chosen_on_the_add_form(staff, url):
    assert '<select name="entity_type"' in staff.get(url).content.decode()


def test_a_workflows_entity_type_is_read_only_on_its_change_form(staff, product_type):
    workflow = make_workflow(product_type, STEPS, name="Fixed type")
    other = make_entity_type(name="other-type")
    url = f"/admin/workflows/workflow/{workflow.pk}/change/"
    page = staff.get(url)
    html = page.content.decode()
    assert 'name="entity_type"' not in html
    assert product_type.name in html  # still shown, as text

    data = unchanged_form_data(page)
    forged = {**data, "entity_type": other.pk, "name": "Renamed"}
    response = staff.post(url, forged)
    assert response.status_code == 302
    workflow.refresh_from_db()
    assert (workflow.name, workflow.entity_type_id) == ("Renamed", product_type.pk)
    assert [s.step_id for s in workflow.steps.all()] == ["pub"]  # the rest saved as sent


def test_an_entitys_entity_type_is_read_only_on_its_change_form(staff, product_type):
    loose = make_entity_type(name="loose", schema=None)
    [entity_id] = make_entities(product_type, 1)
    entity = Entity.objects.get(pk=entity_id)
    url = f"/admin/entities/entity/{entity.pk}/change/"
    page = staff.get(url)
    assert 'name="entity_type"' not in page.content.decode()

    data = {**unchanged_form_data(page), "published_at_0": "", "published_at_1": ""}
    for forged_type in (loose.pk, "ety_5Fnot_a_type", ""):
        edit = {**entity.data, "price": 7}
        data["opened_version"] = entity.version  # each post as if the form were opened again
        response = staff.post(url, {**data, "entity_type": forged_type, "data": json.dumps(edit)})
        assert response.status_code == 302, forged_type
        entity.refresh_from_db()
        assert (entity.entity_type_id, entity.data["price"]) == (product_type.pk, 7)


def test_an_entity_edit_is_still_checked_against_its_own_types_schema(staff, product_type):
    [entity_id] = make_entities(product_type, 1)
    url = f"/admin/entities/entity/{entity_id}/change/"
    data = {**unchanged_form_data(staff.get(url)), "published_at_0": "", "published_at_1": ""}
    response = staff.post(url, {**data, "data": json.dumps({"price": 1})})  # no title
    assert response.status_code == 200
    assert "is a required property" in response.content.decode()
    assert Entity.objects.get(pk=entity_id).data["title"] == "Item 0"


def test_a_workflow_made_in_the_admin_keeps_the_type_it_was_given(staff, product_type):
    response = staff.post(
        "/admin/workflows/workflow/add/",
        {
            "name": "New",
            "description": "",
            "entity_type": product_type.pk,
            "status": "active",
            "steps-TOTAL_FORMS": "1",
            "steps-INITIAL_FORMS": "0",
            "steps-0-position": "1",
            "steps-0-type": "publish",
            "steps-0-config": "{}",
            "versions-TOTAL_FORMS": "0",
            "versions-INITIAL_FORMS": "0",
        },
    )
    assert response.status_code == 302
    assert Workflow.objects.get(name="New").entity_type_id == product_type.pk
