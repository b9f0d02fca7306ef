"""A filter over the entities of one type, as runs and schedules take it:
`{status?, createdAfter?, createdBefore?, updatedAfter?, updatedBefore?, ids?}` (times in
ms since the epoch). Declared once as a serializer (API validation, the OpenAPI schema, a
trigger's `filter`) and turned into a queryset here."""

from datetime import UTC, datetime

from django.conf import settings
from django.db.models import QuerySet
from rest_framework import serializers

from config.api.errors import FieldError, InvalidInput, json_path
from config.api.serializers import StrictSerializer
from entities.models import Entity

# Milliseconds between year 1 and year 9999: what a datetime can hold.
MIN_MS, MAX_MS = -62_135_596_800_000, 253_402_300_799_000
TIME_BOUNDS = {
    "createdAfter": ("created_at", "gt"),
    "createdBefore": ("created_at", "lt"),
    "updatedAfter": ("updated_at", "gt"),
    "updatedBefore": ("updated_at", "lt"),
}


class IdListField(serializers.ListField):
    """A list of id strings, checked in one tight loop: a run names up to 10,000 ids, and a
    DRF child field per element costs more than storing the run. Its `min_length` and
    `max_length` are counts of ids, in the OpenAPI schema as `minItems` and `maxItems`."""

    child = serializers.CharField(max_length=64)

    def to_internal_value(self, data):
        if isinstance(data, str | dict) or not hasattr(data, "__iter__"):
            self.fail("not_a_list", input_type=type(data).__name__)
        data = list(data)
        fewest, most = self.min_length or 0, self.max_length
        if len(data) < fewest or (most is not None and len(data) > most):
            many = f"{fewest} to {most}" if most is not None else f"at least {fewest}"
            raise serializers.ValidationError(f"Give {many} ids, not {len(data)}.")
        errors = {
            index: ["Must be an id string of 1 to 64 characters."]
            for index, value in enumerate(data)
            if not isinstance(value, str) or not 0 < len(value) <= 64
        }
        if errors:
            raise serializers.ValidationError(errors)
        return data


class FilterIdsField(IdListField):
    """A filter's ids: 1 to RUN_MAX_IDS of them, each once."""

    def to_internal_value(self, data):
        data = super().to_internal_value(data)
        if not 1 <= len(data) <= settings.RUN_MAX_IDS:
            raise serializers.ValidationError(
                f"Give 1 to {settings.RUN_MAX_IDS} ids, not {len(data)}."
            )
        return list(dict.fromkeys(data))


class EntityFilterSerializer(StrictSerializer):
    """Which entities of the workflow's entity type: every condition given must hold."""

    status = serializers.ChoiceField(choices=Entity.Status.choices, required=False)
    createdAfter = serializers.IntegerField(
        required=False, min_value=MIN_MS, max_value=MAX_MS, help_text="ms; created after this."
    )
    createdBefore = serializers.IntegerField(
        required=False, min_value=MIN_MS, max_value=MAX_MS, help_text="ms; created before this."
    )
    updatedAfter = serializers.IntegerField(
        required=False, min_value=MIN_MS, max_value=MAX_MS, help_text="ms; updated after this."
    )
    updatedBefore = serializers.IntegerField(
        required=False, min_value=MIN_MS, max_value=MAX_MS, help_text="ms; updated before this."
    )
    ids = FilterIdsField(
        required=False,
        min_length=1,
        max_length=settings.RUN_MAX_IDS,
        help_text="Only these entities (up to 10,000 ids).",
    )


def entity_filter_clean(value, *, path: str = "filter") -> dict:
    """The filter as stored (only the keys given), or InvalidInput naming each problem by
    its path (`filter.createdAfter`, `triggers[0].filter.status`)."""
    serializer = EntityFilterSerializer(data=value)
    if serializer.is_valid():
        return dict(serializer.validated_data)
    problems = [
        FieldError(json_path([path, *where]), message)
        for where, message in _flatten(serializer.errors)
    ]
    raise InvalidInput(f"{problems[0].field}: {problems[0].message}", details=problems)


def _flatten(errors, where=()):
    if isinstance(errors, dict):
        for key, value in errors.items():
            yield from _flatten(value, where if key == "non_field_errors" else (*where, key))
    elif isinstance(errors, list) and errors and not isinstance(errors[0], str):
        for value in errors:
            yield from _flatten(value, where)
    else:
        yield where, str(errors[0] if isinstance(errors, list) else errors)


def entities_matching(*, entity_type_id: str, entity_filter: dict) -> QuerySet:
    """The entities of the type that match a cleaned filter (no ordering)."""
    entities = Entity.objects.filter(entity_type_id=entity_type_id)
    if "status" in entity_filter:
        entities = entities.filter(status=entity_filter["status"])
    for key, (column, lookup) in TIME_BOUNDS.items():
        if key in entity_filter:
            moment = datetime.fromtimestamp(entity_filter[key] / 1000, tz=UTC)
            entities = entities.filter(**{f"{column}__{lookup}": moment})
    if "ids" in entity_filter:
        entities = entities.filter(pk__any=entity_filter["ids"])
    return entities
