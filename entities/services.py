"""Writes to entity types and entities. Views, the admin and the pipeline all come here; a
run's commit of its working copies is `entities/commits.py`."""

import datetime

from django.db import transaction
from django.db.models import F, ProtectedError, QuerySet
from django.utils import timezone

from config.api.errors import Conflict, FieldError, InvalidInput
from config.api.fields import to_millis
from entities.events import changed_keys, events_record
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
from entities.schemas import data_problems, data_validator, schema_problems
from entities.selectors import entity_type_users

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


def _created_revision(entity: Entity, source: RevisionSource, now=None):
    changes = data_changes({}, entity.data) + state_changes(
        None, entity.status, None, entity.published_at
    )
    return revision_of(entity.pk, entity.version, source, changes, now)


@transaction.atomic
def entity_create(*, entity_type: EntityType, data: dict, source: RevisionSource = API) -> Entity:
    _check_data(entity_type, data)
    entity = Entity.objects.create(entity_type=entity_type, data=data)
    revisions_record([_created_revision(entity, source, entity.created_at)])
    events_record(
        kind=EntityEvent.Kind.CREATED, entity_type_id=entity_type.pk, changes={entity.pk: ()}
    )
    return entity


def entity_lock_as_opened(*, entity_id: str, opened_version: int) -> dict | None:
    """Lock the entity's row for an edit of it as a whole, made on `opened_version` (what
    the form showed), and return its stored `data`, `status` and `published_at` (None: it is
    gone). Raises Conflict (`entity_changed`) if anything wrote it since: saving the form would
    undo that write. The lock lasts to the end of the caller's transaction, so the admin takes
    it when checking the form and keeps it until the form is saved."""
    stored = (
        Entity.objects.select_for_update()
        .filter(pk=entity_id)
        .values("data", "status", "published_at", "version")
        .first()
    )
    if stored is not None and stored.pop("version") != opened_version:
        raise Conflict(
            "The entity changed since this form was opened (it was version "
            f"{opened_version}): reload it and make your change again.",
            code="entity_changed",
        )
    return stored


@transaction.atomic
def entity_save(
    *,
    entity: Entity,
    created: bool,
    opened_version: int | None = None,
    source: RevisionSource = ADMIN,
) -> Entity:
    """Save an entity edited as a whole (the admin's form, checked as the API's writes are),
    made on `opened_version` (required for an edit): refused (Conflict) if anything wrote the
    entity since, as the form's whole `data` would undo that write. An edit bumps `version`,
    as every write does: a run that read the entity before merges its changes into this edit
    instead of writing over it. A save that changes nothing writes nothing (no version: the
    entity does not look changed since the run before, whose revert would skip it)."""
    before = None
    if not created:
        if opened_version is None:
            raise ValueError("An edit of an entity as a whole needs the version it was made on.")
        before = entity_lock_as_opened(entity_id=entity.pk, opened_version=opened_version)
        if before is not None:
            revision_changes = data_changes(before["data"], entity.data) + state_changes(
                before["status"], entity.status, before["published_at"], entity.published_at
            )
            if not revision_changes:
                entity.version = opened_version
                return entity
        entity.version = F("version") + 1
    entity.save()
    entity.refresh_from_db(fields=["version"])
    if created or before is None:
        revisions_record([_created_revision(entity, source, entity.created_at)])
        kind, changes = EntityEvent.Kind.CREATED, {entity.pk: ()}
    else:
        revisions_record(
            [revision_of(entity.pk, entity.version, source, revision_changes, entity.updated_at)]
        )
        keys = changed_keys(before["data"], entity.data)
        # The status alone is a change too (as a restore's or a run's publish is): keys ().
        changed = keys or any(change["field"] == "status" for change in revision_changes)
        kind, changes = EntityEvent.Kind.UPDATED, ({entity.pk: keys} if changed else {})
    events_record(kind=kind, entity_type_id=entity.entity_type_id, changes=changes)
    return entity


@transaction.atomic
def entity_update(*, entity_id: str, data: dict, source: RevisionSource = API) -> Entity:
    """Merge `data`'s top-level keys into the entity; every change bumps `version` (a merge
    that changes nothing writes nothing).

    The row is locked while merging so that concurrent writers (another request, a running
    workflow committing its working copy) never lose each other's keys.
    """
    entity = Entity.objects.select_for_update().select_related("entity_type").get(pk=entity_id)
    merged = {**entity.data, **data}
    _check_data(entity.entity_type, merged)
    keys = changed_keys(entity.data, merged)
    changes = data_changes(entity.data, merged)
    if not changes:
        # Nothing changes (a sync sending the values the entity has): no new version. One
        # would write an empty revision and make the entity look changed since the run
        # before, whose revert would then skip it.
        return entity
    entity.data = merged
    entity.version = F("version") + 1
    entity.save()
    entity.refresh_from_db(fields=["version"])
    revisions_record([revision_of(entity.pk, entity.version, source, changes, entity.updated_at)])
    if keys:  # an update that changes nothing triggers nothing
        events_record(
            kind=EntityEvent.Kind.UPDATED,
            entity_type_id=entity.entity_type_id,
            changes={entity.pk: keys},
        )
    return entity


@transaction.atomic
def entity_delete(*, entity: Entity) -> None:
    """Delete the entity and its revisions (the ORM's cascade: the database does not check
    the revisions' key). Its row is locked first, so a run's commit of it either ends before
    (its revision is deleted here) or finds it gone (and writes no revision)."""
    entities_delete(entities=Entity.objects.filter(pk=entity.pk))


@transaction.atomic
def entities_delete(*, entities: QuerySet) -> int:
    """`entity_delete` for each of `entities` (a queryset), their rows locked in id order
    first; returns how many were deleted."""
    locked = list(entities.order_by("pk").select_for_update().values_list("pk", flat=True))
    _, by_model = Entity.objects.filter(pk__any=locked).delete()
    return by_model.get(Entity._meta.label, 0)


@transaction.atomic
def entity_restore(*, entity_id: str, version: int, source: RevisionSource) -> Entity:
    """Make a new version whose data and status (and publishedAt) are those of `version`,
    recorded as made by `source` (a restore); none when the entity has them already (it is
    returned as it is: no empty revision, no trigger). 409 when that version can no longer
    be rebuilt (its revisions were pruned, or it predates revisions), 400 when there is no
    such version or its data no longer fits the type's schema (each broken rule a `version`
    detail).
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
    problems = data_problems(data_validator(entity.entity_type.schema), target.data)
    if problems:  # the schema changed since: the version is the problem, not the body
        raise InvalidInput(
            f"Version {version} no longer fits the entity type's schema (changed since): "
            f"{problems[0].field}: {problems[0].message}",
            details=[
                FieldError("version", f"Version {version}'s {p.field}: {p.message}", "schema")
                for p in problems
            ],
        )
    published = None
    if target.status == Entity.Status.PUBLISHED:
        if target.published_at is None:
            published = timezone.now()
        elif target.published_at == to_millis(entity.published_at):
            # The same time (revisions keep it in ms): kept as stored, not moved by the µs.
            published = entity.published_at
        else:
            published = datetime.datetime.fromtimestamp(target.published_at / 1000, datetime.UTC)
    changes = data_changes(entity.data, target.data) + state_changes(
        entity.status, target.status, entity.published_at, published
    )
    if not changes:  # the entity is as that version was: nothing to write, nor to trigger
        return entity
    keys = changed_keys(entity.data, target.data)
    entity.data, entity.status, entity.published_at = target.data, target.status, published
    entity.version = F("version") + 1
    entity.save()
    entity.refresh_from_db(fields=["version"])
    revisions_record([revision_of(entity.pk, entity.version, source, changes, entity.updated_at)])
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
