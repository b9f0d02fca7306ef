"""The run and test forms pick entities by search (text in their data, a status) with a count
of the matches, never by listing every entity of the type."""

import pytest
from django.contrib.admin.utils import quote

from entities.models import Entity
from entities.services import entities_bulk_create
from jobs.models import Run
from tests.factories import make_entities, make_workflow

pytestmark = pytest.mark.django_db
PUBLISH = [{"type": "publish", "config": {}}]


def _desks(product_type):
    ids = make_entities(product_type, 80)
    for index, pk in enumerate(ids[:3]):
        Entity.objects.filter(pk=pk).update(data={"title": f"Walnut desk {index}", "price": 1})
    return ids


def test_the_run_form_lists_the_matches_of_a_search_with_their_count(staff, product_type):
    ids = _desks(product_type)
    workflow = make_workflow(product_type, PUBLISH)
    url = f"/admin/workflows/workflow/{quote(workflow.pk)}/run/"
    everything = staff.get(url).content.decode()
    assert "<strong>80</strong> matches (the newest 50 shown)" in everything
    assert everything.count('name="entity_ids"') == 50  # not one per entity of the type
    found = staff.get(url, {"q": "walnut"}).content.decode()
    assert "<strong>3</strong> matches" in found and found.count('name="entity_ids"') == 3
    assert ids[0] in found and ids[10] not in found
    assert 'value="Run on all 3 matches"' in found


def test_a_run_on_all_matches_takes_exactly_the_matches(staff, product_type):
    ids = _desks(product_type)
    workflow = make_workflow(product_type, PUBLISH)
    response = staff.post(
        f"/admin/workflows/workflow/{quote(workflow.pk)}/run/",
        {"q": "Walnut", "status": "", "matches": "Run on all 3 matches"},
    )
    assert response.status_code == 302
    run = Run.objects.get()
    assert run.total == 3
    assert set(run.items.values_list("entity_id", flat=True)) == set(ids[:3])


def test_ids_ticked_that_a_search_does_not_show_are_listed_apart_each_once(staff, product_type):
    ids = _desks(product_type)
    workflow = make_workflow(product_type, PUBLISH)
    url = f"/admin/workflows/workflow/{quote(workflow.pk)}/run/"
    ticked = [ids[0], ids[40], ids[40], "not-an-entity"]
    page = staff.get(url, {"q": "walnut", "entity_ids": ticked}).content.decode()
    matches, apart = page.split('id="entity-ticked-elsewhere"')
    assert f'value="{ids[0]}" id="pick-{ids[0]}" checked' in matches
    apart = apart.split("</div>")[0]
    assert apart.count('name="entity_ids"') == 2  # each once; a run names unknown ids in 404
    assert f'value="{ids[40]}" checked' in apart and 'value="not-an-entity" checked' in apart
    # none ticked: the list is there for the live search, hidden
    plain = staff.get(url, {"q": "walnut"}).content.decode()
    assert 'id="entity-ticked-elsewhere" hidden' in plain


@pytest.mark.parametrize("query", ["x" * 5000, "%", "' OR 1=1 --", "{'a': 1}", "\x00"])
def test_careless_searches_are_answered_not_crashed(staff, product_type, query):
    _desks(product_type)
    workflow = make_workflow(product_type, PUBLISH)
    for page in ("run", "test"):
        response = staff.get(
            f"/admin/workflows/workflow/{quote(workflow.pk)}/{page}/",
            {"q": query, "status": "nonsense"},
        )
        # a NUL in a URL is refused before any view (config.api.middleware), as everywhere
        assert response.status_code == (400 if "\x00" in query else 200)


def test_the_test_form_offers_the_matches_of_its_search(staff, product_type):
    ids = _desks(product_type)
    workflow = make_workflow(product_type, PUBLISH)
    html = staff.get(
        f"/admin/workflows/workflow/{quote(workflow.pk)}/test/", {"q": "walnut desk 1"}
    ).content.decode()
    assert html.count('<option value="ent_') == 1 and ids[1] in html


def test_text_the_stored_json_escapes_is_found_as_typed(staff, product_type):
    """PostgreSQL reads the data as jsonb's text, where a `"` in a value is `\\"` and a `\\`
    is `\\\\`: a search for `12" screen` found nothing. Letters not in ASCII are as typed."""
    ids = entities_bulk_create(
        entity_type=product_type,
        items=[
            {"data": {"title": 'Monitor 12" screen', "price": 1}},
            {"data": {"title": "C:\\drivers", "price": 2}},
            {"data": {"title": "Crème brûlée\nline two", "price": 3}},
            {"data": {"title": "50% off_now", "price": 4}},
        ],
    )
    expected = {
        '12" screen': [ids[0]],
        "C:\\drivers": [ids[1]],
        "crème BRÛLÉE": [ids[2]],
        "brûlée\nline": [ids[2]],
        "50% off_": [ids[3]],
        "%": [ids[3]],
    }
    for text, found in expected.items():
        assert list(Entity.objects.filter(data__icontains=text).values_list("pk", flat=True)) == (
            found
        ), text
        page = staff.get("/admin/entities/entity/", {"q": text}).content.decode()
        assert {pk for pk in ids if pk in page} == set(found), text
    # The JSON's own syntax is not searched (the admin's search reads `"title"` as a phrase,
    # the word title, which every key matches).
    assert not Entity.objects.filter(data__icontains='"title": "Monitor').exists()
