"""Starting runs and sending their callbacks (moves of a run's status: `jobs/lifecycle.py`;
cancel: `jobs/cancel.py`; retries: `jobs/retries.py`; runs over a filter:
`jobs/filter_runs.py`). What runs a chunk is the engine (`jobs/engine/`)."""

import json
import logging
from collections import Counter
from functools import partial

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, Q

from config.api.errors import Conflict, FieldError, InvalidInput
from entities.models import Entity
from entities.selectors import entity_ids_of_type
from jobs import queue
from jobs.costs import budget_columns
from jobs.item_rows import item_columns, items_skip_held, open_runs_lock
from jobs.models import (
    ItemStatus,
    Job,
    Run,
    RunItem,
    RunLog,
    api_trigger,
)
from jobs.serializers import RunSerializer
from workflows.models import Workflow, WorkflowVersion
from workflows.outbound import display_url, post_json
from workflows.signatures import webhook_headers
from workflows.steps.chunking import chunk_size
from workflows.steps.runtime import StepError

logger = logging.getLogger(__name__)
MAX_NAMED_IDS = 50


def entity_ids_check(entity_ids: list[str], limit: int) -> None:
    """InvalidInput unless 1 to `limit` ids, each named once (detail code `duplicate` per
    repeated id): a run, an estimate and an experiment take their `entityIds` alike."""
    if not 1 <= len(entity_ids) <= limit:
        message = f"Give 1 to {limit} entity ids, not {len(entity_ids)}."
        raise InvalidInput(f"entityIds: {message}", details=[FieldError("entityIds", message)])
    duplicates = [entity_id for entity_id, n in Counter(entity_ids).items() if n > 1]
    if duplicates:
        raise InvalidInput(
            f"entityIds: {len(duplicates)} ids appear more than once: "
            + ", ".join(duplicates[:MAX_NAMED_IDS]),
            details=[
                FieldError("entityIds", f"{entity_id!r} appears more than once.", "duplicate")
                for entity_id in duplicates[:MAX_NAMED_IDS]
            ],
        )


def _check_entities_exist(workflow: Workflow, entity_ids: list[str]) -> None:
    """InvalidInput naming the ids that are not entities of the workflow's entity type."""
    found = entity_ids_of_type(entity_type_id=workflow.entity_type_id, entity_ids=entity_ids)
    bad = [
        (index, entity_id) for index, entity_id in enumerate(entity_ids) if entity_id not in found
    ]
    if bad:
        raise InvalidInput(
            f"entityIds: {len(bad)} ids are not entities of this workflow's entity type "
            f"({workflow.entity_type_id}): " + ", ".join(e for _, e in bad[:MAX_NAMED_IDS]),
            details=[
                FieldError(
                    f"entityIds[{index}]",
                    f"No entity {entity_id!r} of entity type {workflow.entity_type_id} exists.",
                    "does_not_exist",
                )
                for index, entity_id in bad[:MAX_NAMED_IDS]
            ],
        )


def run_entities_check(workflow: Workflow, entity_ids: list[str]) -> None:
    """What run_start checks of the ids, for an estimate: InvalidInput naming the bad ones."""
    entity_ids_check(entity_ids, settings.RUN_MAX_IDS)
    _check_entities_exist(workflow, entity_ids)


def run_version(workflow: Workflow, number: int | None) -> WorkflowVersion | None:
    """The version a run asked for by number (None: the live one, chosen as the run starts).
    400 naming `version` if the workflow has no such version."""
    if number is None:
        return None
    version = workflow.versions.filter(number=number).first()
    if version is None:
        message = f"The workflow has versions 1 to {workflow.latest_version}, not {number}."
        raise InvalidInput(f"version: {message}", details=[FieldError("version", message)])
    return version


@transaction.atomic
def run_start(
    *,
    workflow_id: str,
    entity_ids: list[str],
    callback_url: str = "",
    callback_secret: str = "",
    created_by=None,
    retry_of: Run | None = None,
    version: WorkflowVersion | None = None,
    trigger: dict | None = None,
    budget: dict | None = None,
) -> Run:
    """Store a run, its job and one item per entity in one transaction (bulk inserts), and
    queue its chunks once that commits. The run executes the version current now (or
    `version`), whatever is edited later. `trigger` says what started it (default: the API)."""
    workflow = workflow_runnable(workflow_id=workflow_id)
    # A request names up to RUN_MAX_IDS, and so does a retry (a larger one is made in
    # batches: jobs/retries.py).
    entity_ids_check(entity_ids, settings.RUN_MAX_IDS)
    if connection.vendor != "postgresql":
        _check_entities_exist(workflow, entity_ids)
    if version is None:
        version = WorkflowVersion.objects.get(workflow=workflow, number=workflow.version)
    size = chunk_size(version.steps, len(entity_ids))
    run = Run.objects.create(
        workflow=workflow,
        workflow_version=version,
        total=len(entity_ids),
        chunk_size=size,
        callback_url=callback_url,
        callback_secret=callback_secret,
        created_by=created_by,
        retry_of=retry_of,
        trigger=trigger or api_trigger(),
        **budget_columns(version, budget),
    )
    Job.objects.create(run=run)
    made, skipped = _insert_items(run, workflow, entity_ids, size)
    if made < len(entity_ids):
        _check_entities_exist(workflow, entity_ids)  # raises, naming them; all is rolled back
        raise Conflict("Entities were deleted while the run started; start it again.")
    if skipped:
        items_skipped_count(run, skipped)
    chunks = (len(entity_ids) + size - 1) // size
    workflow_mark_run(workflow_id=workflow.pk, run=run)
    transaction.on_commit(partial(queue.chunks_enqueue, run.pk, range(chunks)))
    return run


def workflow_runnable(*, workflow_id: str) -> Workflow:
    """The workflow, or 409 if it is archived."""
    workflow = Workflow.objects.get(pk=workflow_id)
    if workflow.status == Workflow.Status.ARCHIVED:
        raise Conflict("This workflow is archived; unarchive it to run it.", code="archived")
    return workflow


def workflow_mark_run(*, workflow_id: str, run: Run) -> None:
    """Move the workflow's `last_run_at`. Last in a run's start, so the workflow's row is
    locked only until COMMIT (runs may start side by side)."""
    Workflow.objects.filter(pk=workflow_id).filter(
        Q(last_run_at__isnull=True) | Q(last_run_at__lt=run.created_at)
    ).update(last_run_at=run.created_at)


def _insert_items(run: Run, workflow: Workflow, entity_ids: list[str], size: int) -> tuple:
    """One pending item per entity, chunk by chunk in the order given; returns how many, and
    how many of them were made `skipped` (their entity held by another open run of the
    workflow: `jobs.item_rows`).

    On PostgreSQL one INSERT ... SELECT takes the ids as one JSON array (a list of 10,000
    strings quoted one by one as an array literal cost the web process 28 ms; as JSON, 2)
    and joins them to the workflow's entities, so checking that they exist and writing
    10,000 items is a single statement (ids that are not entities of the type are left out:
    the caller compares the count). Each id is looked up by primary key (the `OFFSET 0`
    keeps the planner from flattening the lookup into a join): with statistics taken before
    a bulk import, a join was planned as a hash of every entity of the type, a million for a
    run of ten. Elsewhere the ids were checked before and the items go in batches."""
    open_runs = open_runs_lock(run.workflow_id, besides=run.pk)
    if connection.vendor != "postgresql":
        RunItem.objects.bulk_create(
            (
                RunItem(run=run, entity_id=entity_id, chunk=index // size)
                for index, entity_id in enumerate(entity_ids)
            ),
            batch_size=2000,
        )
        return len(entity_ids), items_skip_held(run, open_runs) if open_runs else 0
    quote = connection.ops.quote_name
    columns, values, params, join, join_params = item_columns(
        run, chunk_sql="((v.n - 1) / %s)::integer", chunk_params=[size], open_runs=open_runs
    )
    with connection.cursor() as cursor:
        cursor.execute(
            f"WITH ins AS (INSERT INTO {quote(RunItem._meta.db_table)} "  # noqa: S608
            f"({', '.join(columns)}) SELECT {', '.join(values)} "
            "FROM jsonb_array_elements_text(%s::jsonb) WITH ORDINALITY AS v(id, n) "
            f"JOIN LATERAL (SELECT e.id FROM {quote(Entity._meta.db_table)} AS e "
            "WHERE e.id = v.id AND e.entity_type_id = %s OFFSET 0) AS e ON true "
            f"{join} ORDER BY v.n "
            f"RETURNING {quote('status')}) "
            "SELECT count(*), count(*) FILTER (WHERE status = %s) FROM ins",
            [
                *params,
                json.dumps(entity_ids),
                workflow.entity_type_id,
                *join_params,
                ItemStatus.SKIPPED,
            ],
        )
        return cursor.fetchone()


def items_skipped_count(run: Run, skipped: int) -> None:
    """Count items made `skipped` (as completed: they are done) and say so in the log."""
    Run.objects.filter(pk=run.pk).update(
        completed=F("completed") + skipped, skipped=F("skipped") + skipped
    )
    RunLog.objects.create(
        run_id=run.pk,
        level=RunLog.Level.WARNING,
        message=f"{skipped} entities left out (items skipped): each is in another open run "
        "of this workflow, named in its item's error.",
    )


def run_callback_send(*, run_id: str, owed: bool = False) -> None:
    """POST the final run to its callback URL; the outcome goes into the run's log, and
    with it the callback is no longer owed. `owed`: only if it still is (a message queued
    twice, by the run's end and by beat's resend, sends it once unless they overlap). A
    database error before the outcome is written leaves it owed, for the task's retry:
    delivery is at least once (the body carries the run's id)."""
    run = Run.objects.select_related("job").filter(pk=run_id).first()
    if run is None or (owed and run.callback_due_at is None):
        return
    body = json.dumps(RunSerializer(run).data).encode()
    try:
        # One message however often it is sent: `webhook-id` is the run's id.
        headers = webhook_headers(run.pk, body, run.callback_secret)
        headers["X-Workflows-Event"] = "run.ended"
        response = post_json(run.callback_url, body, headers)
    except StepError as exc:
        problem = exc.message
    except Exception as exc:  # any failure is the run's to show, not a lost task's
        logger.exception("Callback of run %s crashed", run_id)
        problem = f"Internal error: {exc.__class__.__name__}: {exc}"
    else:
        problem = None
    with transaction.atomic():
        if problem is None:
            RunLog.objects.create(
                run_id=run_id,
                message=f"Callback delivered to {display_url(run.callback_url)} "
                f"({response.status_code}).",
            )
        else:
            RunLog.objects.create(
                run_id=run_id,
                level=RunLog.Level.WARNING,
                message=f"Callback not delivered: {problem}",
            )
        Run.objects.filter(pk=run_id).update(callback_due_at=None)
