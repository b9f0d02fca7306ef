"""Screenshots of the admin's main pages at 1280 px, as staff see them, for docs/admin.md:
`ADMIN_SCREENSHOTS=docs/admin pytest tests/admin/test_admin_screenshots_browser.py` writes
them there (elsewhere they go to test-artifacts/)."""

import os
from pathlib import Path

import pytest
from django.contrib.admin.utils import quote

from jobs.engine.waits import run_waits_resume
from jobs.experiments.services import experiment_start
from jobs.models import Review
from tests.admin.browsing import ARTIFACTS, require_chromium, staff_page
from tests.factories import (
    answer_by_prompt,
    experiment_run_inline,
    make_entities,
    make_versions,
    make_workflow,
    run_inline,
    start_run,
)

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


@pytest.mark.long
def test_screenshots_of_the_main_pages(
    browser, live_server, django_user_model, product_type, openai_server
):
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
    # A step being built on the add page: ai_generate's form, its answer's fields among them.
    page.goto("/admin/workflows/workflow/add/")
    page.fill("#id_name", "Describe")
    page.select_option("#id_entity_type", product_type.pk)
    page.select_option("#id_steps-0-type", "ai_generate")
    page.locator("#steps-0 [name='rjf§responseFormat']").select_option("json")
    page.locator("#steps-0 .rjf-form-group", has_text="Fields of the answer").get_by_text(
        "Add item"
    ).first.click()
    page.locator("#steps-0 [name='rjf§jsonSchema§fields§0§name']").fill("description")
    page.locator("#steps-0 [name='rjf§temperature']").fill("5")
    page.locator("#steps-0 ul.editor-problems").wait_for()
    element_shot(page.locator("#steps-group"), "workflow-add-step")
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

    experiment = _experiment(product_type, openai_server)
    shot(f"/admin/jobs/experiment/{quote(experiment.pk)}/change/", "experiment")
    shot(f"/admin/jobs/experiment/{quote(experiment.pk)}/compare/people/", "experiment-compare")
    page.goto(f"/admin/workflows/workflow/{quote(experiment.workflow_id)}/change/")
    element_shot(page.locator("#versions-group"), "workflow-versions")
    # The form that starts one: a search's matches, a sample of them, the versions, a scorer.
    page.click("#try-version")
    page.fill("#entity-search-q", "Item 3")
    page.locator("#entity-search[data-shown='q=Item+3&status=']").wait_for()
    page.locator(".field-scorers").get_by_text("Add item").click()
    page.locator("[name='rjf§0§type']").select_option("human")
    page.locator("[name='rjf§0§name']").fill("people")
    page.set_viewport_size({"width": 1280, "height": 1500})  # down to the scorers
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=str(OUT / "experiment-start.png"))
    assert (OUT / "experiment-start.png").stat().st_size < 400_000


def element_shot(locator, name: str) -> None:
    locator.screenshot(path=str(OUT / f"{name}.png"))
    assert (OUT / f"{name}.png").stat().st_size < 400_000


def _experiment(product_type, openai_server):
    """An ended experiment of a draft prompt against the live one, with a human scorer."""
    workflow, baseline, candidate = make_versions(product_type, name="Describe products")
    answer_by_prompt(openai_server)
    scorers = [
        {"type": "rules", "name": "short", "rules": [{"field": "description", "maxLength": 20}]},
        {"type": "human", "name": "people"},
    ]
    started = experiment_start(
        workflow=workflow,
        baseline=baseline,
        candidate=candidate,
        scorers=scorers,
        entity_ids=make_entities(product_type, 3),
    )
    return experiment_run_inline(started)
