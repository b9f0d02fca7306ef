"""Entity revisions: what each version of an entity changed, and by whom.

Every write that bumps an entity's `version` records one `EntityRevision` in its
transaction, with the top-level data keys it changed (before and after), and status and
publishedAt when they changed. A version's data and status are the current entity's with the
changes of the newer revisions undone, so restoring a version needs every revision from it
to the newest still kept (retention prunes the older ones: `revisions_prune`).
"""

import datetime
import json
from contextlib import closing
from dataclasses import dataclass

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Count, Exists, Max, Min, OuterRef, Q, QuerySet
from django.utils import timezone

from config.api.fields import to_millis
from entities.json_values import json_equal
from entities.models import Entity, EntityRevision

Source = EntityRevision.Source


@dataclass(frozen=True)
class RevisionSource:
    """Who or what made a change: `type` and the plain ids that say more (the run and its
    step, the user, the API key)."""

    type: str
    run_id: str = ""
    step_id: str = ""
    user_id: str = ""
    api_key_id: str = ""

    @classmethod
    def of_request(cls, request, type: str = Source.API) -> "RevisionSource":
        """The user of a request, and the API key it came with (if any)."""
        user = getattr(request, "user", None)
        key = getattr(request, "auth", None)
        return cls(
            type=type,
            user_id=str(user.pk) if user is not None and user.is_authenticated else "",
            api_key_id=str(key.pk) if key is not None and hasattr(key, "pk") else "",
        )

    def as_json(self) -> dict:
        """The API's `source`: the type, and the ids that are set."""
        out = {"type": self.type}
        for name, key in (
            ("run_id", "runId"),
            ("step_id", "stepId"),
            ("user_id", "userId"),
            ("api_key_id", "apiKeyId"),
        ):
            if getattr(self, name):
                out[key] = getattr(self, name)
        return out

    @classmethod
    def of_revision(cls, revision: EntityRevision) -> "RevisionSource":
        return cls(
            revision.source,
            revision.run_id,
            revision.step_id,
            revision.user_id,
            revision.api_key_id,
        )


def data_changes(before: dict, after: dict) -> list[dict]:
    """The top-level keys changed from `before` to `after` (added, changed, removed), in key
    order, each with its value before and after; an absent side is left out."""
    changes = []
    for key in sorted(before.keys() | after.keys()):
        if key in before and key in after and json_equal(before[key], after[key]):
            continue
        change: dict = {"field": f"data.{key}"}
        if key in before:
            change["before"] = before[key]
        if key in after:
            change["after"] = after[key]
        changes.append(change)
    return changes


def state_changes(
    status_before: str | None,
    status_after: str,
    published_before: datetime.datetime | None,
    published_after: datetime.datetime | None,
) -> list[dict]:
    """Status and publishedAt (in ms, as the API gives times), where they changed
    (`status_before` None: a new entity)."""
    changes = []
    if status_before != status_after:
        change = {"field": "status", "after": status_after}
        if status_before is not None:
            change["before"] = status_before
        changes.append(change)
    if published_before != published_after:
        changes.append(
            {
                "field": "publishedAt",
                "before": to_millis(published_before),
                "after": to_millis(published_after),
            }
        )
    return changes


def revision_of(
    entity_id: str, version: int, source: RevisionSource, changes: list[dict], now=None
) -> EntityRevision:
    return EntityRevision(
        entity_id=entity_id,
        version=version,
        created_at=now or timezone.now(),
        source=source.type,
        run_id=source.run_id,
        step_id=source.step_id,
        user_id=source.user_id,
        api_key_id=source.api_key_id,
        changes=changes,
    )


def revisions_record(revisions: list[EntityRevision]) -> None:
    """Write revisions in one statement per 5,000 (a run's chunk: one); call inside the
    change's transaction."""
    if revisions:
        EntityRevision.objects.bulk_create(revisions, batch_size=5000)


# -- reading versions ------------------------------------------------------------------------


@dataclass(frozen=True)
class VersionState:
    """An entity as it was at a version."""

    version: int
    data: dict
    status: str
    published_at: int | None  # ms since the epoch, as the API gives times


class RevisionGone(Exception):
    """The revisions needed to rebuild a version are no longer kept."""


# Revisions read at a time when rebuilding a version: each may hold two values of up to
# ENTITY_MAX_DATA_BYTES, and an old version is rebuilt through every newer one.
REBUILD_FETCH_ROWS = 10


def version_state(*, entity: Entity, version: int) -> VersionState:
    """The entity's data, status and publishedAt at `version`: the current ones with the
    changes of every newer revision undone, read newest first REBUILD_FETCH_ROWS at a time
    (all at once, a few thousand revisions of a large field were gigabytes). Raises
    RevisionGone unless the revisions from `version` to the current one are all kept."""
    newer = (
        EntityRevision.objects.filter(entity_id=entity.pk, version__gte=version)
        .order_by("-version")
        .values_list("version", "changes")
        .iterator(chunk_size=REBUILD_FETCH_ROWS)
    )
    data = dict(entity.data)
    status, published = entity.status, to_millis(entity.published_at)
    expected = entity.version  # the versions must all be there, newest first
    with closing(newer):
        for number, changes in newer:
            if number != expected:
                raise RevisionGone(version)
            expected -= 1
            if number == version:  # its own changes made it: not undone
                break
            status, published = _undo(changes, data, status, published)
    if expected != version - 1:
        raise RevisionGone(version)
    return VersionState(version, data, status, published)


def _undo(changes: list[dict], data: dict, status: str, published: int | None):
    """Undo a revision's changes: of `data` in place; returns status and publishedAt (ms)
    with its changes of them undone."""
    for change in changes:
        status, published = change_undo(change, data, status, published)
    return status, published


def change_undo(change: dict, data: dict, status, published):
    """Undo one change of a revision: of `data` in place (a field back at its value before,
    or gone if it had none); returns status and publishedAt (ms) with it undone."""
    field = change["field"]
    if field == "status":
        status = change.get("before", status)
    elif field == "publishedAt":
        published = change.get("before")
    elif "before" in change:
        data[field[5:]] = change["before"]
    else:
        data.pop(field[5:], None)
    return status, published


# -- retention -------------------------------------------------------------------------------


def revisions_prune(*, now: datetime.datetime, limit: int) -> int:
    """Delete revisions older than ENTITY_REVISIONS_KEEP_DAYS that are not the newest of
    their entity, nor held by a newer revision of the same run (below), up to `limit` of
    them plus the rest of their runs' revisions of the same entities, in one transaction;
    returns how many. One of retention's pruners (`jobs.retention`), which calls again while
    a batch was full.

    A run's revisions of an entity go together: a revert undoes a run from all of them (the
    first change of each field holds its value before the run), so with the first pruned
    and a later one kept it would undo the later alone and report the entity reverted. The
    first one is older (a publish step before a wait, a revision kept fewer days than the
    run), so pruning by age alone would do exactly that. Keeping them together lets a
    revert trust that the run's first kept revision of an entity is its first."""
    cutoff = now - datetime.timedelta(days=settings.ENTITY_REVISIONS_KEEP_DAYS)
    prunable = _prunable(cutoff)
    ids = list(prunable.order_by("created_at").values_list("pk", flat=True)[:limit])
    if not ids:
        return 0
    chosen = EntityRevision.objects.filter(pk__any=ids).exclude(run_id="")
    runs = set(chosen.values_list("entity_id", "run_id"))
    if runs:  # their runs' other revisions of those entities, prunable with them (above)
        ids += [
            pk
            for pk, entity_id, run_id in prunable.filter(
                entity_id__in=sorted({entity_id for entity_id, _ in runs})
            )
            .exclude(pk__any=ids)
            .values_list("pk", "entity_id", "run_id")
            if (entity_id, run_id) in runs
        ]
    with transaction.atomic():
        # Checked again as it deletes: a run may have committed one of these entities since.
        deleted, _ = prunable.filter(pk__any=ids).delete()
    return deleted


def _prunable(cutoff: datetime.datetime) -> QuerySet:
    """Revisions older than `cutoff` with a newer revision of their entity and no newer one
    of their run that is kept. A revision is kept while it is recent or its entity's
    newest; one of a run is kept also while a newer one of that run is, and whichever of
    those is newest is kept on its own account: so checking the run's newer revisions for
    recent or newest is enough."""
    newer = EntityRevision.objects.filter(
        entity_id=OuterRef("entity_id"), version__gt=OuterRef("version")
    )
    kept = newer.filter(Q(created_at__gte=cutoff) | ~Exists(newer))
    return (
        EntityRevision.objects.filter(created_at__lt=cutoff)
        .filter(Exists(newer))
        .filter(Q(run_id="") | ~Exists(kept.filter(run_id=OuterRef("run_id"))))
    )


# -- the entities a run changed ----------------------------------------------------------------


def run_changed_walk(run_id: str, after: str = "") -> tuple[str, list]:
    """PostgreSQL: a query of the ids (column `id`) of the entities the run `run_id` changed,
    after `after`, in id order, each once (its revisions of them may be several). It walks
    the (run, entity) index one probe per entity, so its work is what it returns: a
    `DISTINCT` over the run's revisions was planned as a hash of all of them (the run's
    revisions are seldom analysed yet when it is reverted), for every batch of a revert."""
    table = connection.ops.quote_name(EntityRevision._meta.db_table)

    def nearest(past: str) -> str:
        # `run_id <> ''` is the index's predicate (it is partial), said outright.
        return (
            f"SELECT r.entity_id FROM {table} AS r WHERE r.run_id = %s "  # noqa: S608
            f"AND r.run_id <> '' AND r.entity_id > {past} ORDER BY r.entity_id LIMIT 1"
        )

    sql = (
        f"WITH RECURSIVE walk(id) AS (({nearest('%s')}) "  # noqa: S608
        f"UNION ALL SELECT ({nearest('walk.id')}) FROM walk WHERE walk.id IS NOT NULL) "
        "SELECT id FROM walk WHERE id IS NOT NULL"
    )
    return sql, [run_id, after, run_id]


def run_changed_batch(run_id: str, after: str, count: int) -> tuple[str, list] | QuerySet:
    """The ids of the next `count` entities `run_id` changed after `after`, in id order (a
    revert's batch of items): on PostgreSQL a query (sql, params) walking the revisions'
    (run, entity) index one probe per entity (`run_changed_walk`), else a queryset."""
    if connection.vendor == "postgresql":
        sql, params = run_changed_walk(run_id, after)
        return f"{sql} LIMIT %s", [*params, count]
    return (
        EntityRevision.objects.filter(run_id=run_id, entity_id__gt=after)
        .order_by("entity_id")
        .values_list("entity_id", flat=True)
        .distinct()[:count]
    )


def run_revisions_of(run_id: str, entity_ids: list[str]) -> list[tuple[str, int, list]]:
    """(entity id, version, changes) of every revision the run `run_id` made of these
    entities, by entity and version (a revert's chunk). On PostgreSQL one probe of the (run,
    entity) index per entity (`OFFSET 0` keeps each a probe): planned as one condition on
    the run with the ids as a filter, on statistics taken before the run (a few thousand
    revisions guessed for a million), it read all the run's revisions for every chunk of
    1,000, 0.43 s each for a run of 1,000,000, and the revert took time as the square of
    the run's size."""
    if not entity_ids:
        return []
    if connection.vendor != "postgresql":
        return list(
            EntityRevision.objects.filter(run_id=run_id, entity_id__in=entity_ids)
            .order_by("entity_id", "version")
            .values_list("entity_id", "version", "changes")
        )
    table = connection.ops.quote_name(EntityRevision._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT r.entity_id, r.version, r.changes "  # noqa: S608 (the table from _meta)
            "FROM unnest(%s::varchar[]) AS e(id), LATERAL (SELECT entity_id, version, "
            f"changes FROM {table} WHERE run_id = %s AND run_id <> '' AND entity_id = e.id "
            "OFFSET 0) AS r ORDER BY r.entity_id, r.version",
            [list(entity_ids), run_id],
        )
        # Django's connection reads jsonb as text (its JSONField parses it): parsed here.
        return [(pk, version, json.loads(changes)) for pk, version, changes in cursor]


def run_changed_counts(run_id: str, *, limit: int | None = None) -> tuple[int, int]:
    """How many entities (still existing) the run `run_id` changed, and how many of them were
    changed again since by anything: their current version is not one the run wrote (the
    newest revision of an entity is always kept). On PostgreSQL one walk of the run's
    entities (`run_changed_walk`) with two index probes each: the work grows with the run,
    not with the revisions kept. `limit`: count among the first `limit` entities (by id)
    only, so that a page about a run of a million answers in a second."""
    if connection.vendor != "postgresql":
        made, changed = _changed_by(run_id)
        if limit is not None:
            first = list(changed.values_list("pk", flat=True)[:limit])
            changed = Entity.objects.filter(pk__in=first)
        return changed.count(), changed.exclude(
            Exists(made.filter(entity_id=OuterRef("pk"), version=OuterRef("version")))
        ).count()
    walk, params, entities, revisions = _walk_sql(run_id, limit)
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT count(*), count(*) FILTER (WHERE NOT EXISTS (SELECT 1 FROM {revisions} "  # noqa: S608
            "AS r WHERE r.entity_id = e.id AND r.version = e.version AND r.run_id = %s)) "
            f"FROM ({walk}) AS c JOIN {entities} AS e ON e.id = c.id",
            [run_id, *params],
        )
        changed, since = cursor.fetchone()
    return changed, since


def run_changed_during_count(run_id: str, *, limit: int | None = None) -> int:
    """How many entities (still existing) the run `run_id` changed are at the last version
    it made, yet were written by something else between two of its commits: the versions it
    made of them are not consecutive (an edit while one waited at a review). A revert skips
    them as it does those changed since (`run_changed_counts` counts those). On PostgreSQL
    the run's walk (`run_changed_walk`) with one probe of the run's revisions of each entity;
    `limit`: among the first `limit` entities (by id) only."""
    if connection.vendor != "postgresql":
        made, changed = _changed_by(run_id)
        versions = dict(changed.values_list("pk", "version")[:limit])
        spans = (
            made.filter(entity_id__in=list(versions))
            .values("entity_id")
            .annotate(first=Min("version"), last=Max("version"), made=Count("pk"))
        )
        return sum(
            span["last"] == versions[span["entity_id"]]
            and span["last"] - span["first"] + 1 != span["made"]
            for span in spans
        )
    walk, params, entities, revisions = _walk_sql(run_id, limit)
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT count(*) FROM ({walk}) AS c JOIN {entities} AS e ON e.id = c.id "  # noqa: S608
            "CROSS JOIN LATERAL (SELECT min(r.version) AS first, max(r.version) AS last, "
            f"count(*) AS made FROM {revisions} AS r WHERE r.run_id = %s AND r.run_id <> '' "
            "AND r.entity_id = c.id) AS m WHERE m.last = e.version "
            "AND m.last - m.first + 1 <> m.made",
            [*params, run_id],
        )
        return cursor.fetchone()[0]


def _changed_by(run_id: str):
    """(the run's revisions, the entities they are of, by id): the counts' reading where
    there is no walk (SQLite)."""
    made = EntityRevision.objects.filter(run_id=run_id)
    return made, Entity.objects.filter(pk__in=made.values("entity_id")).order_by("pk")


def _walk_sql(run_id: str, limit: int | None) -> tuple[str, list, str, str]:
    """The run's walk (`run_changed_walk`, cut to its first `limit` entities) and its
    params, and the quoted tables of entities and revisions, for a count over it."""
    walk, params = run_changed_walk(run_id)
    if limit is not None:
        walk, params = f"{walk} LIMIT %s", [*params, limit]
    quote = connection.ops.quote_name
    return (walk, params, *(quote(model._meta.db_table) for model in (Entity, EntityRevision)))
