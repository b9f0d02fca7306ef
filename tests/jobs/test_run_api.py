import json

import pytest
from django.db import connection, transaction
from django.utils import timezone

from jobs.models import Job, Run, RunItem, RunLog
from jobs.services import run_callback_send
from tests.factories import make_entities, make_entity_type, make_workflow, run_inline, start_run
from workflows.services import workflow_archive

pytestmark = pytest.mark.django_db

PUBLISH = [{"type": "publish", "config": {}}]


@pytest.fixture
def workflow(product_type):
    return make_workflow(product_type, PUBLISH)


def _run(api, workflow, body, **headers):
    return api.post(f"/api/v1/workflows/{workflow.pk}/run", body, **headers)


def test_run_answers_202_with_job_and_run_and_stores_one_item_per_entity(
    api, workflow, product_type
):
    ids = make_entities(product_type, 5)
    response = _run(api, workflow, {"entityIds": ids})
    assert response.status_code == 202
    body = response.json()
    assert set(body) == {"jobId", "runId"}
    run = Run.objects.get(pk=body["runId"])
    assert Job.objects.get(pk=body["jobId"]).run == run
    assert run.status == "pending" and run.total == 5
    assert sorted(RunItem.objects.filter(run=run).values_list("entity_id", flat=True)) == sorted(
        ids
    )


def test_deleting_a_run_through_the_orm_deletes_its_items(api, workflow, product_type):
    """The items' key to their run is not checked by the database (a trigger per item at
    commit): the ORM's cascade is what keeps an item from pointing at no run."""
    body = _run(api, workflow, {"entityIds": make_entities(product_type, 3)}).json()
    kept = _run(api, workflow, {"entityIds": make_entities(product_type, 2)}).json()
    Run.objects.filter(pk=body["runId"]).delete()
    assert not RunItem.objects.filter(run_id=body["runId"]).exists()
    assert RunItem.objects.filter(run_id=kept["runId"]).count() == 2


def test_run_status_has_the_documented_fields(api, workflow, product_type):
    ids = make_entities(product_type, 3)
    run_id = _run(api, workflow, {"entityIds": ids}).json()["runId"]
    body = api.get(f"/api/v1/workflows/{workflow.pk}/runs/{run_id}").json()
    assert set(body) >= {
        "id",
        "status",
        "progress",
        "startedAt",
        "completedAt",
        "jobId",
        "workflowId",
        "workflowVersion",
        "createdAt",
    }
    assert body["status"] == "pending"
    assert body["progress"] == {
        "total": 3,
        "completed": 0,
        "failed": 0,
        "cancelled": 0,
        "skipped": 0,
        "waiting": 0,
    }
    assert body["startedAt"] is None and body["completedAt"] is None

    run_inline(run_id)
    body = api.get(f"/api/v1/workflows/{workflow.pk}/runs/{run_id}").json()
    assert body["status"] == "completed"
    assert body["progress"] == {
        "total": 3,
        "completed": 3,
        "failed": 0,
        "cancelled": 0,
        "skipped": 0,
        "waiting": 0,
    }
    assert body["startedAt"] <= body["completedAt"]
    assert body["workflowVersion"] == 1


def test_last_run_at_moves(api, workflow, product_type):
    ids = make_entities(product_type, 1)
    assert api.get(f"/api/v1/workflows/{workflow.pk}").json()["lastRunAt"] is None
    _run(api, workflow, {"entityIds": ids})
    run = Run.objects.get()
    listed = api.get("/api/v1/workflows").json()[0]
    assert listed["lastRunAt"] == int(run.created_at.timestamp() * 1000)


@pytest.mark.parametrize("entity_ids", [[], "ent_x", None, [1, {"a": 1}]])
def test_entity_ids_must_be_a_non_empty_list_of_strings(api, workflow, entity_ids):
    response = _run(api, workflow, {"entityIds": entity_ids})
    assert response.status_code == 400
    assert response.json()["error"]["details"][0]["field"].startswith("entityIds")
    assert Run.objects.count() == 0


def test_more_than_ten_thousand_ids_is_400(api, workflow):
    response = _run(api, workflow, {"entityIds": [f"ent_{i}" for i in range(10_001)]})
    assert response.status_code == 400
    assert response.json()["error"]["details"][0]["field"] == "entityIds"


def test_duplicate_ids_are_named(api, workflow, product_type):
    ids = make_entities(product_type, 2)
    response = _run(api, workflow, {"entityIds": [ids[0], ids[1], ids[0]]})
    assert response.status_code == 400
    assert ids[0] in response.json()["error"]["message"]


def test_unknown_and_wrong_type_ids_are_named(api, workflow, product_type):
    good = make_entities(product_type, 1)
    other = make_entities(make_entity_type(schema=None), 1)
    response = _run(api, workflow, {"entityIds": [*good, "ent_missing", *other]})
    assert response.status_code == 400
    error = response.json()["error"]
    assert [d["field"] for d in error["details"]] == ["entityIds[1]", "entityIds[2]"]
    assert "ent_missing" in error["message"] and other[0] in error["message"]
    assert Run.objects.count() == 0


def test_archived_workflow_cannot_run(api, workflow, product_type):
    workflow_archive(workflow_id=workflow.pk)
    response = _run(api, workflow, {"entityIds": make_entities(product_type, 1)})
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "archived"


def test_an_archived_workflow_s_run_is_not_retried_but_may_be_reverted(api, product_type):
    """docs/api.md, Workflows: archiving is how a bad workflow is stopped; undoing what its
    runs did must not need it unarchived (its triggers would fire again)."""
    steps = [
        {
            "id": "check",
            "type": "validate",
            "config": {"rules": [{"field": "price", "maximum": 1}]},
        },
        *PUBLISH,
    ]
    workflow = make_workflow(product_type, steps)
    run = start_run(workflow, make_entities(product_type, 3))  # prices 0..2: one fails
    run_inline(run.pk)
    workflow_archive(workflow_id=workflow.pk)
    runs = f"/api/v1/workflows/{workflow.pk}/runs/{run.pk}"
    retried = api.post(f"{runs}/retry", {})
    assert retried.status_code == 409
    assert retried.json()["error"]["code"] == "archived"
    assert api.post(f"{runs}/revert", {}).status_code == 202


@pytest.mark.parametrize(
    "url",
    [
        "not a url",
        "http://localhost:99999/x",
        "http://localhost:0/x",
        "http://alice:pa55@hooks.example.com/x",
        "https://alice@hooks.example.com/x",
    ],
)
def test_bad_callback_url(url, api, workflow, product_type):
    ids = make_entities(product_type, 1)
    response = _run(api, workflow, {"entityIds": ids, "callbackUrl": url})
    assert response.status_code == 400
    assert response.json()["error"]["details"][0]["field"] == "callbackUrl"
    assert "pa55" not in response.content.decode()


def test_good_callback_url(api, workflow, product_type):
    ids = make_entities(product_type, 1)
    response = _run(
        api, workflow, {"entityIds": ids, "callbackUrl": "https://h.example.com:8443/c"}
    )
    assert response.status_code == 202


@pytest.mark.parametrize(
    "url", ["http://localhost:99999/c", "http://alice:pa55@localhost/c", "http://127.0.0.1/c"]
)
def test_a_callback_that_cannot_be_sent_is_logged_on_the_run(url, workflow, product_type):
    """A URL stored before the checks (or one a check misses) ends in the run's log."""
    run = start_run(workflow, make_entities(product_type, 1))
    Run.objects.filter(pk=run.pk).update(callback_url=url, callback_due_at=timezone.now())
    run_callback_send(run_id=run.pk)
    [line] = RunLog.objects.filter(run=run, message__startswith="Callback not delivered")
    assert line.level == "warning" and "pa55" not in line.message


def test_read_only_key_cannot_run(read_only_api, workflow, product_type):
    response = _run(read_only_api, workflow, {"entityIds": make_entities(product_type, 1)})
    assert response.status_code == 403


def test_idempotency_key_returns_the_first_answer_and_creates_nothing_new(
    api, workflow, product_type
):
    ids = make_entities(product_type, 2)
    first = _run(api, workflow, {"entityIds": ids}, HTTP_IDEMPOTENCY_KEY="run-1")
    again = _run(api, workflow, {"entityIds": ids}, HTTP_IDEMPOTENCY_KEY="run-1")
    assert first.status_code == again.status_code == 202
    assert first.json() == again.json()
    assert again["Idempotent-Replayed"] == "true"
    assert Run.objects.count() == 1


@pytest.mark.parametrize("key", ["", "a" * 256, "run\x00one", "run\none", "tab\there"])
def test_an_unusable_idempotency_key_is_a_400_naming_the_header(api, workflow, product_type, key):
    ids = make_entities(product_type, 1)
    response = _run(api, workflow, {"entityIds": ids}, HTTP_IDEMPOTENCY_KEY=key)
    assert response.status_code == 400, response.content
    [detail] = response.json()["error"]["details"]
    assert detail["field"] == "Idempotency-Key"
    assert Run.objects.count() == 0
    good = _run(api, workflow, {"entityIds": ids}, HTTP_IDEMPOTENCY_KEY="run-1 ok")
    assert good.status_code == 202


def test_runs_list_and_items_with_status_filter(api, product_type):
    workflow = make_workflow(
        product_type,
        [
            {
                "type": "condition",
                "config": {"if": {"field": "price", "operator": "gt", "value": 0}},
            },
            {"type": "publish", "config": {}},
        ],
    )
    ids = make_entities(product_type, 3)  # prices 0, 1, 2: the first is stopped
    run_id = _run(api, workflow, {"entityIds": ids}).json()["runId"]
    run_inline(run_id)
    runs = api.get(f"/api/v1/workflows/{workflow.pk}/runs").json()
    assert [run["id"] for run in runs] == [run_id]
    # The stopped entity is completed, and counted among the skipped.
    assert runs[0]["progress"] == {
        "total": 3,
        "completed": 3,
        "failed": 0,
        "cancelled": 0,
        "skipped": 1,
        "waiting": 0,
    }
    items = api.get(f"/api/v1/workflows/{workflow.pk}/runs/{run_id}/items").json()
    assert len(items) == 3
    assert set(items[0]) == {
        "entityId",
        "status",
        "stepId",
        "error",
        "attempts",
        "startedAt",
        "completedAt",
        "waitingFor",
    }
    skipped = api.get(f"/api/v1/workflows/{workflow.pk}/runs/{run_id}/items?status=skipped").json()
    assert [(i["entityId"], i["stepId"]) for i in skipped] == [(ids[0], "condition_1")]
    assert (
        api.get(f"/api/v1/workflows/{workflow.pk}/runs/{run_id}/items?status=x").status_code == 400
    )


def test_run_of_another_workflow_is_404(api, workflow, product_type):
    other = make_workflow(product_type, PUBLISH)
    run_id = _run(api, workflow, {"entityIds": make_entities(product_type, 1)}).json()["runId"]
    assert api.get(f"/api/v1/workflows/{other.pk}/runs/{run_id}").status_code == 404
    assert api.get("/api/v1/workflows/wf_missing/runs").status_code == 404


def test_a_run_of_a_few_ids_reads_those_entities_not_every_entity_of_the_type(
    workflow, product_type
):
    """The start's INSERT looks each id up by primary key. Planned as a join, on statistics
    taken before an import (the type had one entity then), it hashed every entity of the
    type: a million for a run of ten. Counted from the plan of the statement the start sent."""
    make_entities(product_type, 1)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE entities_entity")
    make_entities(product_type, 300)  # imported since: the statistics do not know them
    ids = make_entities(product_type, 5)
    statements = []

    def capture(execute, sql, params, many, context):
        if sql.startswith("WITH ins AS (INSERT INTO"):
            statements.append((sql, params))
        return execute(sql, params, many, context)

    with transaction.atomic(), connection.execute_wrapper(capture):
        start_run(workflow, ids)
        transaction.set_rollback(True)  # the same INSERT again, explained, below
    [(sql, params)] = statements
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (ANALYZE, FORMAT JSON) {sql}", params)
        plan = cursor.fetchone()[0]
        transaction.set_rollback(True)
    plan = json.loads(plan) if isinstance(plan, str) else plan
    read, nodes = 0, [plan[0]["Plan"]]
    while nodes:
        node = nodes.pop()
        nodes += node.get("Plans", [])
        if node.get("Relation Name") == "entities_entity":
            read += node["Actual Rows"] * node["Actual Loops"]
    assert read == len(ids)
