"""Reading entity data anywhere takes `entities.view_entity`: reviews (`proposed`, `current`,
`changes`, instructions rendered from the entity), a workflow test, an experiment's results,
and their admin pages, each tried with keys (and staff) of exact permission sets. An estimate
writes nothing: a read-only key may ask for one."""

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission

from jobs.models import Review, ReviewStatus, Run
from tests.conftest import Api
from tests.factories import experiment_run_inline, make_key

pytestmark = pytest.mark.django_db

VIEW_ENTITY = "entities.view_entity"


def key_api(*perms: str, read_only: bool = False) -> Api:
    return Api(make_key(perms=list(perms), read_only=read_only))


@pytest.mark.parametrize(
    ("perms", "status"),
    [
        (["jobs.view_review"], 403),
        ([VIEW_ENTITY], 403),
        (["jobs.view_review", VIEW_ENTITY], 200),
    ],
)
def test_reading_reviews_takes_view_entity(world, perms, status):
    api = key_api(*perms)
    review = world["reviews"][0]
    for path in ["/api/v1/reviews", f"/api/v1/reviews/{review}"]:
        response = api.get(path)
        assert response.status_code == status, (path, response.content)
        if status == 403:
            assert response.json()["error"]["code"] == "permission_denied"
            assert "proposed" not in response.content.decode()


@pytest.mark.parametrize(
    ("perms", "status"),
    [(["jobs.decide_review"], 403), (["jobs.decide_review", VIEW_ENTITY], 200)],
)
def test_deciding_one_review_answers_its_data_so_takes_view_entity(world, perms, status):
    api = key_api(*perms)
    review = world["reviews"][0]
    assert api.post(f"/api/v1/reviews/{review}/reject", {}).status_code == status
    assert api.post(f"/api/v1/reviews/{world['reviews'][1]}/approve", {}).status_code == status


def test_a_bulk_decision_answers_ids_only(world):
    api = key_api("jobs.decide_review")
    response = api.post("/api/v1/reviews/decide", {"ids": world["reviews"], "decision": "reject"})
    assert response.status_code == 200
    assert sorted(response.json()["decided"]) == sorted(world["reviews"])


@pytest.mark.parametrize(
    ("perms", "status"),
    [
        (["workflows.view_workflow", "jobs.add_run"], 403),
        (["workflows.view_workflow", VIEW_ENTITY], 403),
        (["workflows.view_workflow", "jobs.add_run", VIEW_ENTITY], 200),
    ],
)
def test_testing_a_workflow_takes_view_entity(world, perms, status):
    api = key_api(*perms)
    response = api.post(
        f"/api/v1/workflows/{world['workflow'].pk}/test", {"entityId": world["ids"][0]}
    )
    assert response.status_code == status
    assert api.get(f"/api/v1/entities/{world['ids'][0]}").status_code == (
        200 if VIEW_ENTITY in perms else 403
    )


@pytest.mark.parametrize(
    ("perms", "read_only", "status"),
    [
        (["workflows.view_workflow"], True, 200),
        (["workflows.view_workflow"], False, 200),
        (["entities.view_entity"], True, 403),
        ([], False, 403),
    ],
)
def test_an_estimate_writes_nothing_so_a_read_only_key_may_ask(world, perms, read_only, status):
    api = key_api(*perms, read_only=read_only)
    path = f"/api/v1/workflows/{world['workflow'].pk}/estimate"
    assert api.post(path, {"entityIds": world["ids"]}).status_code == status
    assert api.post(path, {"filter": {}}).status_code == status


def test_a_read_only_key_still_may_not_run_test_or_write(world):
    api = Api(make_key(read_only=True))
    workflow = world["workflow"].pk
    assert (
        api.post(f"/api/v1/workflows/{workflow}/run", {"entityIds": world["ids"]}).status_code
        == 403
    )
    assert (
        api.post(f"/api/v1/workflows/{workflow}/test", {"entityId": world["ids"][0]}).status_code
        == 403
    )
    assert (
        api.post(
            "/api/v1/reviews/decide", {"ids": world["reviews"], "decision": "reject"}
        ).status_code
        == 403
    )


def staff_client(client, *perms: str):
    user = get_user_model().objects.create(username="clerk", is_staff=True)
    user.user_permissions.set(
        [
            Permission.objects.get(content_type__app_label=app, codename=codename)
            for app, codename in (perm.split(".") for perm in perms)
        ]
    )
    client.force_login(user)
    return client


def test_the_admin_reviews_page_takes_view_entity(world, client):
    staff = staff_client(client, "jobs.view_review", "jobs.decide_review")
    page = staff.get("/admin/jobs/review/")
    assert page.status_code == 302
    staff.post("/admin/jobs/review/decide/", {"review": world["reviews"][0], "decision": "reject"})
    staff.post("/admin/jobs/review/decide-many/", {"ids": world["reviews"], "decision": "reject"})
    assert world["type"].entities.count() == 3
    assert Review.objects.filter(status=ReviewStatus.PENDING).count() == len(world["reviews"])


def test_the_admin_reviews_page_shows_data_with_view_entity(world, client):
    staff = staff_client(client, "jobs.view_review", VIEW_ENTITY)
    page = staff.get("/admin/jobs/review/")
    assert page.status_code == 200
    assert world["reviews"][0] in page.content.decode()


def test_the_admin_test_page_takes_view_entity_and_the_run_page_hides_data(world, client):
    staff = staff_client(client, "workflows.view_workflow", "jobs.add_run")
    workflow = world["workflow"]
    assert staff.get(f"/admin/workflows/workflow/{workflow.pk}/test/").status_code == 403
    page = staff.get(f"/admin/workflows/workflow/{workflow.pk}/run/")
    assert page.status_code == 200
    assert world["ids"][0] in page.content.decode()
    assert "Item 0" not in page.content.decode()


def test_the_admin_test_and_run_pages_show_data_with_view_entity(world, client):
    staff = staff_client(client, "workflows.view_workflow", "jobs.add_run", VIEW_ENTITY)
    workflow = world["workflow"]
    assert staff.get(f"/admin/workflows/workflow/{workflow.pk}/test/").status_code == 200
    assert "Item 0" in staff.get(f"/admin/workflows/workflow/{workflow.pk}/run/").content.decode()


def test_the_admin_run_pages_search_ignores_text_without_view_entity(world, client):
    """Which entities a text matches answers what their data holds, a guess at a time: staff
    who may not read entities' data find them by status only, with no text box to type in."""
    staff = staff_client(client, "workflows.view_workflow", "jobs.add_run")
    url = f"/admin/workflows/workflow/{world['workflow'].pk}/run/"
    hit = staff.get(url, {"q": "Item 0"}).content.decode()
    miss = staff.get(url, {"q": "no entity holds this"}).content.decode()
    assert all(entity_id in hit and entity_id in miss for entity_id in world["ids"])
    assert 'name="q"' not in hit.split('id="entity-matches"')[0]  # no text box in the search
    # Starting a run over "every match" of a text starts it over every entity of the type.
    staff.post(url, {"matches": "1", "q": "Item 0"})
    assert sorted(
        Run.objects.order_by("-created_at").first().items.values_list("entity_id", flat=True)
    ) == sorted(world["ids"])


def test_the_admin_run_and_test_pages_take_view_workflow_as_the_api_does(world, client):
    staff = staff_client(client, "jobs.add_run", VIEW_ENTITY)
    workflow = world["workflow"]
    assert staff.get(f"/admin/workflows/workflow/{workflow.pk}/run/").status_code == 403
    assert staff.get(f"/admin/workflows/workflow/{workflow.pk}/test/").status_code == 403


def test_the_admin_run_pages_search_finds_by_text_with_view_entity(world, client):
    staff = staff_client(client, "workflows.view_workflow", "jobs.add_run", VIEW_ENTITY)
    url = f"/admin/workflows/workflow/{world['workflow'].pk}/run/"
    assert world["ids"][0] not in staff.get(url, {"q": "no entity holds this"}).content.decode()


def test_the_admin_experiment_page_hides_entities_and_comparing_takes_view_entity(world, client):
    experiment = experiment_run_inline(world["experiment"])
    staff = staff_client(client, "jobs.view_experiment", "jobs.change_experiment")
    page = staff.get(f"/admin/jobs/experiment/{experiment.pk}/change/")
    assert page.status_code == 200
    assert "Item 0" not in page.content.decode()
    assert staff.get(f"/admin/jobs/experiment/{experiment.pk}/compare/people/").status_code == 403


def test_the_admin_experiment_pages_show_data_with_view_entity(world, client):
    experiment = experiment_run_inline(world["experiment"])
    staff = staff_client(client, "jobs.view_experiment", VIEW_ENTITY)
    page = staff.get(f"/admin/jobs/experiment/{experiment.pk}/change/")
    assert "Item 0" in page.content.decode()
    assert staff.get(f"/admin/jobs/experiment/{experiment.pk}/compare/people/").status_code == 200
