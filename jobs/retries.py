"""Retrying a run: a new run (and job) over the entities that failed in one that ended.

Up to RUN_MAX_IDS failed entities are one list of ids, started as a request's would be (its
items made in the request, `total` known at once). More, as a retry of a large run over a
filter may have, are made like a filter run's items (`jobs.filter_runs`): in batches read
from the failed items, so the web process never holds the ids of a run of any size.

A run is retried once: its retry holds `retry_of`, which is unique, so of concurrent
retries of one run exactly one starts (the others wait on the index, then answer 409
`already_retried` naming it); to go on, retry the retry. A retry inherits what is left of
its run's budget (the budget minus what the run spent), so a chain of retries never spends
more than the first run was allowed.

A revert is not retried: its retry would be a run of the workflow's steps over the entities
it failed to revert (new answers generated, notifications sent), the opposite of what was
asked. Reverting the run again reverts them instead (those reverted already are skipped as
changed since, or, forced, have nothing left to change).
"""

from decimal import Decimal

from django.conf import settings
from django.db import IntegrityError, transaction

from config.api.errors import Conflict
from entities.models import Entity
from jobs.costs import budget_columns
from jobs.filter_runs import run_start_in_batches
from jobs.models import ItemStatus, Run, RunItem, RunLog, TriggerType
from jobs.reverts import revert_forced, revert_of
from jobs.services import run_start, workflow_runnable
from workflows.pricing import NANOS_PER_USD


def run_retry(*, run_id: str, use_latest_version: bool = False, created_by=None) -> Run:
    """A new run over the entities that failed in `run_id` (and still exist), on the same
    workflow version unless `use_latest_version`, within what is left of its budget. 409
    if the run was retried already."""
    try:
        return _run_retry(
            run_id=run_id, use_latest_version=use_latest_version, created_by=created_by
        )
    except IntegrityError:
        # Another retry of the run committed first (the unique `retry_of`).
        if not Run.objects.filter(retry_of_id=run_id).exists():
            raise
        _check_not_retried(run_id)
        raise


def _check_not_retried(run_id: str) -> None:
    retry = Run.objects.filter(retry_of_id=run_id).values_list("pk", flat=True).first()
    if retry is not None:
        raise Conflict(
            f"The run was retried already, by run {retry}; retry that run instead.",
            code="already_retried",
        )


def budget_left(run: Run) -> dict | None:
    """What is left of the run's budget, as a request's `budget` (None: it had none)."""
    left = {}
    if run.budget_max_tokens is not None:
        left["maxTokens"] = max(0, run.budget_max_tokens - run.spent_tokens)
    if run.budget_max_cost_nano_usd is not None:
        nanos = max(0, run.budget_max_cost_nano_usd - run.spent_cost_nano_usd)
        left["maxCostUsd"] = Decimal(nanos) / NANOS_PER_USD
    return left or None


@transaction.atomic
def _run_retry(*, run_id: str, use_latest_version: bool, created_by) -> Run:
    original = Run.objects.select_related("workflow_version").get(pk=run_id)
    if not original.is_ended:
        raise Conflict("The run has not ended yet; retry it once it has.", code="run_not_ended")
    reverted = revert_of(original)
    if reverted is not None:
        raise Conflict(
            f"The run is a revert of run {reverted}: a retry would run the workflow's steps "
            f"on its failed entities, not revert them. Revert run {reverted} again instead"
            + (", forced as this one was" if revert_forced(original) else "")
            + " (the entities it reverted already are left as they are).",
            code="revert_not_retried",
        )
    _check_not_retried(run_id)
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
        "callback_secret": original.callback_secret,
        "created_by": created_by,
        "retry_of": original,
        "trigger": {"type": TriggerType.RETRY, "runId": original.pk},
    }
    budget = budget_left(original)
    if count <= settings.RUN_MAX_IDS:
        ids = list(failed.order_by("pk").values_list("entity_id", flat=True))
        run = run_start(
            workflow_id=original.workflow_id,
            entity_ids=ids,
            version=version,
            budget=budget,
            **started,
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
            **budget_columns(version, budget),
        )
    RunLog.objects.create(
        run_id=run.pk,
        message=f"Retry of {original.pk}: {count} failed entities, workflow version "
        f"{run.workflow_version.number}"
        + (f", within what is left of its budget ({_shown(budget)})." if budget else "."),
    )
    return run


def _shown(budget: dict) -> str:
    return ", ".join(f"{key} {value:g}" for key, value in budget.items())
