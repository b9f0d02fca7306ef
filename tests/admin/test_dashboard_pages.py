"""The admin pages staff use, through Django's test client."""

import re

import pytest
from django.contrib.admin.utils import quote
from django.utils import timezone

from config.api.models import ApiKey
from jobs.models import Run, RunLog
from tests.factories import make_entities, make_workflow, run_inline, start_run

pytestmark = pytest.mark.django_db
FAILS_EXPENSIVE = [
    {"id": "check", "type": "validate", "config": {"rules": [{"field": "price", "maximum": 1}]}},
    {"id": "pub", "type": "publish", "config": {}},
]


def test_index_links_the_step_reference_and_runs(staff):
    html = staff.get("/admin/").content.decode()
    assert "/admin/workflows/workflow/step-types/" in html
    assert "/admin/jobs/run/" in html


def test_workflow_list_shows_steps_count_and_last_run(staff, product_type):
    workflow = make_workflow(product_type, FAILS_EXPENSIVE, name="Pricing check")
    start_run(workflow, make_entities(product_type, 1))
    response = staff.get("/admin/workflows/workflow/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "Pricing check" in html
    assert re.search(r'class="field-steps_count">2<', html)
    last_run = re.search(r'class="field-last_run_at[^"]*">([^<]*)<', html).group(1)
    assert str(timezone.now().year) in last_run


def test_run_page_from_the_workflow_starts_a_run_like_the_api(staff, product_type):
    workflow = make_workflow(product_type, FAILS_EXPENSIVE)
    ids = make_entities(product_type, 3)
    page = staff.get(f"/admin/workflows/workflow/{workflow.pk}/run/")
    assert page.status_code == 200 and ids[0] in page.content.decode()
    response = staff.post(f"/admin/workflows/workflow/{workflow.pk}/run/", {"entity_ids": ids[:2]})
    run = Run.objects.get()
    assert response["Location"] == f"/admin/jobs/run/{quote(run.pk)}/change/"
    assert run.total == 2 and run.job is not None


def test_run_page_reports_bad_input_instead_of_failing(staff, product_type):
    workflow = make_workflow(product_type, FAILS_EXPENSIVE)
    response = staff.post(f"/admin/workflows/workflow/{workflow.pk}/run/", {}, follow=True)
    assert "Give 1 to 10000 entity ids, not 0." in response.content.decode()
    assert Run.objects.count() == 0


def test_test_page_shows_each_step_outcome(staff, product_type):
    workflow = make_workflow(product_type, FAILS_EXPENSIVE)
    [entity_id] = make_entities(product_type, 1)
    response = staff.post(
        f"/admin/workflows/workflow/{workflow.pk}/test/", {"entity_id": entity_id}
    )
    html = response.content.decode()
    assert "Result: completed" in html and "check" in html and "published" in html


def test_entities_action_runs_a_workflow_of_their_type(staff, product_type):
    workflow = make_workflow(product_type, FAILS_EXPENSIVE)
    ids = make_entities(product_type, 2)
    data = {"action": "run_workflow", "_selected_action": ids}
    page = staff.post("/admin/entities/entity/", data)
    assert workflow.name in page.content.decode()
    response = staff.post("/admin/entities/entity/", {**data, "workflow": workflow.pk})
    run = Run.objects.get()
    assert response["Location"] == f"/admin/jobs/run/{quote(run.pk)}/change/"
    assert run.total == 2


def test_run_detail_shows_items_logs_progress_and_retry(staff, product_type):
    run = start_run(make_workflow(product_type, FAILS_EXPENSIVE), make_entities(product_type, 4))
    run_inline(run.pk)
    page = staff.get(f"/admin/jobs/run/{run.pk}/change/").content.decode()
    assert 'class="run-progress"' in page and "4 / 4 (2 failed)" in page
    assert "price: must be at most 1" in page  # items and log
    assert "Retry 2 failed entities" in page
    failed_only = staff.get(f"/admin/jobs/run/{run.pk}/change/?item_status=failed").content
    assert failed_only.decode().count("price: must be at most 1") >= 2
    progress = staff.get(f"/admin/jobs/run/{run.pk}/progress/").json()
    assert progress == {
        "status": "failed",
        "total": 4,
        "completed": 2,
        "failed": 2,
        "cancelled": 0,
        "skipped": 0,
        "waiting": 0,
        "ended": True,
    }
    response = staff.post(f"/admin/jobs/run/{run.pk}/retry/")
    retry = Run.objects.exclude(pk=run.pk).get()
    assert response["Location"] == f"/admin/jobs/run/{quote(retry.pk)}/change/"
    assert retry.total == 2


def test_cancel_button_cancels_and_a_second_cancel_says_why_not(staff, product_type):
    run = start_run(make_workflow(product_type, FAILS_EXPENSIVE), make_entities(product_type, 2))
    staff.post(f"/admin/jobs/run/{run.pk}/cancel/")
    assert Run.objects.get(pk=run.pk).status == "cancelled"
    response = staff.post(f"/admin/jobs/run/{run.pk}/cancel/", follow=True)
    assert "already ended" in response.content.decode()


def test_api_key_created_in_the_admin_is_shown_once_and_works(staff, django_user_model, api):
    owner = django_user_model.objects.get(username="staff")
    response = staff.post("/admin/api/apikey/add/", {"user": owner.pk, "name": "ci"})
    html = response.content.decode()
    key = html.split('<code id="new-api-key">')[1].split("</code>")[0]
    assert key.startswith("wfk_")
    api_key = ApiKey.objects.get(name="ci")
    assert key not in (api_key.hashed_key, api_key.prefix)
    assert key not in staff.get(f"/admin/api/apikey/{api_key.pk}/change/").content.decode()
    staff.post("/admin/api/apikey/", {"action": "revoke", "_selected_action": [api_key.pk]})
    assert ApiKey.objects.get(pk=api_key.pk).revoked_at is not None


def test_pages_need_staff(client):
    for url in ["/admin/jobs/run/", "/admin/workflows/workflow/step-types/"]:
        assert "/admin/login/" in client.get(url)["Location"]


def test_workflow_form_links_the_reference_next_to_the_steps(staff):
    html = staff.get("/admin/workflows/workflow/add/").content.decode()
    assert 'id="steps-reference-help"' in html
    assert 'id="step-editor-types"' in html  # each type's form schema and example


def test_entities_filter_by_type_and_status_and_search_in_data(staff, product_type):
    from entities.models import Entity

    ids = make_entities(product_type, 3)
    Entity.objects.filter(pk=ids[0]).update(data={"title": "Walnut desk"}, status="published")
    found = staff.get("/admin/entities/entity/?q=walnut").content.decode()
    assert ids[0] in found and ids[1] not in found
    published = staff.get(
        f"/admin/entities/entity/?status__exact=published&entity_type__id__exact={product_type.pk}"
    ).content.decode()
    assert ids[0] in published and ids[2] not in published


def test_run_list_and_page_show_usage_cost_and_budget(staff, product_type):
    workflow = make_workflow(product_type, FAILS_EXPENSIVE)
    run = start_run(workflow, make_entities(product_type, 1), budget={"maxTokens": 500})
    Run.objects.filter(pk=run.pk).update(
        input_tokens=1200, cached_input_tokens=300, output_tokens=80, cost_nano_usd=1_500_000
    )
    listing = staff.get("/admin/jobs/run/").content.decode()
    assert "1,200 / 80" in listing and "$0.0015" in listing
    page = staff.get(f"/admin/jobs/run/{quote(run.pk)}/change/").content.decode()
    assert "1,200 in (300 cached), 80 out" in page and "$0.0015" in page
    assert "500 tokens" in page
    Run.objects.filter(pk=run.pk).update(unpriced_calls=2)
    page = staff.get(f"/admin/jobs/run/{quote(run.pk)}/change/").content.decode()
    assert "unknown (2 calls to a model without a price)" in page


def test_run_page_cuts_long_errors_and_messages_and_links_them_whole(staff, product_type):
    steps = [
        {
            "id": "check",
            "type": "validate",
            "config": {"rules": [{"field": "notes", "maxLength": 5}]},
        }
    ]
    run = start_run(
        make_workflow(product_type, steps), make_entities(product_type, 30, notes="z" * 20_000)
    )
    run_inline(run.pk)
    RunLog.objects.bulk_create(
        RunLog(run=run, level="info", message="q" * 20_000) for _ in range(30)
    )
    response = staff.get(f"/admin/jobs/run/{run.pk}/change/")
    page = response.content.decode()
    assert "z" * 1001 not in page and "q" * 1001 not in page
    assert len(response.content) < 300_000
    items_api = re.search(r'href="([^"]+)" id="items-api"', page).group(1)
    logs_api = re.search(r'href="([^"]+)" id="logs-api"', page).group(1)
    items = staff.get(items_api, HTTP_ACCEPT="application/json").json()
    assert len(items) == 30 and all(item["status"] == "failed" for item in items)
    logs = staff.get(logs_api, HTTP_ACCEPT="application/json").json()
    assert sum(log["message"] == "q" * 20_000 for log in logs) == 30
