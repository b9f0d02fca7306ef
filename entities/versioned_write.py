"""A batch of commits at the version they were read at, with their revisions, in one
statement: a run's chunk commits hundreds of entities at once, and each of them needs a new
version and a revision naming what changed (`entities.revisions`).

The caller gives each entity's revision changes, status and publishedAt included when the
write sets them: it knows them from the version it read (a write happens only where that
version is still stored). On PostgreSQL the update and the revisions' insert are one
statement: the rows travel as one JSON array and the revisions are inserted from what the
update returns. Elsewhere (SQLite) they are two.
"""

import datetime
import json
from dataclasses import dataclass
from json.encoder import encode_basestring_ascii

from django.db import connection

from config.bulk import JSONText, rows_update
from entities.models import Entity, EntityRevision
from entities.revisions import RevisionSource, revision_of, revisions_record

_COMPACT = json.JSONEncoder(separators=(",", ":"))
_SOURCE_COLUMNS = ("source", "run_id", "step_id", "user_id", "api_key_id")


@dataclass(frozen=True)
class VersionedWrite:
    """One entity's new data, written if it is still at `version`: `data` already encoded
    as JSON, `changes` its revision's changes (`entities.revisions.data_changes`, and
    `state_changes` from its status and publishedAt at `version` when the write sets the
    status), `source` who made it when not the batch's."""

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
    if status is not None:
        sets += [f"{col['status']} = %(status)s", f"{col['published_at']} = %(published)s"]
    rcol = {name: quote(revision.get_field(name).column) for name in _REVISION_FIELDS}
    rows = "jsonb_to_recordset(%(rows)s::jsonb) AS r(id text, version integer, data jsonb, "
    rows += "changes jsonb, " + ", ".join(f"{name} text" for name in _SOURCE_COLUMNS) + ")"
    update = (
        f"UPDATE {entity_table} AS t SET {', '.join(sets)} FROM r "  # noqa: S608
        f"WHERE t.{col['id']} = r.id AND t.{col['version']} = r.version "
        f"RETURNING t.{col['id']} AS id, t.{col['version']} AS version, r.changes, "
        + ", ".join(f"r.{name}" for name in _SOURCE_COLUMNS)
    )
    columns = ", ".join(rcol[name] for name in _REVISION_FIELDS)
    sources = ", ".join(f"COALESCE(w.{name}, %({name})s)" for name in _SOURCE_COLUMNS)
    insert = (
        f"INSERT INTO {revision_table} ({columns}) SELECT w.id, w.version, %(now)s, "  # noqa: S608
        f"w.changes, {sources} FROM written AS w"
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
    if status is not None:
        assign.update(status=status, published_at=published)
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
    revisions_record(
        [
            revision_of(pk, version, by_id[pk].source or source, by_id[pk].changes, now)
            for pk, version in written
        ]
    )
    return written
