"""A version's Publish button on the workflow page, reached from the admin index in Chromium:
it posts the change form to the publish view (a form may not hold another), which makes that
version live; the page's own check of the steps leaves that button alone."""

import pytest
from django.contrib.admin.utils import quote

from tests.admin.browsing import require_chromium, shot, staff_page
from tests.factories import make_workflow
from workflows.models import Workflow
from workflows.services import workflow_update

require_chromium()
pytestmark = pytest.mark.django_db(transaction=True)


def _generate(prompt: str) -> dict:
    return {"id": "gen", "type": "ai_generate", "config": {"prompt": prompt, "outputField": "d"}}


def test_staff_publish_a_draft_then_roll_back_with_the_buttons(
    browser, live_server, django_user_model, product_type
):
    workflow = make_workflow(product_type, [_generate("Old")], name="Versions")
    workflow_update(workflow_id=workflow.pk, steps=[_generate("New")], draft=True, note="Try")
    page = staff_page(browser, live_server, django_user_model, width=1400).page
    # From the index, as staff go: Workflows, then the workflow.
    page.locator("#content-main a[href='/admin/workflows/workflow/']").first.click()
    page.locator("#result_list a", has_text="Versions").click()
    page.wait_for_url(f"**/admin/workflows/workflow/{quote(workflow.pk)}/change/")
    assert page.locator("ins.diff-after", has_text='"New"').count() == 1
    shot(page, "workflow-versions")
    page.locator("button[formaction$='/versions/2/publish/']").click()
    page.wait_for_load_state("load")
    assert "Version 2 is live" in page.content()
    assert Workflow.objects.get(pk=workflow.pk).version == 2
    page.locator("button[formaction$='/versions/1/publish/']", has_text="Roll back to this").click()
    page.wait_for_load_state("load")
    assert Workflow.objects.get(pk=workflow.pk).version == 1


def test_staff_reach_every_version_from_the_workflow_page_and_publish_an_old_one(
    browser, live_server, django_user_model, product_type
):
    """The workflow page shows its newest 50 versions; its link leads to the rest."""
    workflow = make_workflow(product_type, [_generate("v1")], name="Often saved")
    for number in range(2, 54):
        workflow_update(workflow_id=workflow.pk, steps=[_generate(f"v{number}")], draft=True)
    page = staff_page(browser, live_server, django_user_model, width=1400).page
    page.locator("#content-main a[href='/admin/workflows/workflow/']").first.click()
    page.locator("#result_list a", has_text="Often saved").click()
    page.click("#all-versions")
    page.wait_for_url("**/admin/workflows/workflowversion/?workflow=*")
    page.locator(".paginator a", has_text="2").click()
    page.wait_for_load_state("load")
    page.locator("button[formaction$='/versions/2/publish/']").click()
    page.wait_for_load_state("load")
    assert Workflow.objects.get(pk=workflow.pk).version == 2
