"""The run and test forms pick entities by search (text in their data, a status) with a count
of the matches, never by listing every entity of the type."""

import pytest
from django.contrib.admin.utils import quote

from entities.models import Entity
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
