"""Starting an experiment from what a client sends: the API's JSON body, or the admin's form
made into that body. One serializer checks both and one service starts it, so the admin
refuses what the API refuses, with the same messages."""

from rest_framework.exceptions import ValidationError

from config.api.errors import FieldError, InvalidInput
from config.api.exceptions import invalid_input
from config.api.serializers import validated
from jobs.experiments.models import Experiment
from jobs.experiments.serializers import ExperimentStartSerializer
from jobs.experiments.services import experiment_start
from workflows.models import Workflow, WorkflowVersion


def experiment_create(*, workflow: Workflow, body, created_by) -> Experiment:
    """Check `body` as `POST /workflows/:id/experiments` takes it and start the experiment;
    InvalidInput names each problem by its path (`scorers[0].instructions`)."""
    try:
        data = validated(ExperimentStartSerializer, body)
    except ValidationError as exc:
        raise invalid_input(exc) from None
    return experiment_start(
        workflow=workflow,
        baseline=_version(workflow, data.get("baseline", workflow.version), "baseline"),
        candidate=_version(workflow, data["candidate"], "candidate"),
        scorers=[dict(scorer) for scorer in data["scorers"]],
        entity_ids=data.get("entityIds"),
        entity_filter=dict(data["filter"]) if "filter" in data else None,
        sample=data.get("sample"),
        budget=data.get("budget"),
        created_by=created_by,
    )


def _version(workflow: Workflow, number: int, field: str) -> WorkflowVersion:
    version = WorkflowVersion.objects.filter(workflow=workflow, number=number).first()
    if version is None:
        message = f"This workflow has no version {number}."
        raise InvalidInput(f"{field}: {message}", details=[FieldError(field, message, "invalid")])
    return version
