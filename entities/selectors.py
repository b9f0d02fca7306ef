from django.db import models

from config.api.errors import Conflict, FieldError, InvalidInput, NotFound
from entities.labels import entity_label
from entities.models import Entity, EntityRevision, EntityType
from entities.revisions import RevisionGone, VersionState, version_state


def entity_type_get(*, entity_type_id: str, field: str | None = None) -> EntityType:
    """The entity type, or NotFound; with `field`, a 400 naming that request field instead."""
    entity_type = EntityType.objects.filter(pk=entity_type_id).first()
    if entity_type is None:
        message = f"No entity type {entity_type_id!r} exists."
        if field:
            raise InvalidInput(message, details=[FieldError(field, message, "does_not_exist")])
        raise NotFound(message)
    return entity_type


def entity_list(*, entity_type_id: str | None = None, status: str | None = None):
    entities = Entity.objects.all()
    if entity_type_id:
        entities = entities.filter(entity_type_id=entity_type_id)
    if status:
        if status not in Entity.Status.values:
            raise InvalidInput(
                "Invalid status filter.",
                details=[FieldError("status", "Use one of: " + ", ".join(Entity.Status.values))],
            )
        entities = entities.filter(status=status)
    return entities


def entity_ids_of_type(*, entity_type_id: str, entity_ids: list[str]) -> set[str]:
    """Which of `entity_ids` are entities of the type (the ids go as one array parameter on
    PostgreSQL, several times faster than an IN list of 10,000)."""
    return set(
        Entity.objects.filter(pk__any=entity_ids, entity_type_id=entity_type_id).values_list(
            "pk", flat=True
        )
    )


ENTITY_TYPE_USERS_NAMED = 10


def entity_type_users(*, entity_type: EntityType) -> list[FieldError]:
    """What keeps an entity type from being deleted: one entry per kind of record that
    protects it (its entities, the workflows of upper layers, archived ones too), naming up to
    ENTITY_TYPE_USERS_NAMED of them. Read relation by relation with a bounded query, unlike
    Django's ProtectedError, which loads every protecting row (a million entities)."""
    users = []
    for relation in EntityType._meta.related_objects:
        if relation.on_delete is not models.PROTECT:
            continue
        rows = list(
            relation.related_model._base_manager.filter(
                **{relation.field.name: entity_type}
            ).order_by("pk")[: ENTITY_TYPE_USERS_NAMED + 1]
        )
        if not rows:
            continue
        named = ", ".join(_label(row) for row in rows[:ENTITY_TYPE_USERS_NAMED])
        more = " and more" if len(rows) > ENTITY_TYPE_USERS_NAMED else ""
        kind = str(relation.related_model._meta.verbose_name_plural)
        users.append(FieldError(relation.related_name or kind, f"{kind}: {named}{more}", "in_use"))
    return users


def _label(row) -> str:
    name = str(row)
    return row.pk if name == row.pk else f"{name} ({row.pk})"


def entity_revisions(*, entity_id: str):
    """The entity's revisions kept, newest version first."""
    return EntityRevision.objects.filter(entity_id=entity_id).order_by("-version")


def entity_version(*, entity: Entity, version: int) -> tuple[EntityRevision, VersionState]:
    """A version's revision and the entity as it was then: 404 when the version's revision is
    not kept (or never was), 409 when a newer one it is rebuilt through was pruned."""
    revision = EntityRevision.objects.filter(entity_id=entity.pk, version=version).first()
    if revision is None:
        raise NotFound(f"Entity {entity.pk!r} has no revision {version} (kept).")
    try:
        return revision, version_state(entity=entity, version=version)
    except RevisionGone:
        raise Conflict(
            f"Version {version} can no longer be rebuilt: newer revisions were pruned.",
            code="revision_not_kept",
        ) from None


def entity_labels(*, entity_ids) -> dict[str, str]:
    """Each entity's label for a person (entities/labels.py), id -> label, in one query."""
    rows = Entity.objects.filter(pk__in=set(entity_ids)).values_list("pk", "data")
    return {pk: entity_label(data) for pk, data in rows}
