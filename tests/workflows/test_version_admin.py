"""The workflow's admin page lists its versions with their diffs and publishes one."""

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
