"""Writes to entity types and entities. Views, the admin and the pipeline all come here."""

import datetime
from collections.abc import Callable
from dataclasses import dataclass

from django.db import transaction
from django.db.models import F, ProtectedError
from django.utils import timezone

from config.api.errors import Conflict, FieldError, InvalidInput
from config.bulk import rows_update
from entities.events import ChangeOrigin, changed_keys, event_listened, events_record
from entities.models import Entity, EntityEvent, EntityType
from entities.revisions import (
    RevisionGone,
    RevisionSource,
    Source,
    data_changes,
    revision_of,
    revisions_record,
    state_changes,
    version_state,
)
from entities.schemas import data_encode, data_problems, data_validator, schema_problems
from entities.selectors import entity_type_users
from entities.versioned_write import VersionedWrite, entities_write_versioned

BULK_MAX_ITEMS = 10_000
BULK_BATCH_SIZE = 1_000


def _check_schema(schema) -> None:
    problems = schema_problems(schema)
    if problems:
        raise InvalidInput("The schema is not a valid JSON Schema.", details=problems)


def _check_data(entity_type: EntityType, data, *, prefix: str = "data") -> None:
    problems = data_problems(data_validator(entity_type.schema), data, prefix=prefix)
    if problems:
        raise InvalidInput(f"{problems[0].field}: {problems[0].message}", details=problems)


def _check_name_free(name: str, *, exclude_pk: str | None = None) -> None:
    if EntityType.objects.filter(name=name).exclude(pk=exclude_pk).exists():
        raise InvalidInput(
            "An entity type with this name exists.",
            details=[FieldError("name", f"An entity type named {name!r} exists.", "unique")],
        )


def entity_type_create(*, name: str, description: str = "", schema=None) -> EntityType:
    _check_schema(schema)
    _check_name_free(name)
    return EntityType.objects.create(name=name, description=description, schema=schema)


def entity_type_update(*, entity_type: EntityType, **changes) -> EntityType:
    """Change name, description or schema. A new schema applies to later writes; entities
    already stored are not revalidated."""
    if "schema" in changes:
        _check_schema(changes["schema"])
    if "name" in changes:
        _check_name_free(changes["name"], exclude_pk=entity_type.pk)
    for field, value in changes.items():
        setattr(entity_type, field, value)
    entity_type.save()
    return entity_type


def entity_type_delete(*, entity_type: EntityType) -> None:
    """Delete an unused entity type; a 409 `in_use` naming what uses it otherwise (workflows
    keep it while they exist, archived ones too)."""
    with transaction.atomic():
        locked = EntityType.objects.select_for_update().get(pk=entity_type.pk)
        users = entity_type_users(entity_type=locked)
        if not users:
            try:
                locked.delete()
                return
            except ProtectedError:  # something came to use it meanwhile: say what
                users = entity_type_users(entity_type=locked)
    raise Conflict(entity_type_in_use_message(users), code="in_use", details=users)


def entity_type_in_use_message(users: list[FieldError]) -> str:
    return (
        "This entity type is in use, by "
        + "; ".join(user.message for user in users)
        + ". Delete its entities and workflows (an archived workflow still uses it) first."
    )


API = RevisionSource(Source.API)
ADMIN = RevisionSource(Source.ADMIN)
RUN = RevisionSource(Source.RUN)


def _created_revision(entity: Entity, source: RevisionSource, now=None):
    changes = data_changes({}, entity.data) + state_changes(
        None, entity.status, None, entity.published_at
    )
    return revision_of(entity.pk, entity.version, source, changes, now)


@transaction.atomic
def entity_create(*, entity_type: EntityType, data: dict, source: RevisionSource = API) -> Entity:
    _check_data(entity_type, data)
    entity = Entity.objects.create(entity_type=entity_type, data=data)
    revisions_record([_created_revision(entity, source)])
    events_record(
        kind=EntityEvent.Kind.CREATED, entity_type_id=entity_type.pk, changes={entity.pk: ()}
    )
    return entity


@transaction.atomic
def entity_save(*, entity: Entity, created: bool, source: RevisionSource = ADMIN) -> Entity:
    """Save an entity edited as a whole (the admin's form, checked as the API's writes are).
    An edit bumps `version`, as every write does: a run that read the entity before merges
    its changes into this edit instead of writing over it."""
    before = None
    if not created:
        before = (
            Entity.objects.select_for_update()
            .filter(pk=entity.pk)
            .values("data", "status", "published_at")
            .first()
        )
        entity.version = F("version") + 1
    entity.save()
    entity.refresh_from_db(fields=["version"])
    if created or before is None:
        revisions_record([_created_revision(entity, source)])
        kind, changes = EntityEvent.Kind.CREATED, {entity.pk: ()}
    else:
        revision_changes = data_changes(before["data"], entity.data) + state_changes(
            before["status"], entity.status, before["published_at"], entity.published_at
        )
        revisions_record([revision_of(entity.pk, entity.version, source, revision_changes)])
        keys = changed_keys(before["data"], entity.data)
        kind, changes = EntityEvent.Kind.UPDATED, ({entity.pk: keys} if keys else {})
    events_record(kind=kind, entity_type_id=entity.entity_type_id, changes=changes)
    return entity


@transaction.atomic
def entity_update(*, entity_id: str, data: dict, source: RevisionSource = API) -> Entity:
    """Merge `data`'s top-level keys into the entity; every change bumps `version`.

    The row is locked while merging so that concurrent writers (another request, a running
    workflow committing its working copy) never lose each other's keys.
    """
    entity = Entity.objects.select_for_update().select_related("entity_type").get(pk=entity_id)
    merged = {**entity.data, **data}
    _check_data(entity.entity_type, merged)
    keys = changed_keys(entity.data, merged)
    changes = data_changes(entity.data, merged)
    entity.data = merged
    entity.version = F("version") + 1
    entity.save()
    entity.refresh_from_db(fields=["version"])
    revisions_record([revision_of(entity.pk, entity.version, source, changes)])
    if keys:  # an update that changes nothing triggers nothing
        events_record(
            kind=EntityEvent.Kind.UPDATED,
            entity_type_id=entity.entity_type_id,
            changes={entity.pk: keys},
        )
    return entity


def entity_delete(*, entity: Entity) -> None:
    entity.delete()  # and its revisions (on_delete CASCADE)


@transaction.atomic
def entity_restore(*, entity_id: str, version: int, source: RevisionSource) -> Entity:
    """Make a new version whose data and status (and publishedAt) are those of `version`,
    recorded as made by `source` (a restore). 409 when that version can no longer be rebuilt
    (its revisions were pruned, or it predates revisions), 400 when there is no such version.
    """
    entity = Entity.objects.select_for_update().select_related("entity_type").get(pk=entity_id)
    if not 1 <= version <= entity.version:
        message = f"The entity has versions 1 to {entity.version}, not {version}."
        raise InvalidInput(message, details=[FieldError("version", message)])
    try:
        target = version_state(entity=entity, version=version)
    except RevisionGone:
        raise Conflict(
            f"Version {version} of this entity is no longer kept; it cannot be restored.",
            code="revision_not_kept",
        ) from None
    _check_data(entity.entity_type, target.data)
    published = None
    if target.status == Entity.Status.PUBLISHED:
        published = (
            datetime.datetime.fromtimestamp(target.published_at / 1000, datetime.UTC)
            if target.published_at is not None
            else timezone.now()
        )
    changes = data_changes(entity.data, target.data) + state_changes(
        entity.status, target.status, entity.published_at, published
    )
    keys = changed_keys(entity.data, target.data)
    entity.data, entity.status, entity.published_at = target.data, target.status, published
    entity.version = F("version") + 1
    entity.save()
    entity.refresh_from_db(fields=["version"])
    revisions_record([revision_of(entity.pk, entity.version, source, changes)])
    if keys or any(change["field"] == "status" for change in changes):
        events_record(
            kind=EntityEvent.Kind.UPDATED,
            entity_type_id=entity.entity_type_id,
            changes={entity.pk: keys},
        )
    return entity


@transaction.atomic
def entities_bulk_create(
    *, entity_type: EntityType, items: list[dict], source: RevisionSource = API
) -> list[str]:
    """Create up to 10,000 entities in one transaction; all or nothing.

    Every item is checked before anything is written, and every bad item is reported with
    its index (`items[12].data.price`). Rows go in with batched INSERTs, not a save per item.
    """
    if not 1 <= len(items) <= BULK_MAX_ITEMS:
        raise InvalidInput(
            "Invalid number of items.",
            details=[FieldError("items", f"Give 1 to {BULK_MAX_ITEMS} items, not {len(items)}.")],
        )
    validator = data_validator(entity_type.schema)
    problems = []
    for index, item in enumerate(items):
        problems += data_problems(validator, item.get("data"), prefix=f"items[{index}].data")
    if problems:
        bad = sorted({p.field.split("]")[0] + "]" for p in problems})
        raise InvalidInput(
            f"{len(bad)} of {len(items)} items are invalid; nothing was created.", details=problems
        )
    now = timezone.now()
    entities = [
        Entity(entity_type=entity_type, data=item["data"], created_at=now, updated_at=now)
        for item in items
    ]
    Entity.objects.bulk_create(entities, batch_size=BULK_BATCH_SIZE)
    revisions_record([_created_revision(entity, source, now) for entity in entities])
    ids = [entity.pk for entity in entities]
    # One outbox row for the whole import: it starts one run per workflow, not 10,000.
    events_record(
        kind=EntityEvent.Kind.CREATED,
        entity_type_id=entity_type.pk,
        changes=dict.fromkeys(ids, ()),
    )
    return ids


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


def apply_changes(current: dict, base: dict, data: dict) -> dict:
    """`current` with the top-level keys that changed from `base` to `data` applied, so an
    edit made to other keys since `base` was read survives the commit."""
    merged = dict(current)
    for key, value in data.items():
        if key not in base or base[key] != value:
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
) -> dict[str, int | str]:
    """Write working copies into their entities in one batch; call inside a transaction.

    Each entity is locked, gets the run's changes merged in (see `apply_changes`), is checked
    against its type's schema, and gets a new version (and `status`, when given). Returns, per
    entity id, the new version or an error message; an entity with an error is left as it was.
    The changes are recorded in the outbox as made by `origin` (a run's workflow), and each
    new version as a revision made by `source` (or the copy's own).
    """
    results: dict[str, int | str] = {}
    revisions: list = []
    now = timezone.now()
    _entities_commit(
        _commit_unchanged(copies, status, results, source, now),
        status,
        results,
        revisions,
        source,
        now,
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
    copies: list[WorkingCopy], status, results: dict, revisions: list, source, now
) -> None:
    """The merge under row locks, for the copies `_commit_unchanged` left."""
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
        if status is not None:
            published = now if status == Entity.Status.PUBLISHED else None
            changes += state_changes(entity.status, status, entity.published_at, published)
            entity.status, entity.published_at = status, published
        changed.append(entity)
        revisions.append(
            revision_of(entity.pk, entity.version, copy.source or source, changes, now)
        )
        results[copy.entity_id] = entity.version
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
    compare the copy with its base (the entity's data at that version)."""
    validators: dict[int, object] = {}
    writes = []
    for copy in copies:
        if copy.version is None:
            continue
        if id(copy.schema) not in validators:
            validators[id(copy.schema)] = data_validator(copy.schema)
        encoded = data_encode(copy.data)
        if not data_problems(validators[id(copy.schema)], copy.data, encoded=encoded):
            base = copy.base() if callable(copy.base) else copy.base
            writes.append(
                VersionedWrite(
                    copy.entity_id,
                    copy.version,
                    encoded,
                    data_changes(base, copy.data),
                    copy.source,
                )
            )
    if not writes:
        return copies
    results.update(entities_write_versioned(writes, status=status, now=now, source=source))
    return [copy for copy in copies if copy.entity_id not in results]
