"""Runs over a filter: `POST /workflows/:id/run` with `filter` instead of `entityIds`, and
the runs that schedules start.

The request counts what matches (400 past RUN_MAX_ENTITIES, saying how many) and stores the
run `pending` with no items and `total` null; `run_items_make`, a task, then makes its items
in batches (a first one of a chunk per worker process, so that they start at once, then
RUN_ITEMS_BATCH_SIZE), one transaction each, walking the entities in id order
from `items_cursor` (keyset pagination: no batch reads what an earlier one did, and neither
the web nor the worker holds more than one batch). On PostgreSQL a batch is one
`INSERT ... SELECT` and never enters Python. Each batch queues the chunks it completed, so
the workers start on them while the next batch is made; the last batch sets `total` (until
then no chunk can end the run) and queues the rest. Entities created after the run was are
left out: a run covers what matched when it started.

A retry of more failed entities than a request may name (RUN_MAX_IDS) is made the same way,
its batches read from the failed items of the run it retries (`jobs.retries`).
"""

import logging
from functools import partial

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone

from config.api.errors import FieldError, InvalidInput
from entities.filters import entities_matching
from entities.models import Entity
from entities.run_changes import run_changed_batch
from jobs import queue
from jobs.costs import budget_columns, workflow_estimate
from jobs.engine.parking import run_turn_take, runs_lock
from jobs.item_rows import item_columns, items_skip_held, open_runs_lock, run_chunk_size
from jobs.lifecycle import run_end_if_done
from jobs.models import (
    ItemStatus,
    Job,
    Run,
    RunItem,
    RunLog,
    RunStatus,
    TriggerType,
    api_trigger,
)
from jobs.services import items_skipped_count, workflow_mark_run, workflow_runnable
from workflows.models import WorkflowVersion
from workflows.steps.chunking import chunk_size

logger = logging.getLogger(__name__)


def _matching_at_most(workflow, entity_filter: dict, most: int) -> int:
    """How many entities match, counting no further than `most` + 1."""
    entities = entities_matching(
        entity_type_id=workflow.entity_type_id, entity_filter=entity_filter
    )
    return entities.values("pk")[: most + 1].count()


def filter_run_size(workflow, entity_filter: dict, limit: int | None, *, empty_ok=False) -> int:
    """How many entities a run over the filter would take: 400 if more than
    RUN_MAX_ENTITIES match without a `limit` that allows it, or none (0 if `empty_ok`)."""
    most = settings.RUN_MAX_ENTITIES
    found = _matching_at_most(workflow, entity_filter, most)
    if found > most and (limit is None or limit > most):
        matched = entities_matching(
            entity_type_id=workflow.entity_type_id, entity_filter=entity_filter
        ).count()
        message = (
            f"{matched} entities match the filter; a run takes at most {most}. "
            "Narrow the filter or give a `limit`."
        )
        raise InvalidInput(
            f"filter: {message}", details=[FieldError("filter", message, "too_many")]
        )
    if not found and not empty_ok:
        message = f"No entity of entity type {workflow.entity_type_id} matches the filter."
        raise InvalidInput(f"filter: {message}", details=[FieldError("filter", message, "empty")])
    return min(found, limit or most, most)


def filter_run_estimate(*, workflow, entity_filter: dict, limit: int | None) -> dict:
    """`workflow_estimate` for a run over the filter; its sample is the first matches."""
    entities = filter_run_size(workflow, entity_filter, limit)

    def sample_ids(n: int) -> list[str]:
        matching = entities_matching(
            entity_type_id=workflow.entity_type_id, entity_filter=entity_filter
        )
        return list(matching.order_by("pk").values_list("pk", flat=True)[: min(n, entities)])

    return workflow_estimate(workflow=workflow, entities=entities, sample_ids=sample_ids)


@transaction.atomic
def run_start_over_filter(
    *,
    workflow_id: str,
    entity_filter: dict,
    limit: int | None = None,
    callback_url: str = "",
    callback_secret: str = "",
    created_by=None,
    trigger: dict | None = None,
    empty_ok: bool = False,
    budget: dict | None = None,
    version: WorkflowVersion | None = None,
) -> Run | None:
    """Store a pending run over the entities matching `entity_filter` (a cleaned filter, see
    `entities.filters`), at most `limit` of them, and queue the making of its items. 400 if
    none match (unless `empty_ok`: then None) or more than RUN_MAX_ENTITIES would be run.
    The run executes `version`, by default the live one."""
    workflow = workflow_runnable(workflow_id=workflow_id)
    most = settings.RUN_MAX_ENTITIES
    entities = filter_run_size(workflow, entity_filter, limit, empty_ok=empty_ok)
    if not entities:
        return None
    if version is None:
        version = workflow.versions.get(number=workflow.version)
    return run_start_in_batches(
        workflow=workflow,
        version=version,
        entities=entities,
        callback_url=callback_url,
        callback_secret=callback_secret,
        created_by=created_by,
        trigger=trigger or api_trigger(),
        filter=entity_filter,
        items_limit=min(limit or most, most),
        **budget_columns(version, budget),
    )


def run_start_in_batches(*, workflow, version, entities: int, **columns) -> Run:
    """Store a pending run (and its job) of about `entities` entities whose items
    `run_items_make` makes after the commit: over `columns["filter"]`, or, with no filter, a
    retry over what failed in `columns["retry_of"]`. Call inside a transaction."""
    reverting = (columns.get("trigger") or {}).get("type") == TriggerType.REVERT
    if columns.get("filter") is None and columns.get("retry_of") is None and not reverting:
        raise ValueError("A run made in batches needs a filter, a run it retries or reverts.")
    run = Run.objects.create(
        workflow=workflow,
        workflow_version=version,
        total=None,
        # Sized on what matches now; entities deleted before their items are made leave the
        # run's chunks as they were cut. A revert runs none of the steps: a step's limit
        # (slow calls) is not its own.
        chunk_size=chunk_size([] if reverting else version.steps, entities),
        **columns,
    )
    Job.objects.create(run=run)
    workflow_mark_run(workflow_id=workflow.pk, run=run)
    transaction.on_commit(partial(queue.items_make_enqueue, run.pk))
    return run


def run_items_make(*, run_id: str) -> int:
    """Make the items of a run over a filter, batch after batch, then queue its chunks.
    Safe to run twice at once or again after a crash (a redelivered task, a stalled run's
    recovery): makers of a run take turns (`run_turn_take`) and each batch starts from the
    cursor the last committed batch left. Returns the items made.

    The run's row is locked only once a batch is made, to COMMIT: every chunk that ends
    updates that row (its counters), so a lock held for a batch's whole INSERT (0.1-0.2 s
    for 10,000 items) made every chunk ending meanwhile wait for it. A cancel asked while
    the batch was made is seen under that lock, and the batch is discarded (a cancel's
    batches, which lock the row first, would not all have seen its items)."""
    while True:
        with transaction.atomic():
            run_turn_take(run_id, "items")
            run = Run.objects.select_related("workflow", "workflow_version").get(pk=run_id)
            if run.total is not None:
                return run.items_made
            size = run_chunk_size(run)
            left = run.items_limit - run.items_made
            before = run.items_made
            asked = min(left, _batch_size(before, size))
            made, last, kept = 0, "", False
            if left > 0 and run.status in RunStatus.open() and not run.cancelling:
                with transaction.atomic():  # a savepoint: undone if a cancel came meanwhile
                    made, last = _insert_batch(run, asked)
                    kept = _run_lock(run_id)
                    if not kept:
                        transaction.set_rollback(True)
                        made, last = 0, ""
            # Nothing made, or the batch undone (its savepoint released the lock): lock now.
            goes_on = kept or _run_lock(run_id)
            run.items_made += made
            run.items_cursor = last or run.items_cursor
            run.heartbeat_at = timezone.now()  # a long making is not a stalled run
            if made and made == asked and made < left:
                run.save(update_fields=["items_made", "items_cursor", "heartbeat_at"])
                # The chunks this batch completed start now, while the next batch is made
                # (a chunk whose items span two batches waits for the second).
                chunks = range(before // size, run.items_made // size)
                transaction.on_commit(partial(queue.chunks_enqueue, run.pk, chunks))
                continue
            _items_done(run, first_chunk=before // size, goes_on=goes_on)
            return run.items_made


def _batch_size(made: int, size: int) -> int:
    """The next batch's size: the first one is as many chunks as a worker has processes
    (they start on them while the next batch is made), the others RUN_ITEMS_BATCH_SIZE."""
    if made:
        return settings.RUN_ITEMS_BATCH_SIZE
    return min(settings.RUN_ITEMS_BATCH_SIZE, size * settings.WORKER_CONCURRENCY)


def _run_lock(run_id: str) -> bool:
    """Lock the run's row to COMMIT, as a cancel does; whether it goes on (open, no cancel
    asked)."""
    return runs_lock(run_ids=[run_id], exclusive=True).get(run_id, False)


def _items_done(run: Run, first_chunk: int, *, goes_on: bool) -> None:
    """The last batch, under the run's lock: the total is known; queue the chunks not
    queued yet (none once a cancel was asked or the run ended: `goes_on` false), and end
    the run if nothing is left to do."""
    run.total = run.items_made
    run.save(update_fields=["items_made", "items_cursor", "heartbeat_at", "total"])
    size = run_chunk_size(run)
    RunLog.objects.create(run_id=run.pk, message=f"Items made: {run.total} entities matched.")
    if goes_on:
        chunks = range(first_chunk, (run.total + size - 1) // size)
        transaction.on_commit(partial(queue.chunks_enqueue, run.pk, chunks))
    # The run may have nothing left to do: everything that matched was deleted before its
    # item was made, its chunks all ended before the total was known, or a cancel ended
    # them. It ends now then (its row is locked here), as its last chunk would have.
    run_end_if_done(run_id=run.pk)


def _batch_source(run: Run, count: int):
    """The ids of the next `count` entities of the run after the cursor, in id order: those
    matching its filter, for a revert those the reverted run changed (a walk of its
    revisions' (run, entity) index: a query as (sql, params) on PostgreSQL), or for a retry
    (no filter) those that failed in the run it retries and still exist, read in one pass
    over the items' (run, entity) index."""
    if (run.trigger or {}).get("type") == TriggerType.REVERT:
        return run_changed_batch(run.trigger["runId"], run.items_cursor, count)
    if run.filter is not None:
        entities = entities_matching(
            entity_type_id=run.workflow.entity_type_id, entity_filter=run.filter
        ).filter(created_at__lte=run.created_at)
        if run.items_cursor:
            entities = entities.filter(pk__gt=run.items_cursor)
        return entities.order_by("pk").values_list("pk", flat=True)[:count]
    failed = RunItem.objects.filter(
        run_id=run.retry_of_id,  # None once that run is deleted: nothing left to make
        status=ItemStatus.FAILED,
        entity_id__gt=run.items_cursor,
    ).filter(
        Exists(
            Entity.objects.filter(
                pk=OuterRef("entity_id"), entity_type_id=run.workflow.entity_type_id
            )
        )
    )
    return failed.order_by("entity_id").values_list("entity_id", flat=True)[:count]


def _insert_batch(run: Run, count: int) -> tuple[int, str]:
    """Insert the next batch of items; returns (how many, the last entity id). Those whose
    entity another open run of the workflow holds are made `skipped` (`jobs.item_rows`)."""
    size = run_chunk_size(run)
    source = _batch_source(run, count)
    open_runs = open_runs_lock(run.workflow_id, besides=run.pk)
    if connection.vendor != "postgresql":
        ids = list(source)
        RunItem.objects.bulk_create(
            (
                RunItem(run=run, entity_id=entity_id, chunk=(run.items_made + index) // size)
                for index, entity_id in enumerate(ids)
            ),
            batch_size=2000,
        )
        skipped = items_skip_held(run, open_runs) if open_runs else 0
        if skipped:
            items_skipped_count(run, skipped)
        return len(ids), (ids[-1] if ids else "")
    quote = connection.ops.quote_name
    source_sql, source_params = (
        source if isinstance(source, tuple) else source.query.sql_with_params()
    )
    columns, values, params, join, join_params = item_columns(
        run,
        chunk_sql="((%s + e.n - 1) / %s)::integer",
        chunk_params=[run.items_made, size],
        open_runs=open_runs,
    )
    with connection.cursor() as cursor:
        cursor.execute(
            # The source's one column is named by the alias list `s(id)`.
            "WITH src AS (SELECT s.id, row_number() OVER (ORDER BY s.id) AS n "  # noqa: S608
            f"FROM ({source_sql}) AS s(id)), "
            f"ins AS (INSERT INTO {quote(RunItem._meta.db_table)} ({', '.join(columns)}) "
            f"SELECT {', '.join(values)} FROM src AS e {join} ORDER BY e.n "
            f"RETURNING {quote('entity_id')}, {quote('status')}) "
            f"SELECT count(*), max({quote('entity_id')}), "
            f"count(*) FILTER (WHERE {quote('status')} = %s) FROM ins",
            [*source_params, *params, *join_params, ItemStatus.SKIPPED],
        )
        made, last, skipped = cursor.fetchone()
    if skipped:
        items_skipped_count(run, skipped)
    return made, last or ""
