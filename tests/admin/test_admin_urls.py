"""The admin's own URLs: every custom view takes the quoted primary key the admin links with
(`run_01…` is `run_5F01…` in a URL), and a page that is not there is an HTML page for staff."""

import pytest
from django.contrib.admin.utils import quote
from django.test import RequestFactory

from config.error_pages import server_error
from jobs.models import Run
from tests.factories import make_entities, make_workflow, run_inline, start_run

pytestmark = pytest.mark.django_db
STEPS = [
    {"id": "check", "type": "validate", "config": {"rules": [{"field": "price", "maximum": 1}]}},
]


@pytest.fixture
def ended_run(product_type):
    run = start_run(make_workflow(product_type, STEPS), make_entities(product_type, 3))
    run_inline(run.pk)  # the third entity's price fails the check
    return Run.objects.get(pk=run.pk)


def test_ids_the_admin_links_with_are_quoted(ended_run):
    assert "_5F" in quote(ended_run.pk) and quote(ended_run.pk) != ended_run.pk


@pytest.mark.parametrize("page", ["change/", "progress/", "change/?item_status=failed"])
def test_run_pages_open_from_the_quoted_id_and_the_raw_one(staff, ended_run, page):
    for run_id in (quote(ended_run.pk), ended_run.pk):
        response = staff.get(f"/admin/jobs/run/{run_id}/{page}")
        assert response.status_code == 200, (run_id, page)
        assert ended_run.pk in response.content.decode() or page == "progress/"


@pytest.mark.parametrize("page", ["run/", "test/", "change/"])
def test_workflow_pages_open_from_the_quoted_id(staff, product_type, page):
    workflow = make_workflow(product_type, STEPS, name="Quoted")
    response = staff.get(f"/admin/workflows/workflow/{quote(workflow.pk)}/{page}")
    assert response.status_code == 200
    assert "Quoted" in response.content.decode()


def test_run_actions_take_the_quoted_id_and_redirect_to_a_quoted_url(staff, ended_run):
    response = staff.post(f"/admin/jobs/run/{quote(ended_run.pk)}/retry/")
    retry = Run.objects.exclude(pk=ended_run.pk).get()
    assert response["Location"] == f"/admin/jobs/run/{quote(retry.pk)}/change/"
    response = staff.post(f"/admin/jobs/run/{quote(retry.pk)}/cancel/")
    assert response["Location"] == f"/admin/jobs/run/{quote(retry.pk)}/change/"
    assert Run.objects.get(pk=retry.pk).status == "cancelled"


def test_links_on_the_run_page_use_quoted_ids(staff, ended_run):
    html = staff.get(f"/admin/jobs/run/{quote(ended_run.pk)}/change/").content.decode()
    assert f"/admin/workflows/workflow/{quote(ended_run.workflow_id)}/change/" in html
    assert f"/admin/jobs/job/{quote(ended_run.job.pk)}/change/" in html
    assert f"/admin/jobs/run/{quote(ended_run.pk)}/progress/" in html
    for entity_id in ended_run.items.values_list("entity_id", flat=True):
        assert f"/admin/entities/entity/{quote(entity_id)}/change/" in html


@pytest.mark.parametrize(
    "url",
    [
        "/admin/jobs/run/run_5F0000000000000000000000000/change/",
        "/admin/jobs/run/run_5F0000000000000000000000000/progress/",
        "/admin/jobs/run/run_5F0000000000000000000000000/retry/",
        "/admin/workflows/workflow/wf_5F0000000000000000000000000/run/",
        "/admin/workflows/workflow/wf_5F0000000000000000000000000/test/",
        "/admin/no-such-app/",
    ],
)
def test_a_missing_admin_page_is_an_html_404_for_staff(staff, url):
    response = staff.get(url)
    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")
    assert "Page not found" in response.content.decode()


def test_a_missing_api_path_is_still_json(staff, api):
    for client in (staff, api):
        response = client.get("/api/v1/no-such-thing")
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "not_found"


def test_a_server_error_in_the_admin_is_an_html_page_and_json_elsewhere():
    factory = RequestFactory()
    admin_page = server_error(factory.get("/admin/jobs/run/"))
    assert admin_page.status_code == 500 and admin_page["Content-Type"].startswith("text/html")
    api_answer = server_error(factory.get("/api/v1/workflows"))
    assert api_answer.status_code == 500 and api_answer["Content-Type"] == "application/json"
