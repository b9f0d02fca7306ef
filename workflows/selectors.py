from django.db.models import Count, OuterRef, Prefetch, Subquery
from django.db.models.functions import Coalesce

from config.api.errors import FieldError, InvalidInput, NotFound
from workflows.models import Step, Workflow


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
