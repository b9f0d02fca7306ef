"""JSON Schema checks for entity data, with the failing path in every message."""

import json
from collections.abc import Iterable

from django.conf import settings
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from config.api.errors import FieldError


def json_path(parts: Iterable) -> str:
    """`["seo", "tags", 2]` -> `seo.tags[2]`."""
    path = ""
    for part in parts:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else str(part)
    return path


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


def data_problems(validator, data, *, prefix: str = "data", fits: bool = False) -> list[FieldError]:
    """Every way `data` breaks the size limit or the schema, each located by its path under
    `prefix`. `fits`: the caller knows the data is within the size limit (a batch of
    entities encoded together was)."""
    if not isinstance(data, dict):
        return [FieldError(prefix, "Must be a JSON object.")]
    size = 0 if fits else len(data_encode(data))
    if size > settings.ENTITY_MAX_DATA_BYTES:
        limit = settings.ENTITY_MAX_DATA_BYTES
        return [FieldError(prefix, f"Is {size} bytes as JSON; the limit is {limit}.", "too_large")]
    if validator is None:
        return []
    return [
        FieldError(json_path([prefix, *error.absolute_path]), error.message, "schema")
        for error in sorted(validator.iter_errors(data), key=lambda e: list(map(str, e.path)))
    ]
