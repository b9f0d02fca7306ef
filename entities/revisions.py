"""Entity revisions: what each version of an entity changed, and by whom.

Every write that bumps an entity's `version` records one `EntityRevision` in its
transaction, with the top-level data keys it changed (before and after), and status and
publishedAt when they changed. A version's data and status are the current entity's with the
changes of the newer revisions undone, so restoring a version needs every revision from it
to the newest still kept (retention prunes the older ones: `revisions_prune`).
"""

import datetime
from contextlib import closing
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction
from django.db.models import Exists, OuterRef, Q, QuerySet
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
    (`status_before` None: a new entity). publishedAt is compared in ms too: a restore or a
    revert gives back the time a revision kept, in ms, and a difference below that is no
    change anyone can see."""
    changes = []
    if status_before != status_after:
        change = {"field": "status", "after": status_after}
        if status_before is not None:
            change["before"] = status_before
        changes.append(change)
    before, after = to_millis(published_before), to_millis(published_after)
    if before != after:
        changes.append({"field": "publishedAt", "before": before, "after": after})
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
        # Up to the entity's version as read: a write since (a run's commit while a client
        # reads an old version) adds a newer revision, which is no gap in the history.
        EntityRevision.objects.filter(
            entity_id=entity.pk, version__gte=version, version__lte=entity.version
        )
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


def revisions_prune(
    *, now: datetime.datetime, limit: int, held_runs: tuple[QuerySet, ...] = ()
) -> int:
    """Delete revisions older than ENTITY_REVISIONS_KEEP_DAYS that are not the newest of
    their entity, nor held by a newer revision of the same run (below), nor made by a run
    of `held_runs` (querysets of run ids, which the layer above knows: the open runs, and
    those an open revert is reverting), up to `limit` of them plus the rest of their runs'
    revisions of the same entities, in one transaction; returns how many. One of
    retention's pruners (`jobs.retention`), which calls again while a batch was full.

    A run's revisions of an entity go together: a revert undoes a run from all of them (the
    first change of each field holds its value before the run), so with the first pruned
    and a later one kept it would undo the later alone and report the entity reverted. The
    first one is older (a publish step before a wait, a revision kept fewer days than the
    run), so pruning by age alone would do exactly that. Keeping them together lets a
    revert trust that the run's first kept revision of an entity is its first.

    A run still open has not made its last revision of an entity yet (one waiting at a
    review, a publish step behind it): with an edit since, its first one looked prunable
    alone, and the revert of the run undid its final commit only, reporting the entity
    reverted with the publish left in place. So an open run's revisions are all kept."""
    cutoff = now - datetime.timedelta(days=settings.ENTITY_REVISIONS_KEEP_DAYS)
    prunable = _prunable(cutoff)
    for held in held_runs:
        prunable = prunable.exclude(run_id__in=held)
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
