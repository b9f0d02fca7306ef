"""The entities a run changed, read from the revisions it made: the ids a revert's batches
take (`run_changed_batch`), the revisions of a revert's chunk (`run_revisions_of`) and the
counts the admin's revert page shows (`run_changed_counts`, `run_changed_during_count`). On
PostgreSQL each walks the revisions' (run, entity) index one probe per entity, so its work
grows with the run, not with the revisions kept."""

import json

from django.db import connection
from django.db.models import Count, Exists, Max, Min, OuterRef, QuerySet

from entities.models import Entity, EntityRevision


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
