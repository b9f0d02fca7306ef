"""Staff in a real headless Chromium: an entity's history and a restore, and reverting a
run from its page, each reached by clicking from the admin index."""

import pytest
from django.contrib.admin.utils import quote

from entities.models import Entity, EntityRevision
from entities.services import entity_update
from jobs.models import Run
from tests.admin import test_dashboard_browser as dashboard
from tests.factories import make_entities, make_workflow, start_run
from tests.workers import wait_for_run, wait_until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]
# The dashboard's fixtures: a page logged in as staff (the browser is conftest's).
page, shot = dashboard.page, dashboard.shot


def test_staff_see_an_entitys_history_and_restore_a_version(page, product_type):
    [entity_id] = make_entities(product_type, 1)
    entity_update(entity_id=entity_id, data={"price": 5, "seo": {"title": "Cheap"}})
    entity_update(entity_id=entity_id, data={"title": "Renamed"})
    page.goto("/admin/")
    page.click("a[href='/admin/entities/entity/']")
    page.click(f"text={entity_id}")
    history = page.locator("#entity-history")
    history.wait_for()
    assert history.locator("tr.revision").count() == 3
    newest = history.locator("tr.revision[data-version='3']").inner_text()
    assert "data.title" in newest and "Renamed" in newest and "api" in newest
    shot(page, "entity-history")
    page.click("#restore-1")
    page.wait_for_selector("text=Version 1 restored as version 4.")
    entity = Entity.objects.get(pk=entity_id)
    assert entity.data == {"title": "Item 0", "price": 0}
    restore = EntityRevision.objects.get(entity_id=entity_id, version=4)
    assert restore.source == "restore" and restore.user_id


def test_staff_revert_a_run_after_seeing_how_many_entities_changed_since(
    page, product_type, celery_worker
):
    ids = make_entities(product_type, 5)
    workflow = make_workflow(
        product_type,
        [
            {
                "id": "sum",
                "type": "transform",
                "config": {"operations": [{"op": "set", "field": "summary", "value": "s"}]},
            }
        ],
    )
    run = wait_for_run(start_run(workflow, ids).pk)
    entity_update(entity_id=ids[0], data={"summary": "edited since"})
    page.goto("/admin/")
    page.click("text=Runs and their progress")
    page.click(f"a:has-text('{run.pk}')")
    page.click("#revert-run")
    assert page.locator("#revert-changed").inner_text() == "5"
    assert page.locator("#revert-changed-since").inner_text() == "1"
    shot(page, "run-revert-confirmation")
    page.click("#confirm-revert")
    revert = wait_until(
        lambda: Run.objects.filter(trigger__runId=run.pk).first(), "the revert run", timeout=30
    )
    # The revert's own page (its message may be gone already: the page reloads itself once
    # the run has ended, which a small revert can do at once).
    page.wait_for_url(f"**/{quote(revert.pk)}/change/**")
    assert wait_for_run(revert.pk).status == "completed"
    summaries = dict(Entity.objects.filter(pk__in=ids).values_list("pk", "data__summary"))
    assert summaries == {**dict.fromkeys(ids, None), ids[0]: "edited since"}
