"""In Chromium, from the admin index as staff click: a workflow's "Try a new version on a
sample" finds entities by a live search (the count follows the typing, the rest of the form
keeps its values), a scorer is added in its form, a bad sample size is refused with the API's
message, and the experiment then starts and its page follows its progress to the end, run by
the real worker."""

import re

import pytest

from jobs.experiments.models import Experiment, ExperimentStatus
from tests.admin.browsing import overflow, require_chromium, shot, staff_page
from tests.factories import make_entities, make_workflow
from workflows.services import workflow_update

require_chromium()
pytestmark = pytest.mark.django_db(transaction=True)


def _describe(prompt: str) -> list[dict]:
    # The stand-in provider: the worker, in its own process, answers as this one would.
    config = {"prompt": prompt, "outputField": "description", "provider": "local"}
    return [{"id": "gen", "type": "ai_generate", "config": config}]


def test_staff_try_a_draft_on_a_sample_found_by_search_and_watch_it_finish(
    browser, live_server, django_user_model, product_type, celery_worker
):
    workflow = make_workflow(product_type, _describe("Describe {{ entity.title }}"), name="Tables")
    workflow_update(
        workflow_id=workflow.pk, steps=_describe("Sell {{ entity.title }} well"), draft=True
    )
    ids = make_entities(product_type, 40)
    oak = make_entities(product_type, 3, colour="oak")
    watched = staff_page(browser, live_server, django_user_model, width=1280)
    page = watched.page
    page.click("#workflows-workflow a")  # the index's Workflows row
    page.click("text=Tables")
    page.click("#try-version")
    page.locator("#entity-search-count", has_text=re.compile(r"^43 matches")).wait_for()
    assert page.input_value("#id_baseline") == "1" and page.input_value("#id_candidate") == "2"

    # A sample size too large, typed before the search: the live search keeps it.
    page.fill("#id_sample", "20000")
    page.fill("#entity-search-q", "oak")
    page.locator("#entity-search-count", has_text=re.compile(r"^3 matches")).wait_for()
    assert page.locator("input[name=entity_ids]").count() == 3
    assert page.input_value("#id_sample") == "20000"
    assert "/experiment/" in page.url and "q=oak" in page.url  # no page left, the URL kept
    # A human scorer, chosen in the scorers' form (no JSON typed).
    page.locator(".field-scorers").get_by_text("Add item").click()
    page.locator("[name='rjf§0§type']").select_option("human")
    page.locator("[name='rjf§0§name']").fill("people")
    assert overflow(page) <= 0
    shot(page, "experiment-start")

    page.click("#start-experiment")
    refused = page.locator("#experiment-refused")
    refused.wait_for()
    assert refused.inner_text() == "sample: Ensure this value is less than or equal to 10000."
    assert "less than or equal to 10000" in page.inner_text(".field-sample .errorlist")
    assert not Experiment.objects.exists()
    # The form comes back as it was sent: the search, the versions, the scorer.
    assert page.input_value("#entity-search-q") == "oak"
    assert page.locator("input[name=entity_ids]").count() == 3
    assert page.locator("[name='rjf§0§name']").input_value() == "people"

    page.fill("#id_sample", "2")
    page.click("#start-experiment")
    page.wait_for_url("**/admin/jobs/experiment/**/change/")
    # The page follows the worker's progress, then shows the ended experiment (reloaded, so
    # the "Started" message may be gone already when the worker is quick).
    page.locator("[data-run-status]", has_text="completed").wait_for(timeout=60_000)
    page.locator("#experiment-progress .label", has_text="2 / 2").wait_for()
    experiment = Experiment.objects.get()
    assert experiment.status == ExperimentStatus.COMPLETED
    assert set(experiment.entity_ids) <= set(oak) and not set(experiment.entity_ids) & set(ids)
    assert experiment.scorers == [{"type": "human", "name": "people"}]
    assert page.locator("#experiment-results a", has_text=experiment.entity_ids[0]).count() == 1
    assert not watched.errors
