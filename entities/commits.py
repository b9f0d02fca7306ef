"""A run's commit: its working copies written into their entities in one batch, each with
its revision and outbox row. An entity still at the version the run read is written in one
statement with its revision (`entities.versioned_write`); one edited meanwhile is merged
under its row lock, keeping the edit's other keys (`apply_changes`), unless the commit is
`at_version` only (a revert): then it is left as it is (`ChangedSince`)."""

import datetime
from collections.abc import Callable
from dataclasses import dataclass

from django.utils import timezone

from config.bulk import rows_update
from entities.events import ChangeOrigin, changed_keys, event_listened, events_record
from entities.json_values import json_equal
from entities.models import Entity, EntityEvent
from entities.revisions import (
    RevisionSource,
    Source,
    data_changes,
    revision_of,
    revisions_record,
    state_changes,
)
from entities.schemas import data_encode, data_problems, data_validator
from entities.versioned_write import VersionedWrite, entities_write_versioned

RUN = RevisionSource(Source.RUN)


@dataclass(frozen=True)
class PublishedAt:
    """A publishedAt a commit writes instead of the one its status gives (now when
    published, else null): a revert's, the entity's before the run."""

    at: datetime.datetime | None


@dataclass(frozen=True)
class WorkingCopy:
    """A run's copy of an entity: `base` is the data it started from (or last committed), or
    a function returning it (called only when the entity changed meanwhile), `data` what
    the steps made of it."""

    entity_id: str
    base: dict | Callable[[], dict]
    data: dict
    version: int | None = None  # the entity's version when `base` was read, if known
    schema: dict | None = None  # the entity type's schema, with `version`
    entity_type_id: str = ""  # for the outbox; read from the entity when not given
    source: RevisionSource | None = None  # who made the change, if not the commit's source
    # The entity's status and publishedAt at `version`, if known: a commit that sets the
    # status writes only the copies that have them in one statement (they give the
    # revision's status changes), the others under row locks.
    stored: tuple[str, datetime.datetime | None] | None = None
    # Written with the status (or, with no status, alone), under the row lock.
    published: PublishedAt | None = None


@dataclass(frozen=True)
class ChangedSince:
    """A commit's result for an entity no longer at the version its copy was read at, left
    as it is by a commit `at_version` only: `version` is the one it is at."""

    version: int


def apply_changes(current: dict, base: dict, data: dict) -> dict:
    """`current` with the top-level keys that changed from `base` to `data` applied, so an
    edit made to other keys since `base` was read survives the commit."""
    merged = dict(current)
    for key, value in data.items():
        if key not in base or not json_equal(base[key], value):
            merged[key] = value
    for key in base:
        if key not in data:
            merged.pop(key, None)
    return merged


def entities_commit(
    *,
    copies: list[WorkingCopy],
    status: str | None = None,
    origin: ChangeOrigin | None = None,
    source: RevisionSource = RUN,
    at_version: bool = False,
    merged: dict[str, dict] | None = None,
) -> dict[str, int | str | ChangedSince]:
    """Write working copies into their entities in one batch; call inside a transaction.

    Each entity is locked, gets the run's changes merged in (see `apply_changes`), is checked
    against its type's schema, and gets a new version (and `status`, when given). Returns, per
    entity id, the new version or an error message; an entity with an error is left as it was.
    The changes are recorded in the outbox as made by `origin` (a run's workflow), and each
    new version as a revision made by `source` (or the copy's own). A copy's `published`
    is its publishedAt, in place of the one `status` gives.

    `at_version`: write each entity only if it is still at the copy's `version`, never
    merging; one changed since is left as it is, its result `ChangedSince`. A revert's
    copies are the values before the run of an entity it checked was at the run's last
    version: merged onto a later edit, they would write over that edit.

    `merged`, when given, gets the data written for each entity whose copy was merged onto
    an edit made since it was read (what was stored is not the copy): a caller that goes on
    with the copy (a run after a publish step) must go on from that, or its next commit, at
    the new version, would write the copy whole over the edit.
    """
    results: dict[str, int | str | ChangedSince] = {}
    revisions: list = []
    now = timezone.now()
    _entities_commit(
        _commit_unchanged(copies, status, results, source, now),
        status,
        results,
        revisions,
        source,
        now,
        at_version,
        merged,
    )
    revisions_record(revisions)
    _record_commit(copies, status, results, origin)
    return results


def _record_commit(copies, status, results, origin) -> None:
    """Outbox rows for the entities committed, with the keys each changed."""
    by_type: dict[str, dict[str, tuple[str, ...]]] = {}
    unknown = [c.entity_id for c in copies if not c.entity_type_id]
    types = (
        dict(Entity.objects.filter(pk__any=unknown).values_list("pk", "entity_type_id"))
        if unknown
        else {}
    )
    listened: dict[str, bool] = {}
    for copy in copies:
        if not isinstance(results.get(copy.entity_id), int):
            continue
        type_id = copy.entity_type_id or types.get(copy.entity_id, "")
        if type_id not in listened:
            listened[type_id] = event_listened(EntityEvent.Kind.UPDATED, type_id)
        if not listened[type_id]:
            continue  # parsing the committed copy to find the changed keys would be wasted
        base = copy.base() if callable(copy.base) else copy.base
        keys = changed_keys(base, copy.data)
        if keys or status is not None:
            by_type.setdefault(type_id, {})[copy.entity_id] = keys
    for type_id, changes in by_type.items():
        events_record(
            kind=EntityEvent.Kind.UPDATED, entity_type_id=type_id, changes=changes, origin=origin
        )


def _entities_commit(
    copies: list[WorkingCopy],
    status,
    results: dict,
    revisions: list,
    source,
    now,
    at_version,
    merged_out: dict | None = None,
) -> None:
    """The merge under row locks, for the copies `_commit_unchanged` left (with
    `at_version`, only of those whose entity is at their version still: one whose status
    was not known is written here)."""
    if not copies:
        return
    rows = {
        entity.pk: entity
        for entity in Entity.objects.select_for_update(of=("self",))
        .select_related("entity_type")
        .filter(pk__any=[copy.entity_id for copy in copies])
        .order_by("pk")  # a fixed lock order: two batches never deadlock
    }
    validators: dict[str, object] = {}
    changed = []
    for copy in copies:
        entity = rows.get(copy.entity_id)
        if entity is None:
            results[copy.entity_id] = "The entity was deleted during the run."
            continue
        if at_version and copy.version is not None and entity.version != copy.version:
            results[copy.entity_id] = ChangedSince(entity.version)
            continue
        if entity.entity_type_id not in validators:
            validators[entity.entity_type_id] = data_validator(entity.entity_type.schema)
        base = copy.base() if callable(copy.base) else copy.base
        merged = apply_changes(entity.data, base, copy.data)
        problems = data_problems(validators[entity.entity_type_id], merged)
        if problems:
            results[copy.entity_id] = (
                f"Cannot commit the entity: {problems[0].field}: {problems[0].message}"
            )
            continue
        changes = data_changes(entity.data, merged)
        entity.data, entity.version, entity.updated_at = merged, entity.version + 1, now
        if status is not None or copy.published is not None:
            new_status = entity.status if status is None else status
            published = now if new_status == Entity.Status.PUBLISHED else None
            if copy.published is not None:
                published = copy.published.at
            changes += state_changes(entity.status, new_status, entity.published_at, published)
            entity.status, entity.published_at = new_status, published
        changed.append(entity)
        revisions.append(
            revision_of(entity.pk, entity.version, copy.source or source, changes, now)
        )
        results[copy.entity_id] = entity.version
        if merged_out is not None and not json_equal(merged, copy.data):
            merged_out[copy.entity_id] = merged
    fields = ["data", "version", "status", "published_at", "updated_at"]
    rows_update(
        Entity,
        ({"id": e.pk, **{name: getattr(e, name) for name in fields}} for e in changed),
        match=["id"],
        copy=fields,
    )


def _commit_unchanged(
    copies: list[WorkingCopy], status: str | None, results: dict, source, now
) -> list:
    """The common case in one statement: entities still at the version the run read need no
    merge, so their working copy is written where the version still matches, with its
    revision (`entities.versioned_write`). Returns the copies left for the locking merge
    (edited meanwhile, deleted, or of unknown version).

    Each copy is encoded once, for the size check and for the database. The revisions
    compare the copy with its base (the entity's data at that version), and its status and
    publishedAt as stored at that version with the new ones."""
    validators: dict[int, object] = {}
    writes = []
    published = None
    if status is not None:
        published = now if status == Entity.Status.PUBLISHED else None
    for copy in copies:
        if copy.version is None or (status is not None and copy.stored is None):
            continue
        if copy.published is not None:  # its own publishedAt: written under the row lock
            continue
        if id(copy.schema) not in validators:
            validators[id(copy.schema)] = data_validator(copy.schema)
        encoded = data_encode(copy.data)
        if not data_problems(validators[id(copy.schema)], copy.data, encoded=encoded):
            base = copy.base() if callable(copy.base) else copy.base
            changes = data_changes(base, copy.data)
            if status is not None:
                changes += state_changes(copy.stored[0], status, copy.stored[1], published)
            writes.append(
                VersionedWrite(copy.entity_id, copy.version, encoded, changes, copy.source)
            )
    if not writes:
        return copies
    results.update(entities_write_versioned(writes, status=status, now=now, source=source))
    return [copy for copy in copies if copy.entity_id not in results]
