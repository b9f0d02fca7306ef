"""Entities and entity types edited in the admin get the API's checks, and an edit is a write
like any other: it bumps the version, so a run that read the entity before does not write
over it."""

import json

import pytest
from django.db import transaction

from entities.commits import WorkingCopy, entities_commit
from entities.models import Entity, EntityType
from entities.services import entity_update
from tests.factories import make_entities, make_workflow

pytestmark = pytest.mark.django_db


def _change(staff, entity: Entity, data):
    """Post the change form of `entity` as it was opened (its version then) with `data`."""
    return staff.post(
        f"/admin/entities/entity/{entity.pk}/change/",
        {
            "entity_type": entity.entity_type_id,
            "data": data if isinstance(data, str) else json.dumps(data),
            "status": entity.status,
            "published_at_0": "",
            "published_at_1": "",
            "opened_version": entity.version,
        },
    )


def test_an_admin_edit_made_while_a_run_works_is_not_lost(staff, product_type):
    [entity_id] = make_entities(product_type, 1)
    entity = Entity.objects.get(pk=entity_id)
    read = WorkingCopy(  # what a run read before the edit, and what it made of it
        entity_id, entity.data, {**entity.data, "seo": {"title": "x"}}, entity.version
    )
    response = _change(staff, entity, {**entity.data, "price": 42})
    assert response.status_code == 302
    entity.refresh_from_db()
    assert (entity.data["price"], entity.version) == (42, 2)
    with transaction.atomic():
        assert entities_commit(copies=[read]) == {entity_id: 3}
    entity.refresh_from_db()
    assert entity.data["price"] == 42 and entity.data["seo"] == {"title": "x"}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"price": 1}, "is a required property"),
        ({"title": "a", "price": -1}, "data.price"),
        ('{"title": "a\\u0000"}', "NUL character"),
    ],
)
def test_entity_data_breaking_the_rules_is_a_form_error(staff, product_type, data, message):
    [entity_id] = make_entities(product_type, 1)
    entity = Entity.objects.get(pk=entity_id)
    before = entity.data
    response = _change(staff, entity, data)
    assert response.status_code == 200  # the form again, with the error
    assert message in response.content.decode()
    entity.refresh_from_db()
    assert (entity.data, entity.version) == (before, 1)


def test_an_entity_type_schema_that_is_not_json_schema_is_a_form_error(staff):
    response = staff.post(
        "/admin/entities/entitytype/add/",
        {"name": "t", "description": "", "schema": json.dumps({"type": "no-such-type"})},
    )
    assert response.status_code == 200
    assert "schema.type: &#x27;no-such-type&#x27; is not valid" in response.content.decode()
    assert not EntityType.objects.exists()


def test_admin_refuses_to_delete_a_used_entity_type_saying_why(staff, product_type):
    workflow = make_workflow(product_type, [{"type": "publish", "config": {}}], name="Kept")
    url = f"/admin/entities/entitytype/{product_type.pk}/delete/"
    page = staff.get(url)
    assert page.status_code == 200
    assert f"Kept ({workflow.pk})" in page.content.decode()
    staff.post(url, {"post": "yes"})
    assert EntityType.objects.filter(pk=product_type.pk).exists()


def test_an_entity_type_a_workflow_came_to_use_as_it_was_deleted_is_kept_saying_so(
    staff, product_type, monkeypatch
):
    """A workflow made between the delete page's check and the delete (a 500 before)."""
    from entities.admin import EntityTypeAdmin

    checked = EntityTypeAdmin.get_deleted_objects

    def check_then_a_workflow_is_made(self, objs, request):
        answer = checked(self, objs, request)
        make_workflow(product_type, [{"type": "publish", "config": {}}], name="Late")
        return answer

    monkeypatch.setattr(EntityTypeAdmin, "get_deleted_objects", check_then_a_workflow_is_made)
    url = f"/admin/entities/entitytype/{product_type.pk}/delete/"
    response = staff.post(url, {"post": "yes"}, follow=True)
    assert response.status_code == 200
    assert "Nothing was deleted: something came to use the entity type" in (
        response.content.decode()
    )
    assert EntityType.objects.filter(pk=product_type.pk).exists()


def test_the_change_form_carries_the_version_it_shows(staff, product_type):
    [entity_id] = make_entities(product_type, 1)
    entity_update(entity_id=entity_id, data={"price": 7})  # version 2
    page = staff.get(f"/admin/entities/entity/{entity_id}/change/").content.decode()
    assert '<input type="hidden" name="opened_version" value="2"' in page


def test_a_save_after_the_entity_changed_since_the_form_opened_is_refused(staff, product_type):
    """The form posts `data` whole: saved, it would undo what was written meanwhile."""
    [entity_id] = make_entities(product_type, 1)
    opened = Entity.objects.get(pk=entity_id)
    entity_update(entity_id=entity_id, data={"price": 42})  # a run or an API client, meanwhile
    response = _change(staff, opened, {**opened.data, "title": "Fixed title"})
    assert response.status_code == 200
    assert "The entity changed since this form was opened (it was version 1)" in (
        response.content.decode()
    )
    stored = Entity.objects.get(pk=entity_id)
    assert (stored.data["price"], stored.data["title"], stored.version) == (42, "Item 0", 2)
    reopened = _change(staff, stored, {**stored.data, "title": "Fixed title"})
    assert reopened.status_code == 302  # reloaded and redone, it saves
    assert Entity.objects.get(pk=entity_id).data == {**stored.data, "title": "Fixed title"}


def test_a_change_form_posted_without_its_version_is_refused(staff, product_type):
    [entity_id] = make_entities(product_type, 1)
    entity = Entity.objects.get(pk=entity_id)
    response = staff.post(
        f"/admin/entities/entity/{entity_id}/change/",
        {"data": json.dumps({**entity.data, "title": "x"}), "status": entity.status},
    )
    assert response.status_code == 200
    assert Entity.objects.get(pk=entity_id).version == 1


def test_an_entity_edited_many_times_is_deleted_from_a_page_that_counts_its_history(
    staff, product_type
):
    """Django's page listed each revision of the entity: one line per edit."""
    from entities.models import EntityRevision

    [entity_id] = make_entities(product_type, 1)
    for price in range(1, 61):
        entity_update(entity_id=entity_id, data={"price": price})
    url = f"/admin/entities/entity/{entity_id}/delete/"
    page = staff.get(url).content.decode()
    assert "their history: 61 revisions" in page  # its creation and 60 edits
    assert page.count("Entity revision") == 0
    staff.post(url, {"post": "yes"})
    assert not Entity.objects.filter(pk=entity_id).exists()
    assert not EntityRevision.objects.filter(entity_id=entity_id).exists()


def test_entities_deleted_by_the_list_action_are_named_up_to_twenty_and_counted(
    staff, product_type
):
    from entities.models import EntityRevision

    ids = make_entities(product_type, 25)
    keep = make_entities(product_type, 1)
    body = {"action": "delete_selected", "_selected_action": ids}
    page = staff.post("/admin/entities/entity/", body).content.decode()
    assert "and 5 more" in page and "their history: 25 revisions" in page
    response = staff.post("/admin/entities/entity/", {**body, "post": "yes"})
    assert response.status_code == 302
    assert list(Entity.objects.values_list("pk", flat=True)) == keep
    assert not EntityRevision.objects.filter(entity_id__in=ids).exists()


def _form_as_shown(staff, entity_id: str, data: dict | None = None):
    """Post the change form back as it was shown (its publication time as the form shows
    it), with `data` if given."""
    import re

    page = staff.get(f"/admin/entities/entity/{entity_id}/change/").content.decode()
    entity = Entity.objects.get(pk=entity_id)
    shown = dict(re.findall(r'name="(published_at_[01])" value="([^"]*)"', page))
    return staff.post(
        f"/admin/entities/entity/{entity_id}/change/",
        {
            "data": json.dumps(data or entity.data),
            "status": entity.status,
            **shown,
            "opened_version": entity.version,
        },
    )


def test_saving_a_published_entity_keeps_its_publication_time_and_a_save_of_nothing_writes_nothing(
    staff, product_type
):
    """The form shows the publication time in whole seconds; a run's publish stores
    microseconds. Saved as shown, the time moved back by the fraction (a publishedAt change
    in the revision), and a save of nothing made a version: the entity looked changed since
    the run, whose revert then skipped it."""
    from entities.models import EntityRevision
    from tests.factories import run_inline, start_run

    [entity_id] = make_entities(product_type, 1)
    run = start_run(make_workflow(product_type, [{"type": "publish", "config": {}}]), [entity_id])
    run_inline(run.pk)
    published = Entity.objects.get(pk=entity_id).published_at
    assert published.microsecond  # a run's time, to the microsecond (or this proves little)
    assert _form_as_shown(staff, entity_id).status_code == 302
    stored = Entity.objects.get(pk=entity_id)
    assert (stored.version, stored.published_at) == (2, published)
    response = _form_as_shown(staff, entity_id, {**stored.data, "title": "Renamed"})
    assert response.status_code == 302
    stored = Entity.objects.get(pk=entity_id)
    assert (stored.version, stored.published_at) == (3, published)
    newest = EntityRevision.objects.get(entity_id=entity_id, version=3)
    assert [change["field"] for change in newest.changes] == ["data.title"]
