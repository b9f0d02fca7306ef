"""In Chromium, from the admin index: staff find entities by search and run a workflow on
the matches."""

import pytest

from entities.models import Entity
from jobs.models import Run
from tests.admin.browsing import require_chromium, shot, staff_page
from tests.factories import make_entities, make_workflow

require_chromium()
pytestmark = pytest.mark.django_db(transaction=True)


def test_staff_run_a_workflow_on_entities_found_by_search(
    browser, live_server, django_user_model, product_type
):
    ids = make_entities(product_type, 120)
    for index, pk in enumerate(ids[:4]):
        Entity.objects.filter(pk=pk).update(data={"title": f"Oak shelf {index}", "price": 3})
    make_workflow(product_type, [{"type": "publish", "config": {}}], name="Shelves")
    watched = staff_page(browser, live_server, django_user_model, width=1280)
    page = watched.page
    page.click("#workflows-workflow a")  # the index's Workflows row
    page.click("text=Shelves")
    page.click("#run-on-entities")
    assert "<strong>120</strong>" in page.inner_html("#entity-search-count")
    page.fill("#entity-search-q", "oak shelf")
    page.click("#entity-search input[type=submit]")
    page.wait_for_selector("#run-matches")
    assert page.inner_text("#entity-search-count").startswith("4 matches")
    assert page.locator("input[name=entity_ids]").count() == 4
    shot(page, "run-entity-search")
    page.click("#run-matches")
    page.wait_for_url("**/admin/jobs/run/**/change/")
    assert Run.objects.get().total == 4
    assert not watched.errors
