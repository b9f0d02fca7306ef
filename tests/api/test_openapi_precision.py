"""The served schema says what the server does, as a client generated from it
(openapi-python-client) reads it: a field every response carries is required (else the SDK
types it `X | Unset`), and a field a response may leave out is not."""

import pytest

pytestmark = pytest.mark.django_db


def component(document, name):
    return document["components"]["schemas"][name]


def test_every_field_a_response_always_carries_is_required(api, world, document):
    """Model fields with a default (`run.status`, `job.type`, `log.level`, ...) came out
    optional: drf-spectacular's rule for a request (may be left out) was the response's too."""
    workflow, finished = world["workflow"], world["finished"]
    served = {
        "Entity": api.get("/api/v1/entities").json(),
        "Workflow": api.get("/api/v1/workflows").json(),
        "WorkflowDetail": [api.get(f"/api/v1/workflows/{workflow.pk}").json()],
        "EntityType": api.get("/api/v1/entity-types").json(),
        "Run": api.get(f"/api/v1/workflows/{workflow.pk}/runs").json(),
        "RunItem": api.get(f"/api/v1/workflows/{workflow.pk}/runs/{finished.pk}/items").json(),
        "Job": api.get("/api/v1/jobs").json(),
        "RunLog": api.get(f"/api/v1/jobs/{finished.job.pk}/logs").json(),
        "Review": api.get("/api/v1/reviews").json(),
        "WorkflowVersion": api.get(f"/api/v1/workflows/{workflow.pk}/versions").json(),
    }
    not_required = {}
    for name, rows in served.items():
        assert rows, name
        always = set.intersection(*(set(row) for row in rows))
        missing = sorted(always - set(component(document, name).get("required", [])))
        if missing:
            not_required[name] = missing
    assert not_required == {}


def test_a_field_a_response_may_leave_out_stays_optional(api, world, document):
    """A trigger names its `cron` only for a schedule, a revision's source its `runId` only
    for a run's change: served without them, they are not required."""
    trigger = api.get(f"/api/v1/workflows/{world['workflow'].pk}/runs").json()[0]["trigger"]
    assert "cron" not in trigger
    assert "cron" not in component(document, "Trigger")["required"]
    assert "runId" not in component(document, "RevisionSource")["required"]
