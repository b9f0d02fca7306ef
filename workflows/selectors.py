from django.db.models import Count, OuterRef, Prefetch, Subquery
from django.db.models.functions import Coalesce

from config.api.errors import FieldError, InvalidInput, NotFound
from config.digits import whole_number
from entities.events import Listener
from workflows.models import Step, Workflow, WorkflowVersion


def workflow_list(*, status: str | None = None, entity_type_id: str | None = None):
    """Workflows with `steps_count` annotated: one query per page.

    A correlated subquery, computed for the rows of the page only (a JOIN and GROUP BY would
    count the steps of every workflow before the LIMIT)."""
    steps_count = (
        Step.objects.filter(workflow=OuterRef("pk"))
        .order_by()
        .values("workflow")
        .annotate(count=Count("*"))
        .values("count")
    )
    workflows = Workflow.objects.annotate(steps_count=Coalesce(Subquery(steps_count), 0))
    if status:
        if status not in Workflow.Status.values:
            raise InvalidInput(
                "Invalid status filter.",
                details=[FieldError("status", "Use one of: " + ", ".join(Workflow.Status.values))],
            )
        workflows = workflows.filter(status=status)
    if entity_type_id:
        workflows = workflows.filter(entity_type_id=entity_type_id)
    return workflows


def workflow_detail_queryset():
    return workflow_list().prefetch_related(
        Prefetch("steps", queryset=Step.objects.order_by("position"))
    )


def workflow_get(*, workflow_id: str) -> Workflow:
    workflow = workflow_detail_queryset().filter(pk=workflow_id).first()
    if workflow is None:
        raise NotFound(f"No workflow {workflow_id!r} exists.")
    return workflow


def trigger_listeners(entity_type_id: str) -> list[Listener]:
    """The entity triggers (`entity.created`, `entity.updated` with its fields) of the active
    workflows of a type: which entity changes start what (one indexed query, inside the
    change's transaction)."""
    return [
        Listener(
            workflow_id,
            trigger["on"],
            frozenset(trigger["fields"]) if trigger.get("fields") else None,
        )
        for workflow_id, triggers in Workflow.objects.filter(
            entity_type_id=entity_type_id, status=Workflow.Status.ACTIVE
        )
        .exclude(triggers=[])
        .values_list("pk", "triggers")
        for trigger in triggers
        if trigger.get("on") != "schedule"
    ]


def version_number(raw: str) -> int:
    """A version number from a URL segment (any segment reaches the view, so that a key's
    permissions are checked before the segment's shape: a 404 teaches nothing to a key
    without them)."""
    number = whole_number(raw)
    if not number:
        raise NotFound(f"No version {raw!r}: a version is a positive whole number.")
    return number


def version_list(*, workflow: Workflow):
    """The workflow's versions, newest first (the API's pages are keyed on the row id, which
    grows with the number)."""
    return WorkflowVersion.objects.filter(workflow=workflow).select_related(
        "created_by", "workflow"
    )


def version_get(*, workflow: Workflow, number: int) -> WorkflowVersion:
    version = version_list(workflow=workflow).filter(number=number).first()
    if version is None:
        raise NotFound(
            f"No version {number} of workflow {workflow.pk!r}: it has versions 1 to "
            f"{workflow.latest_version}."
        )
    return version
