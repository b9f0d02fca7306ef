"""The Reviews API: list and read reviews, approve (with edits), reject, decide in bulk,
with the permissions and errors every endpoint has. Runs are executed in this process."""

import pytest
from django.contrib.auth.models import Group
from rest_framework.test import APIClient

from config.api.models import ApiKey
from entities.services import entity_update
from jobs.engine.waits import run_waits_resume
from jobs.models import Review, Run, RunItem
from tests.conftest import Api
from tests.factories import make_entities, make_key, make_workflow, run_inline, start_run

pytestmark = pytest.mark.django_db

STEPS = [
    {
        "id": "tidy",
        "type": "transform",
        "config": {"operations": [{"op": "set", "field": "slug", "value": "{{ entity.title }}"}]},
    },
    {
        "id": "check",
        "type": "review",
        "config": {"instructions": "Check {{ entity.title }}", "fields": ["slug", "price"]},
    },
    {"id": "pub", "type": "publish", "config": {}},
]
REVIEW_FIELDS = {
    "id",
    "status",
    "runId",
    "jobId",
    "workflowId",
    "stepId",
    "entityId",
    "instructions",
    "proposed",
    "current",
    "changes",
    "createdAt",
    "expiresAt",
    "decidedAt",
    "decidedBy",
    "comment",
}


def parked(product_type, n=3, steps=STEPS):
    ids = make_entities(product_type, n)
    run = start_run(make_workflow(product_type, steps), ids)
    run_inline(run.pk)
    reviews = list(Review.objects.filter(run=run).order_by("pk").values_list("pk", flat=True))
    return Run.objects.get(pk=run.pk), ids, reviews


def test_a_review_shows_what_the_run_proposes_beside_the_entity_as_stored(api, product_type):
    run, ids, reviews = parked(product_type, n=1)
    entity_update(entity_id=ids[0], data={"price": 50})  # an edit made meanwhile shows
    body = api.get(f"/api/v1/reviews/{reviews[0]}").json()
    assert set(body) == REVIEW_FIELDS
    assert (body["status"], body["runId"], body["jobId"]) == ("pending", run.pk, run.job.pk)
    assert (body["workflowId"], body["stepId"], body["entityId"]) == (
        run.workflow_id,
        "check",
        ids[0],
    )
    assert body["instructions"] == "Check Item 0"
    # What approving would commit: the run's change (slug) on the entity as stored now, the
    # edit made meanwhile to a key the run left alone (price) kept.
    assert body["proposed"] == {"title": "Item 0", "price": 50, "slug": "Item 0"}
    assert body["current"] == {"title": "Item 0", "price": 50}
    assert body["changes"] == [
        {"field": "slug", "before": None, "after": "Item 0"},
        {"field": "price", "before": 50, "after": 50},
    ]
    assert body["expiresAt"] is None and body["decidedAt"] is None and body["decidedBy"] is None
    run_body = api.get(f"/api/v1/workflows/{run.workflow_id}/runs/{run.pk}").json()
    assert run_body["status"] == "running"
    assert run_body["progress"] == {
        "total": 1,
        "completed": 0,
        "failed": 0,
        "cancelled": 0,
        "skipped": 0,
        "waiting": 1,
    }
    assert api.get(f"/api/v1/jobs/{run.job.pk}").json()["progress"]["waiting"] == 1
    items = api.get(f"/api/v1/workflows/{run.workflow_id}/runs/{run.pk}/items?status=waiting")
    assert [(i["status"], i["stepId"]) for i in items.json()] == [("waiting", "check")]


def test_reviews_list_newest_first_with_filters(api, product_type):
    run, ids, reviews = parked(product_type, n=3)
    other_run, _, other_reviews = parked(product_type, n=1)
    api.post(f"/api/v1/reviews/{reviews[0]}/reject")

    def listed(query=""):
        response = api.get(f"/api/v1/reviews{query}")
        assert response.status_code == 200, response.json()
        return [review["id"] for review in response.json()]

    assert listed() == [*other_reviews, *reversed(reviews)]
    assert listed(f"?runId={run.pk}") == list(reversed(reviews))
    assert listed(f"?workflowId={other_run.workflow_id}") == other_reviews
    # (ids made in one millisecond need not sort as they were made: look the review up)
    assert listed(f"?entityId={ids[1]}") == [Review.objects.get(run=run, entity_id=ids[1]).pk]
    assert listed("?status=rejected") == [reviews[0]]
    assert listed(f"?status=pending&runId={run.pk}") == [reviews[2], reviews[1]]
    page = api.get("/api/v1/reviews?limit=2")
    assert len(page.json()) == 2 and 'rel="next"' in page.headers["Link"]


@pytest.mark.parametrize(
    ("query", "field"),
    [("?status=bogus", "status"), ("?limit=0", "limit"), ("?cursor=%%%", "cursor")],
)
def test_bad_list_queries_are_400_naming_the_parameter(api, product_type, query, field):
    response = api.get(f"/api/v1/reviews{query}")
    assert response.status_code == 400
    assert response.json()["error"]["details"][0]["field"] == field


def test_an_unknown_review_is_404_everywhere(api):
    assert api.get("/api/v1/reviews/rev_nope").status_code == 404
    for action in ("approve", "reject"):
        response = api.post(f"/api/v1/reviews/rev_nope/{action}", {})
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "not_found"


def test_approve_with_edits_then_the_run_publishes_them(api, product_type):
    run, ids, reviews = parked(product_type, n=1)
    response = api.post(
        f"/api/v1/reviews/{reviews[0]}/approve",
        {"data": {"slug": "item-zero"}, "comment": "tidied"},
    )
    assert response.status_code == 200, response.json()
    body = response.json()
    assert (body["status"], body["comment"]) == ("approved", "tidied")
    assert body["decidedBy"] and body["decidedAt"]
    assert body["proposed"]["slug"] == "item-zero"
    run_waits_resume(run_id=run.pk)
    run_inline(run.pk)
    entity = api.get(f"/api/v1/entities/{ids[0]}").json()
    assert (entity["status"], entity["data"]["slug"]) == ("published", "item-zero")
    assert api.get(f"/api/v1/jobs/{run.job.pk}").json()["status"] == "completed"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"data": {"price": -5}}, "data.price"),
        ({"data": {"title": 3}}, "data.title"),
        ({"data": {"seo": {"title": []}}}, "data.seo.title"),
        ({"data": "not an object"}, "data"),
        ({"data": {"note": "nul \u0000 inside"}}, "data.note"),
        ({"comment": ["a list"]}, "comment"),
        ({"comment": "x" * 5001}, "comment"),
    ],
)
def test_bad_approvals_are_400_naming_the_field_and_decide_nothing(api, product_type, body, field):
    _, _, reviews = parked(product_type, n=1)
    response = api.post(f"/api/v1/reviews/{reviews[0]}/approve", body)
    assert response.status_code == 400
    assert response.json()["error"]["details"][0]["field"] == field
    assert Review.objects.get(pk=reviews[0]).status == "pending"


def test_an_approval_with_a_number_overflowing_to_infinity_is_a_400_and_decides_nothing(
    api, product_type
):
    """`1e400` is decoded as infinity, which the working copy's write refused (a 500)."""
    _, _, reviews = parked(product_type, n=1)
    api.raise_request_exception = False
    response = APIClient.post(
        api,
        f"/api/v1/reviews/{reviews[0]}/approve",
        data='{"data": {"price": 1e400}}',
        content_type="application/json",
    )
    assert response.status_code == 400, response.content[:300]
    assert response.json()["error"]["details"][0]["field"] == "data.price"
    assert Review.objects.get(pk=reviews[0]).status == "pending"


def test_a_review_is_decided_once(api, product_type):
    _, _, reviews = parked(product_type, n=2)
    assert api.post(f"/api/v1/reviews/{reviews[0]}/reject", {"comment": "no"}).status_code == 200
    for action in ("approve", "reject"):
        response = api.post(f"/api/v1/reviews/{reviews[0]}/{action}", {})
        assert response.status_code == 409
        assert response.json()["error"]["code"] == "not_pending"
        assert "already rejected" in response.json()["error"]["message"]
    assert api.post(f"/api/v1/reviews/{reviews[1]}/approve").status_code == 200


def test_decide_many_answers_what_it_decided_and_what_it_skipped(api, product_type, settings):
    settings.RUN_CHUNK_SIZE = 2
    run, _, reviews = parked(product_type, n=4)
    api.post(f"/api/v1/reviews/{reviews[0]}/approve")
    response = api.post(
        "/api/v1/reviews/decide",
        {"ids": [*reviews, "rev_nope"], "decision": "reject", "comment": "bulk"},
    )
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["decided"] == reviews[1:]
    assert [(s["id"], s["reason"]) for s in body["skipped"]] == [
        (reviews[0], "not_pending"),
        ("rev_nope", "not_found"),
    ]
    assert set(Review.objects.filter(pk__in=reviews[1:]).values_list("comment", flat=True)) == {
        "bulk"
    }
    # Three decided at once at chunks of two: queued by the decision; the single approval
    # waited for the resume task.
    assert run_waits_resume(run_id=run.pk) == 1
    run_inline(run.pk)
    statuses = sorted(RunItem.objects.filter(run=run).values_list("status", flat=True))
    assert statuses == ["completed", "skipped", "skipped", "skipped"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"ids": [], "decision": "approve"}, "ids"),
        ({"ids": ["rev_a"] * 1001, "decision": "approve"}, "ids"),
        ({"ids": "rev_a", "decision": "approve"}, "ids"),
        ({"ids": [5], "decision": "approve"}, "ids[0]"),
        ({"ids": ["rev_a"], "decision": "maybe"}, "decision"),
        ({"ids": ["rev_a"]}, "decision"),
    ],
)
def test_bad_bulk_decisions_are_400_naming_the_field(api, body, field):
    response = api.post("/api/v1/reviews/decide", body)
    assert response.status_code == 400
    assert response.json()["error"]["details"][0]["field"] == field


def test_a_read_only_key_reads_reviews_and_may_not_decide(read_only_api, product_type):
    _, _, reviews = parked(product_type, n=1)
    assert read_only_api.get("/api/v1/reviews").status_code == 200
    assert read_only_api.get(f"/api/v1/reviews/{reviews[0]}").status_code == 200
    for path, body in [
        (f"/api/v1/reviews/{reviews[0]}/approve", {}),
        (f"/api/v1/reviews/{reviews[0]}/reject", {}),
        ("/api/v1/reviews/decide", {"ids": reviews, "decision": "approve"}),
    ]:
        response = read_only_api.post(path, body)
        assert response.status_code == 403
        assert response.json()["error"]["code"] == "permission_denied"
    assert Review.objects.get(pk=reviews[0]).status == "pending"


def test_deciding_needs_its_own_permission(product_type):
    """A key that may do everything else but decide reviews gets 403 on decide."""
    raw = make_key("no-deciding")
    user = ApiKey.objects.get(prefix=raw[:12]).user
    user.user_permissions.remove(*user.user_permissions.filter(codename="decide_review"))
    api = Api(raw)
    _, _, reviews = parked(product_type, n=1)
    assert api.get(f"/api/v1/reviews/{reviews[0]}").status_code == 200
    assert api.post(f"/api/v1/reviews/{reviews[0]}/approve").status_code == 403
    assert (
        api.post("/api/v1/reviews/decide", {"ids": reviews, "decision": "approve"}).status_code
        == 403
    )


def test_only_the_step_s_group_may_decide_its_reviews(api, product_type):
    editors = Group.objects.create(name="editors")
    steps = [dict(step) for step in STEPS]
    steps[1] = {**steps[1], "config": {**steps[1]["config"], "group": "editors"}}
    _, _, reviews = parked(product_type, n=2, steps=steps)
    response = api.post(f"/api/v1/reviews/{reviews[0]}/approve")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "permission_denied"
    assert "editors" in response.json()["error"]["message"]
    bulk = api.post("/api/v1/reviews/decide", {"ids": reviews, "decision": "approve"}).json()
    assert bulk["decided"] == [] and {s["reason"] for s in bulk["skipped"]} == {"forbidden"}
    raw = api._credentials["HTTP_AUTHORIZATION"].split()[1]
    ApiKey.objects.get(prefix=raw[:12]).user.groups.add(editors)
    assert api.post(f"/api/v1/reviews/{reviews[0]}/approve").status_code == 200


def test_a_review_step_with_an_unknown_group_is_refused(api, product_type):
    steps = [{"id": "check", "type": "review", "config": {"instructions": "x", "group": "nobody"}}]
    response = api.post(
        "/api/v1/workflows",
        {"name": "w", "entityTypeId": product_type.pk, "steps": steps},
    )
    assert response.status_code == 400
    assert response.json()["error"]["details"][0]["field"] == "steps[0].config.group"


@pytest.mark.parametrize(
    ("config", "field"),
    [
        ({}, "steps[0].config.instructions"),
        ({"instructions": ""}, "steps[0].config.instructions"),
        ({"instructions": "{{ broken"}, "steps[0].config.instructions"),
        ({"instructions": "x", "timeoutMinutes": 0}, "steps[0].config.timeoutMinutes"),
        ({"instructions": "x", "onTimeout": "maybe"}, "steps[0].config.onTimeout"),
        ({"instructions": "x", "onReject": "ignore"}, "steps[0].config.onReject"),
        ({"instructions": "x", "fields": ["bad path!"]}, "steps[0].config.fields[0]"),
        ({"instructions": "x", "fields": []}, "steps[0].config.fields"),
    ],
)
def test_bad_review_configs_are_400_naming_the_field(api, product_type, config, field):
    steps = [{"id": "check", "type": "review", "config": config}]
    response = api.post(
        "/api/v1/workflows",
        {"name": "w", "entityTypeId": product_type.pk, "steps": steps},
    )
    assert response.status_code == 400
    assert response.json()["error"]["details"][0]["field"] == field


def test_the_test_endpoint_reports_the_review_and_goes_on_as_approved(api, product_type):
    workflow = make_workflow(product_type, STEPS)
    [entity_id] = make_entities(product_type, 1)
    response = api.post(f"/api/v1/workflows/{workflow.pk}/test", {"entityId": entity_id})
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["status"] == "completed"
    review = {step["stepId"]: step for step in body["steps"]}["check"]
    assert review["outcome"] == "completed"
    assert review["output"]["approved"] is True
    assert review["output"]["review"]["instructions"] == "Check Item 0"
    assert review["output"]["review"]["changes"] == [
        {"field": "slug", "before": None, "after": "Item 0"},
        {"field": "price", "before": 0, "after": 0},
    ]
    assert {step["stepId"]: step for step in body["steps"]}["pub"]["outcome"] == "completed"
    assert not Review.objects.exists()
