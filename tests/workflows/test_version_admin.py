"""The workflow's admin page lists its versions with their diffs and publishes one."""

import re

import pytest
from django.contrib.auth.models import Permission
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tests.factories import make_workflow
from workflows.models import Workflow
from workflows.services import workflow_update

pytestmark = pytest.mark.django_db


def _generate(prompt: str) -> dict:
    return {"id": "gen", "type": "ai_generate", "config": {"prompt": prompt, "outputField": "d"}}


@pytest.fixture
def staff(client, django_user_model):
    django_user_model.objects.create_superuser("staff", "s@example.com", "pw-for-tests-1")
    client.login(username="staff", password="pw-for-tests-1")
    return client


@pytest.fixture
def drafted(product_type):
    workflow = make_workflow(product_type, [_generate("Old <b>prompt</b>")])
    workflow_update(
        workflow_id=workflow.pk, steps=[_generate("New prompt")], draft=True, note="Shorter"
    )
    return workflow


def test_the_page_lists_versions_with_their_changes_and_a_publish_button(staff, drafted):
    page = staff.get(f"/admin/workflows/workflow/{drafted.pk}/change/").content.decode()
    assert "config.prompt" in page
    assert "&quot;Old &lt;b&gt;prompt&lt;/b&gt;&quot;" in page  # escaped, never markup
    assert '<ins class="diff-after">&quot;New prompt&quot;</ins>' in page
    assert "Shorter" in page
    assert f'formaction="/admin/workflows/workflow/{drafted.pk}/versions/2/publish/"' in page


def test_publish_then_roll_back_from_the_admin(staff, drafted):
    url = f"/admin/workflows/workflow/{drafted.pk}/versions/2/publish/"
    response = staff.post(url, {"name": "ignored"})
    assert response.status_code == 302
    drafted.refresh_from_db()
    assert drafted.name != "ignored"  # the publish view reads nothing else of the form
    assert drafted.version == 2 and drafted.steps.get().config["prompt"] == "New prompt"
    page = staff.get(f"/admin/workflows/workflow/{drafted.pk}/change/").content.decode()
    assert "Roll back to this" in page
    staff.post(f"/admin/workflows/workflow/{drafted.pk}/versions/1/publish/")
    assert Workflow.objects.get(pk=drafted.pk).version == 1


def test_a_publish_from_a_page_shown_before_another_went_live_is_refused(staff, drafted):
    """The page's buttons carry the live version it showed: a version published since (by
    someone else, or the API) is not replaced by a click on the stale page."""
    page = staff.get(f"/admin/workflows/workflow/{drafted.pk}/change/").content.decode()
    assert 'name="expected_live" value="1"' in page
    workflow_update(workflow_id=drafted.pk, steps=[_generate("Theirs")])  # live: version 3
    url = f"/admin/workflows/workflow/{drafted.pk}/versions/2/publish/"
    refused = staff.post(url, {"expected_live": "1"}, follow=True)
    assert "The live version is 3, not 1" in refused.content.decode()
    assert Workflow.objects.get(pk=drafted.pk).version == 3
    staff.post(url, {"expected_live": "3"})
    assert Workflow.objects.get(pk=drafted.pk).version == 2


def test_careless_publishes_change_nothing(staff, drafted, client, django_user_model):
    base = f"/admin/workflows/workflow/{drafted.pk}/versions"
    assert staff.get(f"{base}/2/publish/").status_code == 405
    missing = staff.post(f"{base}/9/publish/", follow=True)
    assert "No version 9" in missing.content.decode()
    viewer = django_user_model.objects.create_user("viewer", password="pw-for-tests-2")
    viewer.is_staff = True
    viewer.save()
    viewer.user_permissions.add(Permission.objects.get(codename="view_workflow"))
    client.logout()
    client.login(username="viewer", password="pw-for-tests-2")
    assert client.post(f"{base}/2/publish/").status_code == 403
    assert Workflow.objects.get(pk=drafted.pk).version == 1


def test_the_page_reads_every_version_s_diff_in_one_query(staff, product_type):
    def queries_for(versions: int) -> int:
        workflow = make_workflow(product_type, [_generate("v1")])
        for number in range(2, versions + 1):
            workflow_update(workflow_id=workflow.pk, steps=[_generate(f"v{number}")], draft=True)
        url = f"/admin/workflows/workflow/{workflow.pk}/change/"
        staff.get(url)  # what a process caches for a while (read once, now and then) is read
        with CaptureQueriesContext(connection) as captured:
            page = staff.get(url)
        assert page.content.decode().count("config.prompt") == versions - 1
        return len(captured)

    assert queries_for(12) == queries_for(2)


@pytest.fixture
def saved_often(product_type):
    """A workflow of 53 versions, prompts v1 … v53."""
    workflow = make_workflow(product_type, [_generate("v1")])
    for number in range(2, 54):
        workflow_update(workflow_id=workflow.pk, steps=[_generate(f"v{number}")], draft=True)
    return workflow


def test_the_page_lists_the_newest_versions_and_links_to_them_all(staff, saved_often):
    page = staff.get(f"/admin/workflows/workflow/{saved_often.pk}/change/").content.decode()
    shown = [int(n) for n in re.findall(r'versions/(\d+)/publish/"', page)]
    assert shown == list(range(53, 3, -1))  # the newest 50, newest first
    # The oldest shown still has its diff against the one before, which is not shown.
    assert '<del class="diff-before">&quot;v3&quot;</del>' in page
    link = f'href="/admin/workflows/workflowversion/?workflow={saved_often.pk}"'
    assert link in page and "The newest 50 of 53 versions" in page


def test_a_workflow_of_few_versions_has_no_link_to_more(staff, drafted):
    page = staff.get(f"/admin/workflows/workflow/{drafted.pk}/change/").content.decode()
    assert 'id="all-versions"' not in page


def test_the_versions_list_pages_one_workflow_s_versions(staff, saved_often, product_type):
    make_workflow(product_type, [_generate("another workflow")])
    url = f"/admin/workflows/workflowversion/?workflow={saved_often.pk}"
    first, second = staff.get(url).content.decode(), staff.get(f"{url}&p=2").content.decode()
    numbers = lambda page: re.findall(r'versions/(\d+)/publish/"', page)  # noqa: E731
    assert len(numbers(first)) == 50 and numbers(second) == ["3", "2"]
    assert "&quot;another workflow&quot;" not in first + second
    assert '<del class="diff-before">&quot;v2&quot;</del>' in second  # diffs across pages


def test_a_version_is_published_from_the_versions_list(staff, saved_often):
    page = staff.get(f"/admin/workflows/workflowversion/?workflow={saved_often.pk}&p=2")
    action = f"/admin/workflows/workflow/{saved_often.pk}/versions/2/publish/"
    assert f'formaction="{action}"' in page.content.decode()
    assert 'id="changelist-form" method="post"' in page.content.decode()  # the button's form
    staff.post(action)
    assert Workflow.objects.get(pk=saved_often.pk).version == 2


def test_who_may_view_workflows_reads_their_versions_and_no_one_edits_them(
    client, django_user_model, drafted
):
    viewer = django_user_model.objects.create_user(
        "viewer", password="pw-for-tests-2", is_staff=True
    )
    viewer.user_permissions.add(Permission.objects.get(codename="view_workflow"))
    client.login(username="viewer", password="pw-for-tests-2")
    page = client.get(f"/admin/workflows/workflowversion/?workflow={drafted.pk}")
    assert page.status_code == 200 and "Shorter" in page.content.decode()
    version = drafted.versions.get(number=2)
    assert client.get("/admin/workflows/workflowversion/add/").status_code == 403
    assert client.post(f"/admin/workflows/workflowversion/{version.pk}/delete/").status_code == 403


def test_the_versions_list_is_not_a_table_of_the_index(staff, drafted):
    assert "/admin/workflows/workflowversion/" not in staff.get("/admin/").content.decode()
