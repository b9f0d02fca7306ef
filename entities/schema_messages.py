"""Messages for a value that breaks a JSON Schema, saying where and what it must be.

jsonschema's own messages quote the value (`'123-45-6789' is not of type 'integer'`); a run's
item error and a job's log carry them to readers without `entities.view_entity`. These are
built from the keyword and the schema's own value instead (`must be of type integer`).
"""

from jsonschema.exceptions import ValidationError


def _schema_value(value, otherwise: str) -> str:
    """A value the schema holds, shown as written unless it is long."""
    shown = repr(value)
    return shown if len(shown) <= 200 else otherwise


def _limit(value, one: str, many: str) -> str:
    return f"{value} {one if value == 1 else many}"


def _contains(error) -> str:
    if error.validator == "maxContains":
        return f"at most {_limit(error.schema['maxContains'], 'item', 'items')}"
    return f"at least {_limit(error.schema.get('minContains', 1), 'item', 'items')}"


# What a value must be, from the keyword it breaks and the schema's own value for it: never
# the value itself, which a run's item error and a job's log show to readers who may not see
# entity data. Keywords `entities.schemas` implements (and `required`, `dependentRequired`, whose
# messages name only the schema's properties) keep their messages.
_MESSAGES = {
    None: lambda e: "is not allowed here (the schema is false)",
    "type": lambda e: (
        f"must be of type {e.validator_value}"
        if isinstance(e.validator_value, str)
        else f"must be of one of the types {', '.join(e.validator_value)}"
    ),
    "enum": lambda e: (
        "must be one of "
        + _schema_value(e.validator_value, f"the schema's {len(e.validator_value)} values")
    ),
    "const": lambda e: "must be " + _schema_value(e.validator_value, "the schema's `const`"),
    "format": lambda e: f"must be a valid {e.validator_value}",
    "minLength": lambda e: (
        f"must have at least {_limit(e.validator_value, 'character', 'characters')}"
    ),
    "maxLength": lambda e: (
        f"must have at most {_limit(e.validator_value, 'character', 'characters')}"
    ),
    "minItems": lambda e: f"must have at least {_limit(e.validator_value, 'item', 'items')}",
    "maxItems": lambda e: f"must have at most {_limit(e.validator_value, 'item', 'items')}",
    "minProperties": lambda e: (
        f"must have at least {_limit(e.validator_value, 'property', 'properties')}"
    ),
    "maxProperties": lambda e: (
        f"must have at most {_limit(e.validator_value, 'property', 'properties')}"
    ),
    "minimum": lambda e: f"must be at least {e.validator_value}",
    "maximum": lambda e: f"must be at most {e.validator_value}",
    "exclusiveMinimum": lambda e: f"must be greater than {e.validator_value}",
    "exclusiveMaximum": lambda e: f"must be less than {e.validator_value}",
    "multipleOf": lambda e: f"must be a multiple of {e.validator_value}",
    "items": lambda e: (
        f"must have at most {_limit(len(e.schema.get('prefixItems', [])), 'item', 'items')}"
    ),
    "contains": lambda e: f"must have {_contains(e)} matching the schema's `contains`",
    "minContains": lambda e: f"must have {_contains(e)} matching the schema's `contains`",
    "maxContains": lambda e: f"must have {_contains(e)} matching the schema's `contains`",
    "anyOf": lambda e: "must match at least one of the schema's `anyOf`",
    "oneOf": lambda e: "must match exactly one of the schema's `oneOf`",
    "not": lambda e: "must not match the schema's `not`",
}
_OWN_MESSAGES = {"pattern", "patternProperties", "additionalProperties", "uniqueItems"}
_OWN_MESSAGES |= {"unevaluatedItems", "unevaluatedProperties"}
_OWN_MESSAGES |= {"required", "dependentRequired"}


def _under_property_names(schema_path: list) -> bool:
    return any(
        part == "propertyNames" and (index == 0 or schema_path[index - 1] not in _NAMING)
        for index, part in enumerate(schema_path)
    )


_NAMING = ("properties", "patternProperties", "dependentSchemas", "dependentRequired")


def without_values(error: ValidationError) -> ValidationError:
    """`error`, and the errors it holds (an `anyOf`'s), reworded by `_MESSAGES`."""
    if error.validator not in _OWN_MESSAGES:
        build = _MESSAGES.get(error.validator)
        error.message = build(error) if build else f"does not meet the schema's `{error.validator}`"
    if _under_property_names(list(error.relative_schema_path)):
        error.message = f"its property names {error.message}"  # the error is the object's
    for inner in error.context:
        without_values(inner)
    return error
