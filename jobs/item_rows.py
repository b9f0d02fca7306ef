"""Run items' rows: the chunk size they are cut into, and their columns as written by one
`INSERT ... SELECT` (PostgreSQL), where every column but the entity, the chunk (and, for an
entity in another open run of the workflow, the status, error and end) has the same value
in every row, the model's defaults.

One entity, one open run per workflow: an entity whose item is pending, running or waiting
in an open run of the same workflow is left out of a new run of it. Its item is made
`skipped` (counted as completed, as a stopped entity's is), its error naming that run, in
the same statement that makes the others (a lateral probe of the open runs' (run, entity)
index per entity). Runs of one workflow make their items one at a time: each takes the
workflow's row lock first (`open_runs_lock`), so two runs started together never both take
an entity.
"""

from django.db import connection
from django.db.models import Q
from django.utils import timezone

from jobs.models import ItemStatus, Run, RunItem, RunStatus
from workflows.models import Workflow
from workflows.steps.chunking import chunk_size

# An item in one of these holds its entity for its run.
HOLDING = (ItemStatus.PENDING, ItemStatus.RUNNING, ItemStatus.WAITING)


def run_chunk_size(run: Run) -> int:
    """Entities per chunk of `run`: as fixed when it started (a run made before the size was
    stored: as computed then from its version's steps)."""
    return run.chunk_size or chunk_size(run.workflow_version.steps)


def open_run_message(run_id: str) -> str:
    return f"Left out: the entity is in run {run_id} of this workflow, still open."


def open_runs_lock(workflow_id: str, *, besides: str = "") -> list[str]:
    """Take the workflow's row lock (until COMMIT; `FOR NO KEY UPDATE`, which runs inserted
    meanwhile do not wait for) and return the ids of its open runs but `besides`. Call
    inside the transaction that makes a run's items (or that decides which entities a run
    could take: a trigger's dispatch)."""
    Workflow.objects.select_for_update(no_key=True).filter(pk=workflow_id).exists()
    return list(
        Run.objects.filter(workflow_id=workflow_id, status__in=RunStatus.open())
        .exclude(pk=besides)
        .values_list("pk", flat=True)
    )


def item_columns(
    run, *, chunk_sql: str, chunk_params: list, open_runs: list[str] = ()
) -> tuple[list, list, list, str, list]:
    """(quoted columns, value expressions, their parameters, the join finding the open run
    holding the entity and its parameters): the entity id is read as `e.id`, the chunk
    computed by `chunk_sql` with `chunk_params`. With no `open_runs` the join is empty."""
    quote = connection.ops.quote_name
    template = RunItem(run=run)
    columns, values, params = [], [], []
    held = {
        "status": ItemStatus.SKIPPED,
        "error": open_run_message("\0").split("\0"),
        "completed_at": timezone.now(),
    }
    for field in RunItem._meta.concrete_fields:
        if field.primary_key:
            continue
        columns.append(quote(field.column))
        db_type = field.db_type(connection)
        if field.attname == "entity_id":
            values.append("e.id")
        elif field.attname == "chunk":
            values.append(chunk_sql)
            params.extend(chunk_params)
        elif open_runs and field.attname == "error":
            values.append("CASE WHEN o.run_id IS NULL THEN %s ELSE %s || o.run_id || %s END")
            params.extend([template.error, *held["error"]])
        elif open_runs and field.attname in held:
            values.append(f"CASE WHEN o.run_id IS NULL THEN %s::{db_type} ELSE %s::{db_type} END")
            params.append(field.get_db_prep_save(getattr(template, field.attname), connection))
            params.append(field.get_db_prep_save(held[field.attname], connection))
        else:
            values.append(f"%s::{db_type}")
            params.append(field.get_db_prep_save(getattr(template, field.attname), connection))
    if not open_runs:
        return columns, values, params, "", []
    table = quote(RunItem._meta.db_table)
    join = (
        f"LEFT JOIN LATERAL (SELECT h.{quote('run_id')} AS run_id FROM {table} AS h "  # noqa: S608
        f"WHERE h.{quote('run_id')} = ANY(%s::varchar[]) AND h.{quote('entity_id')} = e.id "
        f"AND h.{quote('status')} = ANY(%s::varchar[]) LIMIT 1) AS o ON true"
    )
    return columns, values, params, join, [list(open_runs), [str(s) for s in HOLDING]]


def items_skip_held(run: Run, open_runs: list[str]) -> int:
    """Where items are not made by one statement (not PostgreSQL): skip the run's pending
    items whose entity an open run holds, naming it; returns how many."""
    skipped = 0
    held = RunItem.objects.filter(run_id__in=open_runs, status__in=HOLDING).filter(
        entity_id__in=RunItem.objects.filter(run=run, status=ItemStatus.PENDING).values("entity_id")
    )
    by_run: dict[str, list[str]] = {}
    for holder, entity_id in held.values_list("run_id", "entity_id"):
        by_run.setdefault(holder, []).append(entity_id)
    for holder, entity_ids in by_run.items():
        skipped += RunItem.objects.filter(
            Q(run=run, status=ItemStatus.PENDING), entity_id__in=entity_ids
        ).update(
            status=ItemStatus.SKIPPED,
            error=open_run_message(holder),
            completed_at=timezone.now(),
        )
    return skipped
