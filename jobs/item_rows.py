"""Run items' rows: the chunk size they are cut into, and their columns as written by one
`INSERT ... SELECT` (PostgreSQL), where every column but the entity and the chunk has the
same value in every row, the model's defaults."""

from django.db import connection

from jobs.models import Run, RunItem
from workflows.steps.chunking import chunk_size


def run_chunk_size(run: Run) -> int:
    """Entities per chunk of `run`: as fixed when it started (a run made before the size was
    stored: as computed then from its version's steps)."""
    return run.chunk_size or chunk_size(run.workflow_version.steps)


def item_columns(run, *, chunk_sql: str, chunk_params: list) -> tuple[list, list, list]:
    """(quoted columns, value expressions, their parameters): the entity id is read as
    `e.id`, the chunk computed by `chunk_sql` with `chunk_params`."""
    quote = connection.ops.quote_name
    template = RunItem(run=run)
    columns, values, params = [], [], []
    for field in RunItem._meta.concrete_fields:
        if field.primary_key:
            continue
        columns.append(quote(field.column))
        if field.attname == "entity_id":
            values.append("e.id")
        elif field.attname == "chunk":
            values.append(chunk_sql)
            params.extend(chunk_params)
        else:
            values.append(f"%s::{field.db_type(connection)}")
            params.append(field.get_db_prep_save(getattr(template, field.attname), connection))
    return columns, values, params
