"""JSON Schema checks for entity data, with the failing path in every message."""

import json

from django.conf import settings
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from config.api.errors import FieldError, json_path
from config.api.storable import unstorable


def schema_problems(schema) -> list[FieldError]:
    """Problems with a JSON Schema itself (for an entity type's `schema`)."""
    if schema is None:
        return []
    if not isinstance(schema, dict):
        return [FieldError("schema", "Must be a JSON Schema object.")]
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        return [FieldError(json_path(["schema", *exc.absolute_path]), exc.message)]
    return []


def data_validator(schema) -> Draft202012Validator | None:
    """Build once, check many (a bulk create checks up to 10,000 items with one)."""
    return Draft202012Validator(schema) if schema else None


_COMPACT = json.JSONEncoder(separators=(",", ":"))  # json.dumps() would build one per call


def data_encode(data) -> str:
    """Entity data as compact JSON: what the size limit counts and what the database gets."""
    return _COMPACT.encode(data)


def data_problems(
    validator, data, *, prefix: str = "data", encoded: str | None = None
) -> list[FieldError]:
    """Every way `data` breaks the size limit, the database's text rules or the schema, each
    located by its path under `prefix`. `encoded` is `data_encode(data)`, when the caller has
    it already."""
    if not isinstance(data, dict):
        return [FieldError(prefix, "Must be a JSON object.")]
    if encoded is None:
        encoded = data_encode(data)
    if len(encoded) > settings.ENTITY_MAX_DATA_BYTES:
        limit = settings.ENTITY_MAX_DATA_BYTES
        message = f"Is {len(encoded)} bytes as JSON; the limit is {limit}."
        return [FieldError(prefix, message, "too_large")]
    # The encoding escapes every non-ASCII character: without these escapes in it, the data
    # holds neither a NUL nor a surrogate, and is not walked.
    if "\\u0000" in encoded or "\\ud" in encoded:
        problem = unstorable(data, prefix)
        if problem:
            return [problem]
    if validator is None:
        return []
    return [
        FieldError(json_path([prefix, *error.absolute_path]), error.message, "schema")
        for error in sorted(validator.iter_errors(data), key=lambda e: list(map(str, e.path)))
    ]
