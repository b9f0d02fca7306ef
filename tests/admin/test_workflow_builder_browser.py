"""The issue's proof in Chromium, from the admin index: staff build a four-step workflow
(transform, ai_generate answering JSON to a schema made of fields, review, publish) and a
trigger on the add page without typing JSON, a step dragged into place; a bad value is refused
in the page before it is sent, and by the server with the same message; a step edited as JSON
for those who prefer it."""

import json

import pytest
from django.contrib.admin.utils import quote

from tests.admin.browsing import require_chromium, shot, staff_page
from tests.factories import make_workflow
from workflows.models import Workflow
from workflows.steps import registry

require_chromium()
pytestmark = pytest.mark.django_db(transaction=True)
# Added in this order; the review is then dragged above the publish.
ADDED = ["transform", "ai_generate", "publish", "review"]


def field(row, path: str):
    """A field of a step's form by its path in the config (`jsonSchema§fields§0§name`)."""
    return row.locator(f"[name='rjf§{path}']")


def problems(page, row_id: str) -> str:
    return page.locator(f"#{row_id} ul.editor-problems").inner_text()


def triggers_as_json(browser, live_server, django_user_model, product_type):
    """A workflow triggered on `entity.created`, opened from the admin index, its triggers
    switched to JSON editing: (the workflow, the watched page)."""
    steps = [{"id": "pub", "type": "publish", "config": {"status": "published"}}]
    workflow = make_workflow(product_type, steps, triggers=[{"on": "entity.created"}])
    watched = staff_page(browser, live_server, django_user_model, width=1280)
    page = watched.page
    page.locator("#content-main a[href='/admin/workflows/workflow/']").first.click()
    page.locator("#result_list a", has_text=workflow.name).click()
    page.click("button.triggers-view")
    return workflow, watched


def test_staff_build_a_four_step_workflow_and_a_trigger_without_typing_json(
    browser, live_server, django_user_model, product_type
):
    watched = staff_page(browser, live_server, django_user_model, width=1280)
    page = watched.page
    page.locator("#content-main a.addlink[href='/admin/workflows/workflow/add/']").click()
    page.fill("#id_name", "Describe and publish")
    page.select_option("#id_entity_type", product_type.pk)
    for index, type_name in enumerate(ADDED):
        if index:
            page.click("#steps-group .add-row a")
        page.select_option(f"#id_steps-{index}-type", type_name)  # its form, with its example
        field(page.locator(f"#steps-{index}"), next(iter(registry.get(type_name).example)))
    # ai_generate answers JSON, to a schema of one required field, chosen in its form.
    generate = page.locator("#steps-1")
    field(generate, "responseFormat").select_option("json")
    generate.locator(".rjf-form-group", has_text="Fields of the answer").get_by_text(
        "Add item"
    ).first.click()
    field(generate, "jsonSchema§fields§0§name").fill("description")
    field(generate, "jsonSchema§fields§0§type").select_option("string")
    field(generate, "jsonSchema§fields§0§required").check()
    # A step added by mistake is removed again: the page forgets it.
    page.click("#steps-group .add-row a")
    page.select_option("#id_steps-4-type", "delay")
    page.click("#steps-4 .inline-deletelink")
    assert page.locator("#id_steps-4-type").count() == 0
    # The review is dragged by its handle above the publish: positions follow the page.
    page.locator("#steps-3 .step-drag").drag_to(page.locator("#steps-2 .field-type"))
    order = page.eval_on_selector_all(
        "#steps-group tr.form-row:not(.empty-form)", "rows => rows.map(r => r.id)"
    )
    assert order[:4] == ["steps-0", "steps-1", "steps-3", "steps-2"]
    assert page.input_value("#id_steps-3-position") == "3"
    assert page.input_value("#id_steps-2-position") == "4"
    page.locator(".field-triggers").get_by_text("Add item").click()
    page.locator(".field-triggers select").first.select_option("entity.created")

    # A temperature past 2 is refused in the page, before anything is sent.
    field(generate, "temperature").fill("5")
    refused = page.locator("#steps-1 ul.editor-problems")
    refused.wait_for()
    in_page = refused.inner_text()
    assert "steps[1].config.temperature" in in_page
    # ...and marked at the field in the step's form.
    marked = generate.locator(".rjf-form-row", has=field(page, "temperature"))
    assert in_page in marked.locator(".rjf-error-text").inner_text()
    page.click("input[name=_continue]")
    page.wait_for_timeout(500)
    assert page.url.endswith("/admin/workflows/workflow/add/")
    assert not Workflow.objects.exists()
    shot(page, "builder-refused-in-page")
    # Sent anyway (the page's check bypassed), the server refuses it with the same message.
    with page.expect_navigation():
        page.evaluate(
            "HTMLFormElement.prototype.submit.call(document.getElementById('workflow_form'))"
        )
    assert in_page in page.locator("#steps-1").inner_text()
    assert not Workflow.objects.exists()

    # A JSON view for those who prefer it: the config as the API takes it, edited as text.
    review = page.locator("#steps-3")
    review.locator("button.step-config-view").click()
    as_json = review.locator("textarea.step-config-json")
    config = json.loads(as_json.input_value())
    assert config == registry.get("review").example
    as_json.fill(json.dumps({**config, "timeoutMinutes": 60}))
    review.locator("button.step-config-view").click()  # back to the form, which shows the edit
    assert field(review, "timeoutMinutes").input_value() == "60"

    field(page.locator("#steps-1"), "temperature").fill("0.5")
    page.locator("#steps-1 ul.editor-problems").wait_for(state="detached")
    page.click("input[name=_continue]")
    page.wait_for_url("**/change/")
    workflow = Workflow.objects.get()
    steps = list(workflow.steps.order_by("position"))
    assert [step.type for step in steps] == ["transform", "ai_generate", "review", "publish"]
    assert steps[1].config["responseFormat"] == "json"
    assert steps[1].config["temperature"] == 0.5
    assert steps[1].config["jsonSchema"] == {
        "type": "object",
        "properties": {"description": {"type": "string"}},
        "required": ["description"],
    }
    assert steps[2].config["timeoutMinutes"] == 60
    assert steps[0].config == registry.get("transform").example
    assert workflow.triggers == [{"on": "entity.created"}]
    # Saved, each step shows its form again, the schema's fields among them.
    assert (
        field(page.locator("#steps-1"), "jsonSchema§fields§0§name").input_value() == "description"
    )
    shot(page, "builder-saved")
    assert not watched.errors


def test_staff_who_prefer_json_edit_the_triggers_as_json_checked_in_the_page(
    browser, live_server, django_user_model, product_type
):
    workflow, watched = triggers_as_json(browser, live_server, django_user_model, product_type)
    page = watched.page
    as_json = page.locator("textarea.triggers-json")
    assert json.loads(as_json.input_value()) == [{"on": "entity.created"}]
    as_json.fill('[{"on": "schedule", "cron": "every night"}]')
    refused = page.locator(".field-triggers ul.editor-problems")
    refused.wait_for()
    assert refused.inner_text().startswith("triggers[0].cron: ")
    as_json.fill('[{"on": "schedule", "cron": "0 3 * * *"}]')
    refused.wait_for(state="detached")
    page.click("button.triggers-view")  # back to the form, which shows what was typed
    assert page.locator(".field-triggers select").first.input_value() == "schedule"
    page.click("input[name=_continue]")
    page.locator(".messagelist .success").wait_for()
    workflow.refresh_from_db()
    assert workflow.triggers == [{"on": "schedule", "cron": "0 3 * * *"}]
    assert not watched.errors


def test_the_triggers_saved_are_the_json_shown_whatever_the_hidden_form_wrote(
    browser, live_server, django_user_model, product_type
):
    """The triggers' form, hidden for JSON editing, writes the field itself when it reports
    a change, which it may do after the click that hid it: the page saves the JSON shown."""
    workflow, watched = triggers_as_json(browser, live_server, django_user_model, product_type)
    page = watched.page
    page.locator("textarea.triggers-json").fill('[{"on": "schedule", "cron": "0 3 * * *"}]')
    # The hidden form's late write, as it makes it: the field it was given.
    page.evaluate("document.getElementById('id_triggers').value = '[{\"on\": \"entity.created\"}]'")
    page.click("input[name=_continue]")
    page.locator(".messagelist .success").wait_for()
    workflow.refresh_from_db()
    assert workflow.triggers == [{"on": "schedule", "cron": "0 3 * * *"}]
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
    assert page.locator("#steps-group .step-config-form .rjf-form-wrapper").count() == len(steps)
    assert not watched.errors


def test_json_typed_for_a_step_is_not_overwritten_by_its_hidden_form(
    browser, live_server, django_user_model, product_type
):
    """The step's form reports changes after it renders, which React may do after the click
    that hid it for JSON editing (CI's busiest minutes did): such a late change must not
    overwrite what was typed, or the page saves the type's example instead."""
    watched = staff_page(browser, live_server, django_user_model, width=1280)
    page = watched.page
    page.locator("#content-main a.addlink[href='/admin/workflows/workflow/add/']").click()
    page.fill("#id_name", "Typed as JSON")
    page.select_option("#id_entity_type", product_type.pk)
    page.select_option("#id_steps-0-type", "ai_generate")
    page.click("#steps-0 button.step-config-view")
    typed = '{"outputField": "description"}'
    page.fill("#id_steps-0-config", typed)
    late = {"prompt": "Describe {{ entity.title }}", "outputField": "description"}
    page.evaluate(  # the hidden form's late change, as the form hands it to its listeners
        "late => document.getElementById('steps-0').stepForm.eventListeners.change"
        ".forEach(listener => listener({data: late}))",
        late,
    )
    assert page.input_value("#id_steps-0-config") == typed
    page.click("input[name=_continue]")
    error = page.locator(".errorlist", has_text="steps[0].config.prompt: This field is required.")
    error.first.wait_for()
    assert Workflow.objects.count() == 0
    assert not watched.errors
