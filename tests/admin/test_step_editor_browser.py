"""The step editor in Chromium: a saved step is edited with a form made from its type's
schema (selects for enums, a group per list item), positions are managed by ↑/↓, a bad
value is refused in the page with the API's message next to the step; the widest forms fit
the steps inline at 1280 px, stacked under their step's line."""

import pytest
from django.contrib.admin.utils import quote

from tests.admin.browsing import inner_overflows, overflow, require_chromium, shot, staff_page
from tests.factories import make_workflow
from workflows.steps import registry

require_chromium()
pytestmark = pytest.mark.django_db(transaction=True)

STEPS = [
    {
        "id": "tidy",
        "type": "transform",
        "config": {"operations": [{"op": "trim", "field": "title"}]},
    },
    {"id": "pub", "type": "publish", "config": {}},
]


def test_staff_edit_a_step_in_its_form_and_reorder_steps_without_typing_json(
    browser, live_server, django_user_model, product_type
):
    workflow = make_workflow(product_type, STEPS, name="Editor")
    page = staff_page(browser, live_server, django_user_model, width=1400).page
    page.goto(f"/admin/workflows/workflow/{quote(workflow.pk)}/change/")
    editor = page.locator("#steps-0 .rjf-form-wrapper, #steps-0 [data-django-jsonform-container]")
    editor.first.wait_for()
    shot(page, "step-editor")
    # the publish step's status is a select of the schema's enum
    publish = page.locator("#steps-1")
    assert publish.locator("select").count() >= 2  # the type, and the status enum
    # ↓ on the first step makes it the second: positions renumbered by the page
    page.locator("#steps-0 button.step-move", has_text="↓").click()
    assert page.input_value("#id_steps-0-position") == "2"
    assert page.input_value("#id_steps-1-position") == "1"
    page.click("input[name=_continue]")  # sent once the page's check has passed
    page.locator(".messagelist .success").wait_for()
    shot(page, "step-editor-saved")
    workflow.refresh_from_db()
    assert [s.step_id for s in workflow.steps.order_by("position")] == ["pub", "tidy"]
    # the editor kept each value it showed: the trim stays a trim
    assert workflow.steps.get(step_id="tidy").config == STEPS[0]["config"]
    # a bad value is refused with the API's message next to the step, nothing saved
    page.locator("#steps-1 [name='rjf§operations§0§field']").fill("not a path!")
    page.click("input[name=_continue]")
    refused = page.locator("#steps-1 ul.editor-problems")
    refused.wait_for()
    assert "steps[1].config.operations[0].field" in refused.inner_text()
    assert workflow.steps.get(step_id="tidy").config == STEPS[0]["config"]


def test_every_step_types_form_fits_the_steps_inline_at_1280_px(
    browser, live_server, django_user_model, product_type
):
    steps = [{"id": f"s{i}", "type": t.type, "config": t.example} for i, t in enumerate(registry)]
    # A condition ten groups deep: each group is indented inside the one around it.
    deep = {"field": "title", "operator": "exists"}
    for _ in range(5):
        deep = {"all": [{"any": [deep, {"field": "price", "operator": "gte", "value": 0}]}]}
    steps.append({"id": "deep", "type": "condition", "config": {"if": deep, "else": "stop"}})
    workflow = make_workflow(product_type, steps, name="Every type")
    watched = staff_page(browser, live_server, django_user_model, width=1280)
    page = watched.page
    page.goto(f"/admin/workflows/workflow/{quote(workflow.pk)}/change/")
    page.locator(f"#steps-{len(steps) - 1} .rjf-form-wrapper").wait_for()
    inline = page.locator("#steps-group fieldset[aria-labelledby='steps-heading']")
    assert inline.evaluate("box => box.scrollWidth - box.clientWidth") <= 0
    assert inner_overflows(page) == [] and overflow(page) <= 0
    # Each choice among kinds of value is named ("All of", "Comparison"), not "Option 1".
    choices = page.locator("#steps-group select option").all_inner_texts()
    assert "All of" in choices and "Comparison" in choices
    assert not [text for text in choices if text.startswith("Option ")]
    assert not watched.errors
