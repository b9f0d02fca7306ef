"""Writes to entity types and entities. Views, the admin and the pipeline all come here."""

from collections.abc import Callable
from dataclasses import dataclass

from django.db import transaction
from django.db.models import F, ProtectedError
from django.utils import timezone

from config.api.errors import Conflict, FieldError, InvalidInput
from config.bulk import JSONText, rows_update
from entities.models import Entity, EntityType
from entities.schemas import data_encode, data_problems, data_validator, schema_problems

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
    try:
        with transaction.atomic():
            entity_type.delete()
    except ProtectedError as exc:
        users = sorted({obj._meta.verbose_name_plural for obj in exc.protected_objects})
        raise Conflict(
            f"This entity type is in use by {' and '.join(users)}; delete them first.",
            code="in_use",
        ) from None


def entity_create(*, entity_type: EntityType, data: dict) -> Entity:
    _check_data(entity_type, data)
    return Entity.objects.create(entity_type=entity_type, data=data)


def entity_save(*, entity: Entity, created: bool) -> Entity:
    """Save an entity edited as a whole (the admin's form, checked as the API's writes are).
    An edit bumps `version`, as every write does: a run that read the entity before merges
    its changes into this edit instead of writing over it."""
    if not created:
        entity.version = F("version") + 1
    entity.save()
    entity.refresh_from_db(fields=["version"])
    return entity


@transaction.atomic
def entity_update(*, entity_id: str, data: dict) -> Entity:
    """Merge `data`'s top-level keys into the entity; every change bumps `version`.

    The row is locked while merging so that concurrent writers (another request, a running
    workflow committing its working copy) never lose each other's keys.
    """
    entity = Entity.objects.select_for_update().select_related("entity_type").get(pk=entity_id)
    merged = {**entity.data, **data}
    _check_data(entity.entity_type, merged)
    entity.data = merged
    entity.version = F("version") + 1
    entity.save()
    entity.refresh_from_db(fields=["version"])
    return entity


def entity_delete(*, entity: Entity) -> None:
    entity.delete()


@transaction.atomic
def entities_bulk_create(*, entity_type: EntityType, items: list[dict]) -> list[str]:
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
    return [entity.pk for entity in entities]


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
    *, copies: list[WorkingCopy], status: str | None = None
) -> dict[str, int | str]:
    """Write working copies into their entities in one batch; call inside a transaction.

    Each entity is locked, gets the run's changes merged in (see `apply_changes`), is checked
    against its type's schema, and gets a new version (and `status`, when given). Returns, per
    entity id, the new version or an error message; an entity with an error is left as it was.
    """
    results: dict[str, int | str] = {}
    copies = _commit_unchanged(copies, status, results)
    if not copies:
        return results
    rows = {
        entity.pk: entity
        for entity in Entity.objects.select_for_update(of=("self",))
        .select_related("entity_type")
        .filter(pk__any=[copy.entity_id for copy in copies])
        .order_by("pk")  # a fixed lock order: two batches never deadlock
    }
    validators: dict[str, object] = {}
    changed = []
    now = timezone.now()
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
        entity.data, entity.version, entity.updated_at = merged, entity.version + 1, now
        if status is not None:
            entity.status = status
            entity.published_at = now if status == Entity.Status.PUBLISHED else None
        changed.append(entity)
        results[copy.entity_id] = entity.version
    fields = ["data", "version", "status", "published_at", "updated_at"]
    rows_update(
        Entity,
        ({"id": e.pk, **{name: getattr(e, name) for name in fields}} for e in changed),
        match=["id"],
        copy=fields,
    )
    return results


def _commit_unchanged(copies: list[WorkingCopy], status: str | None, results: dict) -> list:
    """The common case in one statement: entities still at the version the run read need no
    merge, so their working copy is written where the version still matches. Returns the
    copies left for the locking merge (edited meanwhile, deleted, or of unknown version).

    Each copy is encoded once, for the size check and for the database."""
    now = timezone.now()
    validators: dict[int, object] = {}
    rows = []
    for copy in copies:
        if copy.version is None:
            continue
        if id(copy.schema) not in validators:
            validators[id(copy.schema)] = data_validator(copy.schema)
        encoded = data_encode(copy.data)
        if not data_problems(validators[id(copy.schema)], copy.data, encoded=encoded):
            rows.append({"id": copy.entity_id, "version": copy.version, "data": JSONText(encoded)})
    if not rows:
        return copies
    assign: dict = {"updated_at": now}
    if status is not None:
        assign.update(
            status=status, published_at=now if status == Entity.Status.PUBLISHED else None
        )
    written = rows_update(
        Entity,
        rows,
        match=["id", "version"],
        copy=["data"],
        increment=["version"],
        assign=assign,
        returning=["id", "version"],
    )
    results.update(written)
    return [copy for copy in copies if copy.entity_id not in results]
