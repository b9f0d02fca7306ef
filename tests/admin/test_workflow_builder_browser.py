"""The issue's proof in Chromium, from the admin index: staff build a four-step workflow
(transform, ai_generate answering JSON, review, publish) and a trigger without typing JSON,
and see a bad value refused on the page with the API's message."""

import pytest
from django.contrib.admin.utils import quote

from tests.admin.browsing import require_chromium, shot, staff_page
from tests.factories import make_workflow
from workflows.models import Workflow
from workflows.steps import registry

require_chromium()
pytestmark = pytest.mark.django_db(transaction=True)
TYPES = ["transform", "ai_generate", "review", "publish"]


def test_staff_build_a_four_step_workflow_and_a_trigger_without_typing_json(
    browser, live_server, django_user_model, product_type
):
    watched = staff_page(browser, live_server, django_user_model, width=1280)
    page = watched.page
    page.locator("#content-main a.addlink[href='/admin/workflows/workflow/add/']").click()
    page.fill("#id_name", "Describe and publish")
    page.select_option("#id_entity_type", product_type.pk)
    for index, type_name in enumerate(TYPES):
        if index:
            page.click("#steps-group .add-row a")
        page.select_option(f"#id_steps-{index}-type", type_name)  # its example fills in
    page.locator(".field-triggers").get_by_text("Add item").click()
    page.locator(".field-triggers select").first.select_option("entity.created")
    page.click("input[name=_continue]")
    page.wait_for_selector("#steps-1 [data-django-jsonform-container]")
    workflow = Workflow.objects.get()
    assert [step.type for step in workflow.steps.order_by("position")] == TYPES
    assert workflow.triggers == [{"on": "entity.created"}]

    # The ai_generate step, in its form: answer JSON, and a bad temperature is refused.
    ai_step = page.locator("#steps-1")
    ai_step.locator("select").nth(2).select_option("json")  # type, provider, responseFormat
    temperature = ai_step.locator("input[type=number]").nth(1)  # after the position
    temperature.fill("5")
    page.click("input[name=_continue]")
    page.wait_for_load_state("load")
    assert "steps[1].config.temperature" in page.inner_text("#steps-group")
    shot(page, "builder-refused")
    workflow.refresh_from_db()
    assert workflow.steps.get(type="ai_generate").config.get("temperature") == 0.7
    assert not watched.errors


def test_every_step_type_s_editor_renders_from_its_schema(
    browser, live_server, django_user_model, product_type
):
    steps = [{"type": step_type.type, "config": step_type.example} for step_type in registry]
    steps = [step for step in steps if step["type"] != "notify"]  # its example sends nothing
    steps.append({"type": "notify", "config": {"channel": "email", "to": "a@example.com"}})
    workflow = make_workflow(product_type, steps)
    watched = staff_page(browser, live_server, django_user_model, width=1280)
    page = watched.page
    page.goto(f"/admin/workflows/workflow/{quote(workflow.pk)}/change/")
    page.wait_for_selector(f"#steps-{len(steps) - 1} [data-django-jsonform-container] *")
    assert "Error while creating EditorState" not in page.inner_text("#steps-group")
    assert page.locator("#steps-group [data-django-jsonform-container]").count() == len(steps)
    assert not watched.errors
