import pytest
from django.db import connection

from jobs.cancel import run_cancel
from jobs.lifecycle import run_end_if_done
from jobs.models import Job, Run, RunItem, RunLog
from tests.factories import make_entities, make_workflow, run_inline, start_run

pytestmark = pytest.mark.django_db

JOB_FIELDS = {
    "id",
    "type",
    "status",
    "progress",
    "workflowId",
    "runId",
    "experimentId",
    "trigger",
    "usage",
    "createdAt",
    "startedAt",
    "completedAt",
    "cancelRequestedAt",
    "error",
}
FAIL_EXPENSIVE = [
    {"id": "check", "type": "validate", "config": {"rules": [{"field": "price", "maximum": 1}]}},
    {"id": "pub", "type": "publish", "config": {}},
]


@pytest.fixture
def finished_run(product_type):
    workflow = make_workflow(product_type, FAIL_EXPENSIVE)
    ids = make_entities(product_type, 4)  # prices 0..3: two fail
    run = start_run(workflow, ids)
    run_inline(run.pk)
    return Run.objects.get(pk=run.pk)


def test_job_has_the_run_status_and_progress(api, finished_run):
    job = finished_run.job
    body = api.get(f"/api/v1/jobs/{job.pk}").json()
    assert set(body) == JOB_FIELDS
    assert body["type"] == "workflow_run"
    assert body["status"] == "failed"
    assert body["progress"] == {
        "total": 4,
        "completed": 2,
        "failed": 2,
        "cancelled": 0,
        "skipped": 0,
        "waiting": 0,
    }
    assert body["runId"] == finished_run.pk
    assert body["workflowId"] == finished_run.workflow_id
    assert body["error"] == "2 of 4 entities failed."
    assert body["startedAt"] <= body["completedAt"]


def test_job_list_filters(api, finished_run, product_type):
    other = start_run(make_workflow(product_type, FAIL_EXPENSIVE), make_entities(product_type, 1))
    all_jobs = api.get("/api/v1/jobs").json()
    assert [j["id"] for j in all_jobs] == [other.job.pk, finished_run.job.pk]
    assert [j["id"] for j in api.get("/api/v1/jobs?status=pending").json()] == [other.job.pk]
    by_workflow = api.get(f"/api/v1/jobs?workflowId={finished_run.workflow_id}").json()
    assert [j["id"] for j in by_workflow] == [finished_run.job.pk]
    assert api.get("/api/v1/jobs?status=bogus").status_code == 400


def test_logs_say_what_happened_and_filter_by_level_and_entity(api, finished_run):
    job = finished_run.job
    logs = api.get(f"/api/v1/jobs/{job.pk}/logs").json()
    messages = [log["message"] for log in logs]
    assert "Run started." in messages
    assert any(m.startswith("Run failed: 2 completed, 2 failed") for m in messages)
    errors = api.get(f"/api/v1/jobs/{job.pk}/logs?level=error").json()
    failures = [log for log in errors if log["entityId"]]
    assert len(failures) == 2
    assert all(
        log["stepId"] == "check" and "price: must be at most 1" in log["message"]
        for log in failures
    )
    entity_id = failures[0]["entityId"]
    for_entity = api.get(f"/api/v1/jobs/{job.pk}/logs?entityId={entity_id}").json()
    assert {log["entityId"] for log in for_entity} == {entity_id}
    assert set(logs[0]) == {"id", "timestamp", "level", "message", "entityId", "stepId"}
    assert api.get(f"/api/v1/jobs/{job.pk}/logs?level=loud").status_code == 400


def test_a_60000_line_log_pages_with_an_index_from_first_to_last_page(
    api, finished_run, django_assert_max_num_queries
):
    run = finished_run
    RunLog.objects.bulk_create(
        (
            RunLog(
                run=run,
                level="warning" if i % 3 else "info",
                message=f"line {i}",
                entity_id=f"ent_{i % 50}",
            )
            for i in range(60_000)
        ),
        batch_size=5000,
    )
    url = f"/api/v1/jobs/{run.job.pk}/logs?level=warning&limit=500"
    pages = 0
    seen = 0
    while url:
        with django_assert_max_num_queries(6):
            response = api.get(url)
        seen += len(response.json())
        pages += 1
        link = response.get("Link")
        url = link[1 : link.index(">")] if link else None
    assert seen == 40_000 and pages == 80
    # The page query is an index range scan, not a scan and sort of the run's log.
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE jobs_runlog")
    plan = (
        RunLog.objects.filter(run=run, level="warning", pk__lt=10**12).order_by("-pk")[:500]
    ).explain()
    assert "Index Scan" in plan and "Sort" not in plan and "Seq Scan" not in plan


def test_cancel_a_pending_job(api, product_type):
    run = start_run(make_workflow(product_type, FAIL_EXPENSIVE), make_entities(product_type, 3))
    response = api.post(f"/api/v1/jobs/{run.job.pk}/cancel")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "cancelled"
    assert body["progress"] == {
        "total": 3,
        "completed": 0,
        "failed": 0,
        "cancelled": 3,
        "skipped": 0,
        "waiting": 0,
    }
    assert set(RunItem.objects.filter(run=run).values_list("status", flat=True)) == {"cancelled"}
    run_inline(run.pk)  # a chunk delivered late does nothing
    assert Run.objects.get(pk=run.pk).status == "cancelled"


def test_cancelling_an_ended_job_is_409(api, finished_run):
    response = api.post(f"/api/v1/jobs/{finished_run.job.pk}/cancel")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "job_ended"


def test_a_cancelled_run_never_flips_back_to_completed(product_type):
    run = start_run(make_workflow(product_type, FAIL_EXPENSIVE), make_entities(product_type, 2))
    Run.objects.filter(pk=run.pk).update(status="running", completed=2)
    RunItem.objects.filter(run=run).update(status="completed")  # the work finished...
    run_cancel(run_id=run.pk)  # ...but the cancel landed first
    assert run_end_if_done(run_id=run.pk) is False
    assert Run.objects.get(pk=run.pk).status == "cancelled"


def test_read_only_key_cannot_cancel(read_only_api, finished_run):
    assert read_only_api.post(f"/api/v1/jobs/{finished_run.job.pk}/cancel").status_code == 403
    assert read_only_api.get(f"/api/v1/jobs/{finished_run.job.pk}").status_code == 200


def test_retry_runs_only_the_failed_entities_on_the_same_version(api, finished_run):
    workflow_id = finished_run.workflow_id
    api.patch(f"/api/v1/workflows/{workflow_id}", {"steps": [{"type": "publish", "config": {}}]})
    response = api.post(f"/api/v1/workflows/{workflow_id}/runs/{finished_run.pk}/retry", {})
    assert response.status_code == 202
    retry = Run.objects.get(pk=response.json()["runId"])
    assert Job.objects.get(pk=response.json()["jobId"]).run == retry
    failed = set(
        RunItem.objects.filter(run=finished_run, status="failed").values_list(
            "entity_id", flat=True
        )
    )
    assert set(RunItem.objects.filter(run=retry).values_list("entity_id", flat=True)) == failed
    assert retry.workflow_version == finished_run.workflow_version
    assert retry.retry_of == finished_run

    # A run is retried once; the retry's own retry goes on (here on the latest version).
    again = api.post(f"/api/v1/workflows/{workflow_id}/runs/{finished_run.pk}/retry", {})
    assert (again.status_code, again.json()["error"]["code"]) == (409, "already_retried")
    assert retry.pk in again.json()["error"]["message"]
    run_inline(retry.pk)
    latest = api.post(
        f"/api/v1/workflows/{workflow_id}/runs/{retry.pk}/retry", {"useLatestVersion": True}
    ).json()
    assert Run.objects.get(pk=latest["runId"]).workflow_version.number == 2


def test_retry_with_nothing_failed_or_not_ended_is_409(api, product_type):
    workflow = make_workflow(product_type, [{"type": "publish", "config": {}}])
    run = start_run(workflow, make_entities(product_type, 2))
    url = f"/api/v1/workflows/{workflow.pk}/runs/{run.pk}/retry"
    assert api.post(url, {}).json()["error"]["code"] == "run_not_ended"
    run_inline(run.pk)
    response = api.post(url, {})
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "nothing_to_retry"
