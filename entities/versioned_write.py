"""A batch of commits at the version they were read at, with their revisions, in one
statement: a run's chunk commits hundreds of entities at once, and each of them needs a new
version and a revision naming what changed (`entities.revisions`).

On PostgreSQL the update, the status and publishedAt each entity had before it (for its
revision's changes) and the revisions' insert are one statement: the rows travel as one JSON
array, the update joins the entity again to return its values before (a row it writes still
has the version read, so nothing changed it in between: the join sees it as it was), and the
revisions are inserted from what the update returns. Elsewhere (SQLite) the same is three
statements: the values before, the update, the revisions.
"""

import datetime
import json
from dataclasses import dataclass
from json.encoder import encode_basestring_ascii

from django.db import connection

from config.api.fields import to_millis
from config.bulk import JSONText, rows_update
from entities.models import Entity, EntityRevision
from entities.revisions import RevisionSource, revision_of, revisions_record, state_changes

_COMPACT = json.JSONEncoder(separators=(",", ":"))
_SOURCE_COLUMNS = ("source", "run_id", "step_id", "user_id", "api_key_id")


@dataclass(frozen=True)
class VersionedWrite:
    """One entity's new data, written if it is still at `version`: `data` already encoded
    as JSON, `changes` its revision's data changes (`entities.revisions.data_changes`),
    `source` who made it when not the batch's."""

    entity_id: str
    version: int
    data: str
    changes: list[dict]
    source: RevisionSource | None = None


def entities_write_versioned(
    writes: list[VersionedWrite],
    *,
    status: str | None,
    now: datetime.datetime,
    source: RevisionSource,
) -> list[tuple[str, int]]:
    """Write each entity still at its `version` (its data, version + 1, and `status` when
    given, with publishedAt set or cleared as that status says) and record its revision;
    returns (id, new version) of those written. Call inside a transaction."""
    if not writes:
        return []
    published = None
    if status is not None:
        published = now if status == Entity.Status.PUBLISHED else None
    if connection.vendor == "postgresql":
        return _write_postgresql(writes, status, published, now, source)
    return _write_elsewhere(writes, status, published, now, source)


def _write_postgresql(writes, status, published, now, source) -> list[tuple[str, int]]:
    entity, revision = Entity._meta, EntityRevision._meta
    quote = connection.ops.quote_name
    entity_table, revision_table = quote(entity.db_table), quote(revision.db_table)
    col = {name: quote(entity.get_field(name).column) for name in _ENTITY_FIELDS}
    sets = [
        f"{col['data']} = r.data",
        f"{col['version']} = t.{col['version']} + 1",
        f"{col['updated_at']} = %(now)s",
    ]
    before = ""
    state_changes_sql = ""
    if status is not None:
        sets += [f"{col['status']} = %(status)s", f"{col['published_at']} = %(published)s"]
        # The values before, for the revision: the entity joined again (as it was read).
        before = (
            f", o.{col['status']} AS status_before, o.{col['published_at']} AS published_before"
        )
        # As `state_changes` gives them: status and publishedAt (in ms) where they changed.
        state_changes_sql = (
            " || CASE WHEN w.status_before <> %(status)s THEN jsonb_build_array("
            "jsonb_build_object('field', 'status', 'before', w.status_before, "
            "'after', %(status)s::text)) ELSE '[]'::jsonb END"
            " || CASE WHEN w.published_before IS DISTINCT FROM %(published)s THEN "
            "jsonb_build_array(jsonb_build_object('field', 'publishedAt', 'before', "
            # to_millis() in SQL: the same double, the same truncation.
            "trunc(extract(epoch FROM w.published_before)::float8 * 1000)::bigint, "
            "'after', %(published_ms)s::bigint)) ELSE '[]'::jsonb END"
        )
    joined = f", {entity_table} AS o" if status is not None else ""
    joined_where = f" AND o.{col['id']} = t.{col['id']}" if status is not None else ""
    rcol = {name: quote(revision.get_field(name).column) for name in _REVISION_FIELDS}
    rows = "jsonb_to_recordset(%(rows)s::jsonb) AS r(id text, version integer, data jsonb, "
    rows += "changes jsonb, " + ", ".join(f"{name} text" for name in _SOURCE_COLUMNS) + ")"
    update = (
        f"UPDATE {entity_table} AS t SET {', '.join(sets)} FROM r{joined} "  # noqa: S608
        f"WHERE t.{col['id']} = r.id AND t.{col['version']} = r.version{joined_where} "
        f"RETURNING t.{col['id']} AS id, t.{col['version']} AS version, r.changes, "
        + ", ".join(f"r.{name}" for name in _SOURCE_COLUMNS)
        + before
    )
    columns = ", ".join(rcol[name] for name in _REVISION_FIELDS)
    sources = ", ".join(f"COALESCE(w.{name}, %({name})s)" for name in _SOURCE_COLUMNS)
    insert = (
        f"INSERT INTO {revision_table} ({columns}) SELECT w.id, w.version, %(now)s, "  # noqa: S608
        f"w.changes{state_changes_sql}, {sources} FROM written AS w"
    )
    sql = (
        f"WITH r AS (SELECT * FROM {rows}), written AS ({update}), "  # noqa: S608
        f"recorded AS ({insert}) SELECT id, version FROM written"
    )
    params = {
        "rows": _rows_json(writes),
        "now": now,
        "status": status,
        "published": published,
        "published_ms": to_millis(published),
        **{name: getattr(source, "type" if name == "source" else name) for name in _SOURCE_COLUMNS},
    }
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


_ENTITY_FIELDS = ("id", "data", "version", "status", "published_at", "updated_at")
_REVISION_FIELDS = ("entity", "version", "created_at", "changes", *_SOURCE_COLUMNS)


def _rows_json(writes: list[VersionedWrite]) -> str:
    """The rows as one JSON array; the data is spliced in as encoded already."""
    rows = []
    for write in writes:
        row = (
            f'{{"id":{encode_basestring_ascii(write.entity_id)},"version":{write.version:d},'
            f'"data":{write.data},"changes":{_COMPACT.encode(write.changes)}'
        )
        if write.source is not None:
            row += "," + ",".join(
                f'"{name}":{encode_basestring_ascii(value)}'
                for name, value in zip(_SOURCE_COLUMNS, _source_values(write.source), strict=True)
            )
        rows.append(row + "}")
    return "[" + ",".join(rows) + "]"


def _source_values(source: RevisionSource) -> tuple[str, ...]:
    return source.type, source.run_id, source.step_id, source.user_id, source.api_key_id


def _write_elsewhere(writes, status, published, now, source) -> list[tuple[str, int]]:
    assign: dict = {"updated_at": now}
    before: dict = {}
    if status is not None:
        assign.update(status=status, published_at=published)
        before = {
            pk: (old_status, old_published)
            for pk, old_status, old_published in Entity.objects.filter(
                pk__any=[write.entity_id for write in writes]
            ).values_list("pk", "status", "published_at")
        }
    written = rows_update(
        Entity,
        (
            {"id": write.entity_id, "version": write.version, "data": JSONText(write.data)}
            for write in writes
        ),
        match=["id", "version"],
        copy=["data"],
        increment=["version"],
        assign=assign,
        returning=["id", "version"],
    )
    by_id = {write.entity_id: write for write in writes}
    revisions = []
    for pk, version in written:
        write = by_id[pk]
        changes = list(write.changes)
        if status is not None:
            old_status, old_published = before[pk]
            changes += state_changes(old_status, status, old_published, published)
        revisions.append(revision_of(pk, version, write.source or source, changes, now))
    revisions_record(revisions)
    return written
