"""A run's page and its views take the API's permissions: reading it (and its live progress,
and the revert page) `jobs.view_run`; cancelling `jobs.change_job`; retrying and reverting,
which start a run, `jobs.add_run`."""

import pytest
from django.contrib.admin.utils import quote

from jobs.models import Run
from tests.factories import make_entities, make_workflow, run_inline, start_run

pytestmark = pytest.mark.django_db

FAILS_EXPENSIVE = [
    {"id": "check", "type": "validate", "config": {"rules": [{"field": "price", "maximum": 1}]}},
    {"id": "pub", "type": "publish", "config": {}},
]


@pytest.fixture
def failed_run(product_type):
    run = start_run(make_workflow(product_type, FAILS_EXPENSIVE), make_entities(product_type, 4))
    run_inline(run.pk)
    run.refresh_from_db()
    assert run.failed == 2
    return run


def _page(client, run) -> str:
    response = client.get(f"/admin/jobs/run/{quote(run.pk)}/change/")
    assert response.status_code == 200
    return response.content.decode()


def test_who_may_cancel_runs_but_not_start_them_cannot_retry_one(staff_with, failed_run):
    client = staff_with("jobs.view_run", "jobs.change_job")
    assert "Retry 2 failed entities" not in _page(client, failed_run)
    client.post(f"/admin/jobs/run/{quote(failed_run.pk)}/retry/")
    assert not Run.objects.filter(retry_of=failed_run).exists()


def test_who_may_start_runs_retries_and_reverts_from_the_run_page(staff_with, failed_run):
    client = staff_with("jobs.view_run", "jobs.add_run")
    page = _page(client, failed_run)
    assert "Retry 2 failed entities" in page and 'id="revert-run"' in page
    assert 'id="cancel-run"' not in page
    client.post(f"/admin/jobs/run/{quote(failed_run.pk)}/retry/")
    assert Run.objects.filter(retry_of=failed_run).exists()


def test_who_may_only_cancel_runs_is_offered_cancel_alone(staff_with, product_type):
    run = start_run(make_workflow(product_type, FAILS_EXPENSIVE), make_entities(product_type, 1))
    client = staff_with("jobs.view_run", "jobs.change_job")
    page = _page(client, run)
    assert 'id="cancel-run"' in page and 'id="revert-run"' not in page
    client.post(f"/admin/jobs/run/{quote(run.pk)}/cancel/")
    assert Run.objects.get(pk=run.pk).status == "cancelled"


def test_who_may_only_view_runs_is_offered_no_action(staff_with, failed_run):
    page = _page(staff_with("jobs.view_run"), failed_run)
    assert 'class="submit-row"' not in page


def test_a_runs_progress_needs_the_permission_to_view_runs(staff_with, failed_run):
    client = staff_with()
    response = client.get(f"/admin/jobs/run/{quote(failed_run.pk)}/progress/")
    assert response.status_code == 403


def test_the_revert_page_needs_the_permission_to_view_runs(staff_with, failed_run):
    client = staff_with("jobs.add_run")
    runs = Run.objects.count()
    assert client.get(f"/admin/jobs/run/{quote(failed_run.pk)}/revert/").status_code == 403
    client.post(f"/admin/jobs/run/{quote(failed_run.pk)}/revert/")
    assert Run.objects.count() == runs


def test_actions_on_a_run_need_the_permission_to_view_runs(staff_with, failed_run):
    client = staff_with("jobs.add_run", "jobs.change_job")
    response = client.post(f"/admin/jobs/run/{quote(failed_run.pk)}/retry/")
    assert response.status_code == 403
    assert not Run.objects.filter(retry_of=failed_run).exists()


@pytest.mark.parametrize(
    ("perms", "shown", "hidden"),
    [
        ((), [], ["/admin/jobs/run/", "/admin/jobs/review/", "/admin/api/apikey/"]),
        (("jobs.view_run",), ["/admin/jobs/run/"], ["/admin/jobs/review/", "/admin/api/apikey/"]),
        # The review queue shows entity data: both, or no link.
        (("jobs.view_review",), [], ["/admin/jobs/review/"]),
        (("jobs.view_review", "entities.view_entity"), ["/admin/jobs/review/"], []),
        (("api.view_apikey",), ["/admin/api/apikey/"], ["/admin/jobs/run/"]),
    ],
)
def test_the_index_links_only_to_the_dashboard_pages_staff_may_open(
    staff_with, perms, shown, hidden
):
    client = staff_with(*perms)
    links = client.get("/admin/").content.decode().split('id="dashboard-links"')[1]
    links = links.split("</div>")[0]
    for path in shown:
        assert f'href="{path}"' in links
        assert client.get(path).status_code == 200
    for path in hidden:
        assert f'href="{path}"' not in links
