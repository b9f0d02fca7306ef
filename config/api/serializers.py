"""Request serializers that take JSON as the OpenAPI schema describes it.

DRF is lenient by default: a field it does not know is dropped, `5` becomes `"5"` for a
string field and `"yes"` becomes `true` for a boolean one. A typo (`entityTypeID`) or a wrong
type then "works" and stores something the client did not mean. `StrictSerializer` refuses
both with a 400 that names each field, like step configs (a JSON Schema with
`additionalProperties: false`) already do.
"""

import difflib
from collections.abc import Mapping

from django.http import QueryDict
from rest_framework import serializers
from rest_framework.exceptions import ErrorDetail, ValidationError

# The JSON type each kind of field takes, checked before DRF's coercion can hide a mistake.
# Booleans are ints in Python, so they are excluded from the numeric kinds explicitly.
_EXPECTED = (
    (serializers.BooleanField, (bool,), (), "a boolean"),
    (serializers.CharField, (str,), (), "a string"),
    (serializers.MultipleChoiceField, (list,), (), "an array"),
    (serializers.ChoiceField, (str,), (), "a string"),
    (serializers.IntegerField, (int,), (bool,), "an integer"),
    (serializers.FloatField, (int, float), (bool,), "a number"),
    (serializers.DictField, (Mapping,), (), "an object"),
    (serializers.ListField, (list,), (), "an array"),
)


def json_type(value) -> str:
    """The JSON name of a parsed value's type, for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, Mapping):
        return "an object"
    return type(value).__name__


def _type_problem(field: serializers.Field, value) -> ErrorDetail | None:
    if value is None:
        return None  # DRF answers null itself (allow_null or "may not be null")
    for kind, accepted, refused, name in _EXPECTED:
        if isinstance(field, kind):
            if isinstance(value, accepted) and not isinstance(value, refused):
                return None
            return ErrorDetail(f"Must be {name}, not {json_type(value)}.", code="type")
    return None


class StrictSerializer(serializers.Serializer):
    """A request body serializer that refuses fields it does not declare (code
    `unknown_field`) and values of the wrong JSON type for string, boolean and number fields
    (code `type`), each named by its path, together with any other problem of the body.

    Use it as the base of every serializer that reads a request body (nested ones too); the
    OpenAPI schema marks its request components `additionalProperties: false`.

    `refuses_empty`: no field is required alone, but `validate` refuses a body without one of
    them (`entityIds` or `filter`): the OpenAPI schema marks the request body required, as it
    does by itself for a serializer with a required field."""

    refuses_empty = False

    def to_internal_value(self, data):
        problems = self._strict_problems(data) if isinstance(data, Mapping) else {}
        try:
            value = super().to_internal_value(data)
        except ValidationError as exc:
            if problems and isinstance(exc.detail, dict):
                raise ValidationError({**exc.detail, **problems}) from None
            raise
        if problems:
            raise ValidationError(problems)
        return value

    def _strict_problems(self, data: Mapping) -> dict[str, list[ErrorDetail]]:
        fields = {field.field_name: field for field in self._writable_fields}
        problems = {}
        for key, value in data.items():
            field = fields.get(key)
            if field is None:
                problems[key] = [ErrorDetail(_unknown_message(key, fields), code="unknown_field")]
            elif (problem := _type_problem(field, value)) is not None:
                problems[key] = [problem]
        return problems


def _unknown_message(key: str, fields: Mapping) -> str:
    close = difflib.get_close_matches(str(key), list(fields), n=1)
    if close:
        return f"Unknown field; did you mean `{close[0]}`?"
    known = ", ".join(f"`{name}`" for name in fields) or "none"
    return f"Unknown field; the fields are: {known}."


class EmptyBodySerializer(StrictSerializer):
    """For an action that takes no body: anything sent in one is an unknown field."""


def validated(serializer_class: type[serializers.Serializer], data, **kwargs) -> dict:
    """Validate request input (a JSON body, or query parameters) with a serializer; errors
    become the 400 error shape.

    Query parameters are passed on as a plain dict: DRF reads a QueryDict as an HTML form,
    where `?status=` means "not given", so an empty filter would silently list everything;
    as plain values, an empty one is refused like any other value the schema does not allow.
    """
    if isinstance(data, QueryDict):
        data = data.dict()
    serializer = serializer_class(data=data, **kwargs)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data
