"""Screenshots of the admin's main pages at 1280 px, as staff see them, for docs/admin.md:
`ADMIN_SCREENSHOTS=docs/admin pytest tests/admin/test_admin_screenshots_browser.py` writes
them there (elsewhere they go to test-artifacts/)."""

import os
from pathlib import Path

import pytest
from django.contrib.admin.utils import quote

from jobs.engine.waits import run_waits_resume
from jobs.models import Review
from tests.admin.browsing import ARTIFACTS, require_chromium, staff_page
from tests.factories import make_entities, make_workflow, run_inline, start_run

require_chromium()
pytestmark = pytest.mark.django_db(transaction=True)
OUT = Path(os.environ.get("ADMIN_SCREENSHOTS") or ARTIFACTS / "admin")

STEPS = [
    {
        "id": "tidy",
        "type": "transform",
        "config": {"operations": [{"op": "set", "field": "slug", "value": "{{ entity.title }}"}]},
    },
    {"id": "check", "type": "review", "config": {"instructions": "Is the slug right?"}},
    {"id": "pub", "type": "publish", "config": {}},
]


def test_screenshots_of_the_main_pages(browser, live_server, django_user_model, product_type):
    ids = make_entities(product_type, 40)
    workflow = make_workflow(product_type, STEPS, name="Tidy, review and publish")
    run = start_run(workflow, ids[:3])
    run_inline(run.pk)
    first = Review.objects.filter(run=run).order_by("pk").first()
    page = staff_page(browser, live_server, django_user_model, width=1280).page
    OUT.mkdir(parents=True, exist_ok=True)

    def shot(path: str, name: str) -> None:
        page.goto(path)
        page.wait_for_load_state("load")
        page.screenshot(path=str(OUT / f"{name}.png"))  # the first screen, not the whole page
        assert (OUT / f"{name}.png").stat().st_size < 400_000

    shot("/admin/", "index")
    shot(f"/admin/workflows/workflow/{quote(workflow.pk)}/change/", "workflow-steps")
    shot("/admin/workflows/workflow/step-types/#transform", "step-type-reference")
    shot(f"/admin/workflows/workflow/{quote(workflow.pk)}/run/?q=Item+1", "run-entity-search")
    shot("/admin/jobs/review/", "reviews")
    page.goto("/admin/jobs/review/")
    card = page.locator(f"#review-{first.pk}")
    card.locator("textarea").first.fill("edited-by-hand")
    card.locator("button.approve").click()
    page.wait_for_load_state("load")
    run_waits_resume(run_id=run.pk)
    run_inline(run.pk)
    shot("/admin/jobs/review/?status=approved", "review-audit")
    shot(f"/admin/jobs/run/{quote(run.pk)}/change/", "run")
