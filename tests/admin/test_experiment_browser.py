"""Experiments in Chromium, from the admin index as staff click: the experiment's page (arms,
scores, both sides of each entity with the differences marked), its regressions filter, the
blind human comparison queue, "Publish candidate", and the workflow page it leads to, whose
versions list shows each version's diff and rolls back with a button; an experiment whose
candidate waits for a provider batch says how many entities wait, and shows the batches."""

import math

import pytest
from celery import Celery
from playwright.sync_api import expect

from jobs.experiments import services
from jobs.experiments.models import ExperimentResult
from jobs.experiments.selectors import sides_to_resume
from jobs.waits.ai_batch.services import ai_batches_poll
from tests.admin.browsing import require_chromium, shot, staff_page
from tests.factories import make_entities, make_workflow
from workflows.models import Workflow
from workflows.services import workflow_update

require_chromium()
pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def experiment(finished_experiment):
    return finished_experiment(3)


def test_staff_read_an_experiment_compare_blind_and_publish_the_candidate(
    browser, live_server, django_user_model, experiment
):
    watched = staff_page(browser, live_server, django_user_model, width=1280)
    page = watched.page
    page.locator("#content-main a[href='/admin/jobs/experiment/']").first.click()
    page.locator("#result_list a", has_text=experiment.pk).click()
    page.locator("#experiment-summary").wait_for()
    assert "3 of 3 entities" in page.inner_text("#experiment-summary")
    # Both sides of each entity, the differing values marked.
    sides = page.locator("#experiment-results")
    assert sides.locator("td.differ", has_text="A much longer and more detailed").count() == 3
    assert sides.locator("td.differ", has_text="Short one.").count() == 3
    # Each entity named by its readable label (its title here), next to its id.
    assert sides.locator("th", has_text="Item 0").count() == 1
    shot(page, "experiment")
    # The candidate's longer text breaks the `short` rule the baseline passes: regressions.
    page.click("#show-regressed")
    page.wait_for_url("**show=regressed**")
    assert page.locator("#experiment-results tr.regressed").count() == 3

    # The human queue: blind (no version named), each pick mapped back to its version.
    page.locator("#experiment-scores a", has_text="Compare").click()
    for left in (3, 2, 1):
        page.locator("#comparison").wait_for()
        assert f"{left} comparison" in page.inner_text("#content-main")
        assert "baseline" not in page.inner_text("#comparison").lower()
        assert "Entity Item " in page.inner_text("#content-main")
        a, b = (
            page.locator("#comparison tr", has_text="description").locator("td").nth(i)
            for i in (1, 2)
        )
        longer = "#pick-a" if len(a.inner_text()) > len(b.inner_text()) else "#pick-b"
        page.fill("#id_comment", "reads better")
        page.click(longer)
        page.wait_for_load_state("load")
    page.locator("#queue-done").wait_for()
    shot(page, "experiment-compare-done")
    for result in ExperimentResult.objects.filter(experiment=experiment):
        human = next(v for v in result.verdicts if v["name"] == "people")
        assert human["winner"] == "candidate"

    # Back to the experiment by its breadcrumb, then Publish candidate.
    page.locator(".breadcrumbs a", has_text=experiment.pk).click()
    page.click("#publish-candidate input[type=submit]")
    page.wait_for_url("**/admin/workflows/workflow/**/change/")
    assert "Version 2 is live" in page.inner_text(".messagelist")
    assert Workflow.objects.get(pk=experiment.workflow_id).version == 2
    # The workflow page's versions: each with its diff, version 2 live, 1 a roll-back button.
    versions = page.locator("#versions-group")
    assert versions.locator("ins.diff-after", has_text="LONG").count() == 1
    assert versions.locator("del.diff-before", has_text="Short").count() == 1
    shot(page, "workflow-versions-after-publish")
    page.locator("button[formaction$='/versions/1/publish/']", has_text="Roll back to this").click()
    page.locator(".messagelist", has_text="Version 1 is live").wait_for()
    assert Workflow.objects.get(pk=experiment.workflow_id).version == 1
    assert not watched.errors


def _describe(mode: str) -> list[dict]:
    config = {
        "prompt": "Describe {{ entity.title }}",
        "outputField": "description",
        "provider": "openai",
        "mode": mode,
    }
    return [{"id": "gen", "type": "ai_generate", "config": config}]


def test_staff_see_the_entities_waiting_for_a_provider_batch_and_its_batches(
    browser, live_server, django_user_model, product_type, openai_server, settings, monkeypatch
):
    settings.EXPERIMENT_CHUNK_SIZE = 10
    # Its chunks, batches and resumes run here, step by step: no task leaves for a worker
    # (one the suite started would take them, against a fake server of its own).
    monkeypatch.setattr(Celery, "send_task", lambda *args, **kwargs: None)
    workflow = make_workflow(product_type, _describe("sync"), name="Batched")
    workflow = workflow_update(workflow_id=workflow.pk, steps=_describe("batch"), draft=True)
    versions = {version.number: version for version in workflow.versions.all()}
    experiment = services.experiment_start(
        workflow=workflow,
        baseline=versions[1],
        candidate=versions[2],
        scorers=[],
        entity_ids=make_entities(product_type, 12),
    )
    for chunk in range(math.ceil(experiment.total / experiment.chunk_size)):
        services.experiment_chunk_execute(experiment_id=experiment.pk, chunk=chunk)
    ai_batches_poll()  # submitted; the provider has not answered yet

    watched = staff_page(browser, live_server, django_user_model, width=1280)
    page = watched.page
    page.locator("#content-main a[href='/admin/jobs/experiment/']").first.click()
    page.locator("#result_list a", has_text=experiment.pk).click()
    summary = page.locator("#experiment-summary")
    assert "0 of 12 entities, 12 waiting for a provider batch" in summary.inner_text()
    page.locator("#experiment-progress .label", has_text="0 / 12 (12 waiting)").wait_for()
    page.click("#experiment-waiting")
    batches = page.locator("#experiment-batches")
    assert batches.is_visible()
    rows = batches.locator("tbody tr")
    assert rows.count() == 2  # one per chunk
    assert rows.filter(has_text="in_progress").count() == 2
    shot(page, "experiment-waiting-for-batches")

    ai_batches_poll()  # the answers collected
    for key in sides_to_resume(experiment.pk):
        services.experiment_sides_resume(experiment_id=experiment.pk, key=key)
    # The page reloads itself once its progress reads the experiment ended (a reload of the
    # test's own raced that one: ERR_ABORTED): wait for what the reloaded page shows.
    expect(summary).to_contain_text("12 of 12 entities.", timeout=30_000)
    assert not page.locator("#experiment-waiting").count()
    assert rows.filter(has_text="ended").count() == 2
    # Each batch's end in the experiment's log, which links the API's.
    log = page.locator("#log")
    assert log.locator("tbody tr", has_text="ended: ").count() == 2
    assert log.locator("#logs-api").get_attribute("href").endswith("/logs")
    assert not watched.errors
