"""Retrying a run: a new run (and job) over the entities that failed in one that ended.

Up to RUN_MAX_IDS failed entities are one list of ids, started as a request's would be (its
items made in the request, `total` known at once). More, as a retry of a large run over a
filter may have, are made like a filter run's items (`jobs.filter_runs`): in batches read
from the failed items, so the web process never holds the ids of a run of any size."""

from django.conf import settings
from django.db import transaction

from config.api.errors import Conflict
from entities.models import Entity
from jobs.costs import budget_columns
from jobs.filter_runs import run_start_in_batches
from jobs.models import ItemStatus, Run, RunItem, RunLog, TriggerType
from jobs.services import run_start, workflow_runnable


@transaction.atomic
def run_retry(*, run_id: str, use_latest_version: bool = False, created_by=None) -> Run:
    """A new run over the entities that failed in `run_id` (and still exist), on the same
    workflow version unless `use_latest_version`."""
    original = Run.objects.select_related("workflow_version").get(pk=run_id)
    if not original.is_ended:
        raise Conflict("The run has not ended yet; retry it once it has.", code="run_not_ended")
    failed = RunItem.objects.filter(run_id=run_id, status=ItemStatus.FAILED).filter(
        entity_id__in=Entity.objects.values("pk")
    )
    count = failed.count()
    if not count:
        raise Conflict(
            "The run has no failed entities (that still exist) to retry.", code="nothing_to_retry"
        )
    version = None if use_latest_version else original.workflow_version
    started = {
        "callback_url": original.callback_url,
        "created_by": created_by,
        "retry_of": original,
        "trigger": {"type": TriggerType.RETRY, "runId": original.pk},
    }
    if count <= settings.RUN_MAX_IDS:
        ids = list(failed.order_by("pk").values_list("entity_id", flat=True))
        run = run_start(
            workflow_id=original.workflow_id, entity_ids=ids, version=version, **started
        )
    else:
        workflow = workflow_runnable(workflow_id=original.workflow_id)
        version = version or workflow.versions.get(number=workflow.version)
        run = run_start_in_batches(
            workflow=workflow,
            version=version,
            entities=count,
            items_limit=count,
            **started,
            **budget_columns(version, None),
        )
    RunLog.objects.create(
        run_id=run.pk,
        message=f"Retry of {original.pk}: {count} failed entities, workflow version "
        f"{run.workflow_version.number}.",
    )
    return run
