"""Staff in a real headless Chromium (Debian's, driven by Playwright) against a live server,
with a real Celery worker running the workflows. Screenshots go to test-artifacts/."""

import os
import re
import shutil
import time
from pathlib import Path

import pytest

from jobs.models import Run
from tests.admin.browsing import PAGE_TIMEOUT_MS
from tests.factories import make_entities, make_workflow
from workflows.models import Workflow

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]
ARTIFACTS = Path(os.environ.get("TEST_ARTIFACTS", Path(__file__).parents[2] / "test-artifacts"))
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
PASSWORD = "pw-for-browser-1"

if CHROMIUM is None:  # .ci/run installs it; say so plainly anywhere else
    pytest.skip("Chromium is not installed (apt-get install chromium)", allow_module_level=True)


@pytest.fixture
def page(browser, live_server, django_user_model, request):
    django_user_model.objects.create_superuser("staff", "s@example.com", PASSWORD)
    context = browser.new_context(
        base_url=live_server.url, viewport={"width": 1400, "height": 1000}
    )
    page = context.new_page()
    page.set_default_timeout(PAGE_TIMEOUT_MS)
    page.goto("/admin/login/")
    page.fill("#id_username", "staff")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url("**/admin/")
    yield page
    context.close()


def shot(page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def test_staff_open_the_step_type_reference_from_the_index(page):
    page.click("#step-reference-link")
    page.wait_for_url("**/step-types/")
    page.locator("#condition").wait_for()
    for type_name in ["ai_generate", "validate", "publish", "notify", "transform", "condition"]:
        assert page.locator(f"#{type_name}").is_visible()
    assert "outputField" in page.locator("#ai_generate table").inner_text()
    shot(page, "step-type-reference")


def test_staff_build_a_two_step_workflow_and_see_a_config_error(page, product_type):
    page.goto("/admin/workflows/workflow/add/")
    page.fill("#id_name", "Describe and publish")
    page.select_option("#id_entity_type", product_type.pk)
    page.fill("#id_steps-0-position", "1")
    page.select_option("#id_steps-0-type", "ai_generate")
    # The config is filled with the type's example; those who prefer JSON edit it as JSON.
    page.click("#steps-0 button.step-config-view")
    assert '"outputField"' in page.input_value("#id_steps-0-config")
    page.fill("#id_steps-0-config", '{"outputField": "description"}')  # no prompt
    page.click("input[name=_continue]")
    error = page.locator(".errorlist", has_text="steps[0].config.prompt: This field is required.")
    error.first.wait_for()  # shown next to the step, with the API's message
    shot(page, "workflow-config-error")
    assert Workflow.objects.count() == 0

    page.fill(
        "#id_steps-0-config",
        '{"prompt": "Describe {{ entity.title }}", "outputField": "description"}',
    )
    page.click(".add-row a")
    page.fill("#id_steps-1-position", "2")
    page.select_option("#id_steps-1-type", "publish")
    page.click("input[name=_continue]")
    page.wait_for_selector(".messagelist .success")
    workflow = Workflow.objects.get()
    assert [s.type for s in workflow.steps.order_by("position")] == ["ai_generate", "publish"]
    assert workflow.version == 1
    shot(page, "workflow-saved")


def test_staff_run_a_workflow_on_selected_entities_and_watch_it_finish(
    page, product_type, celery_worker, settings
):
    settings.RUN_CHUNK_SIZE = settings.RUN_CHUNK_SIZE_MAX = 10  # 10 a chunk, however many
    make_workflow(
        product_type,
        [
            {
                "type": "ai_generate",
                "config": {"prompt": "Describe {{ entity.title }}", "outputField": "description"},
            },
            {"type": "publish", "config": {}},
        ],
        name="Describe and publish",
    )
    make_entities(product_type, 60)
    page.goto(f"/admin/entities/entity/?entity_type__id__exact={product_type.pk}")
    page.check("#action-toggle")
    page.select_option("select[name=action]", "run_workflow")
    page.click("button[name=index]")
    page.wait_for_selector("#pick-workflow")
    page.click("#start-run")
    page.wait_for_url(re.compile(r".*/admin/jobs/run/run_\w+/change/"))
    label = page.locator(".run-progress .label")
    label.filter(has_text="60 / 60").wait_for(timeout=60_000)  # updated without a reload
    page.locator("[data-run-status]", has_text="completed").wait_for()
    shot(page, "run-finished")
    assert Run.objects.get().status == "completed"


def test_staff_cancel_a_run(page, product_type, celery_worker, receiver, settings):
    settings.RUN_CHUNK_SIZE = settings.RUN_CHUNK_SIZE_MAX = 10  # 10 a chunk, however many
    receiver.delay = 0.3
    workflow = make_workflow(
        product_type,
        [
            {"type": "notify", "config": {"channel": "webhook", "url": receiver.url}},
        ],
        name="Slow notifications",
    )
    make_entities(product_type, 200)
    page.goto(f"/admin/workflows/workflow/{workflow.pk}/run/")
    page.click("input[name=all]")
    page.wait_for_url(re.compile(r".*/admin/jobs/run/run_\w+/change/"))
    page.click("#cancel-run")
    page.locator("[data-run-status]", has_text="cancelled").wait_for()
    shot(page, "run-cancelled")
    run = Run.objects.get()
    assert run.status == "cancelled"
    assert page.locator("#cancel-run").count() == 0


# Links the crawl does not follow: filters and sorting of a list (other views of a page it
# opens anyway), and those that log out or delete.
CRAWL_SKIPS = "#changelist-filter, #result_list thead, .paginator, #toolbar, .xfull, .deletelink"


def crawl_links(page) -> list[str]:
    return page.eval_on_selector_all(
        "#content a[href]",
        f"""links => links
            .filter(a => !a.closest({CRAWL_SKIPS!r}))
            .map(a => a.href)
            .filter(href => new URL(href).origin === location.origin)""",
    )


@pytest.mark.long
def test_staff_reach_every_admin_page_from_the_index_and_none_fails(
    page, product_type, django_user_model
):
    from django.contrib.admin.utils import quote

    from config.api.services import api_key_create
    from jobs.retries import run_retry
    from tests.factories import run_inline, start_run

    workflow = make_workflow(
        product_type,
        [{"type": "validate", "config": {"rules": [{"field": "price", "maximum": 1}]}}],
    )
    run = start_run(workflow, make_entities(product_type, 3))
    run_inline(run.pk)  # one entity fails: the page has items, logs and a retry button
    run_retry(run_id=run.pk)  # a run whose page links the run it retries
    api_key_create(user=django_user_model.objects.get(username="staff"), name="crawl")

    failures, seen = [], set()
    # The pages' own requests count too (the progress bar polls its run).
    page.on("response", lambda r: r.status >= 400 and failures.append((r.status, r.url)))
    frontier = [page.url]
    for _depth in range(4):  # index, lists, objects, the links on an object
        found = []
        for url in frontier:
            path = url.split("#")[0]
            if path in seen or "/logout/" in path or "/delete/" in path:
                continue
            seen.add(path)
            response = page.goto(path)
            assert response.ok, (response.status, path)
            found += crawl_links(page)
        frontier = found
    shot(page, "admin-crawl-last-page")
    assert failures == []
    paths = {url.removeprefix(page.url.split("/admin/")[0]) for url in seen}
    for reached in [
        "/admin/jobs/run/",
        f"/admin/jobs/run/{quote(run.pk)}/change/",
        f"/admin/jobs/run/{quote(run.pk)}/change/?item_status=failed",
        f"/admin/jobs/job/{quote(run.job.pk)}/change/",
        f"/admin/workflows/workflow/{quote(workflow.pk)}/run/",
        f"/admin/workflows/workflow/{quote(workflow.pk)}/test/",
        "/admin/workflows/workflow/step-types/",
        "/admin/api/apikey/",
    ]:
        assert reached in paths, reached


def test_staff_work_through_the_review_queue(page, product_type, celery_worker):
    """From the index to the queue: edit a value and approve one review, then select two
    and reject them; the worker takes the approved entity on with the edit."""
    from entities.models import Entity
    from jobs.models import Review
    from tests.factories import start_run
    from tests.workers import wait_for_run

    workflow = make_workflow(
        product_type,
        [
            {
                "id": "tidy",
                "type": "transform",
                "config": {
                    "operations": [{"op": "set", "field": "slug", "value": "{{ entity.title }}"}]
                },
            },
            {
                "id": "check",
                "type": "review",
                "config": {"instructions": "Is the slug of {{ entity.title }} right?"},
            },
            {"id": "pub", "type": "publish", "config": {}},
        ],
        name="Slugs, reviewed",
    )
    ids = make_entities(product_type, 3)
    run = start_run(workflow, ids)
    deadline = time.monotonic() + 60
    while Run.objects.get(pk=run.pk).waiting < 3:  # the worker parks the three entities
        assert time.monotonic() < deadline, "the entities did not come to wait"
        time.sleep(0.1)
    reviews = dict(Review.objects.values_list("entity_id", "pk"))

    page.goto("/admin/")
    page.click("#reviews-link")
    page.wait_for_url("**/admin/jobs/review/")
    page.select_option("#filter-workflow", workflow.pk)
    page.click("#review-filters input[type=submit]")
    page.wait_for_url(re.compile(r".*workflow=wf_"))
    first = page.locator(f"#review-{reviews[ids[0]]}")
    assert "Is the slug of Item 0 right?" in first.locator(".instructions").inner_text()
    assert first.locator("tr.changed[data-field=slug] td.before").inner_text().strip() == "—"
    shot(page, "review-queue")
    first.locator("textarea[aria-label=slug]").fill("item-zero-by-hand")
    first.locator("input[name=comment]").fill("better slug")
    first.locator("button.approve").click()
    page.locator(".messagelist .success", has_text="approved with edits").wait_for()
    assert page.locator(f"#review-{reviews[ids[0]]}").count() == 0  # left the queue

    for entity_id in ids[1:]:
        page.locator(f"#review-{reviews[entity_id]} .select-review").check()
    page.fill("#bulk input[name=comment]", "not these")
    page.click("#reject-selected")
    page.locator(".messagelist .success", has_text="2 reviews rejected.").wait_for()
    page.locator("#no-reviews").wait_for()
    shot(page, "review-queue-empty")

    run = wait_for_run(run.pk)
    assert (run.status, run.completed) == ("completed", 3)
    approved = Entity.objects.get(pk=ids[0])
    assert (approved.status, approved.data["slug"]) == ("published", "item-zero-by-hand")
    assert set(Entity.objects.filter(pk__in=ids[1:]).values_list("status", flat=True)) == {"draft"}
    assert Review.objects.get(pk=reviews[ids[1]]).comment == "not these"
