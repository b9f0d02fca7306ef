"""In Chromium, from the admin index: staff find entities by search and run a workflow on
the matches, or on entities ticked across several searches."""

import pytest

from entities.models import Entity
from jobs.models import Run
from tests.admin.browsing import require_chromium, shot, staff_page
from tests.factories import make_entities, make_workflow

require_chromium()
pytestmark = pytest.mark.django_db(transaction=True)


def _titled(ids: list[str], title: str) -> None:
    for index, pk in enumerate(ids):
        Entity.objects.filter(pk=pk).update(data={"title": f"{title} {index}", "price": 3})


def _run_form(browser, live_server, django_user_model, product_type, name: str):
    """Staff open the run form of a publishing workflow `name`, from the admin index."""
    make_workflow(product_type, [{"type": "publish", "config": {}}], name=name)
    watched = staff_page(browser, live_server, django_user_model, width=1280)
    page = watched.page
    page.click("#workflows-workflow a")  # the index's Workflows row
    page.click(f"text={name}")
    page.click("#run-on-entities")
    return watched, page


def test_staff_run_a_workflow_on_entities_found_by_search(
    browser, live_server, django_user_model, product_type
):
    ids = make_entities(product_type, 120)
    _titled(ids[:4], "Oak shelf")
    watched, page = _run_form(browser, live_server, django_user_model, product_type, "Shelves")
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


def test_entities_ticked_stay_ticked_when_staff_search_again(
    browser, live_server, django_user_model, product_type
):
    ids = make_entities(product_type, 30)
    _titled(ids[:3], "Oak shelf")
    _titled(ids[3:5], "Pine bed")
    watched, page = _run_form(browser, live_server, django_user_model, product_type, "Furniture")
    page.fill("#entity-search-q", "oak")
    page.locator("#entity-search-count", has_text="3 matches").wait_for()
    page.check(f"#pick-{ids[0]}")
    page.check(f"#pick-{ids[2]}")
    page.fill("#entity-search-q", "pine")
    page.locator("#entity-search-count", has_text="2 matches").wait_for()
    apart = page.locator("#entity-ticked-elsewhere")
    assert apart.is_visible() and apart.locator("input:checked").count() == 2
    page.check(f"#pick-{ids[4]}")
    # Back to the oak shelves: the two ticked there are ticked again, the pine bed apart.
    page.fill("#entity-search-q", "oak")
    page.locator("#entity-search-count", has_text="3 matches").wait_for()
    assert page.is_checked(f"#pick-{ids[0]}") and page.is_checked(f"#pick-{ids[2]}")
    assert not page.is_checked(f"#pick-{ids[1]}")
    assert apart.locator("input:checked").count() == 1
    page.uncheck(f"#pick-{ids[2]}")  # changed their mind about one
    shot(page, "run-ticked-across-searches")
    page.click("#run-selected")
    page.wait_for_url("**/admin/jobs/run/**/change/")
    run = Run.objects.get()
    assert set(run.items.values_list("entity_id", flat=True)) == {ids[0], ids[4]}
    assert not watched.errors
