"""What checking one value against a schema may take, whatever the schema.

The schema's own measure (`schema_graph`, SCHEMA_MAX_CHECKS) bounds the checks of one part of
the data; this bounds the whole value: its applicators (the keywords that check the value's
parts, or the value again, against subschemas) are applied at most CHECKS_PER_BYTE times per
byte of the value's JSON, CHECKS_MIN at least. A schema taking 255 checks per item (accepted)
over 128,000 items of a 256 KB entity took 13 minutes. Legitimate schemas apply one or two
per part (`items`, a `$ref`, `properties`), and a part takes at least a byte or two.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

CHECKS_PER_BYTE = 2
CHECKS_MIN = 20_000
APPLICATORS = frozenset(
    {
        "$ref",
        "$dynamicRef",
        "allOf",
        "anyOf",
        "oneOf",
        "not",
        "if",
        "dependentSchemas",
        "items",
        "prefixItems",
        "contains",
        "properties",
        "patternProperties",
        "additionalProperties",
        "propertyNames",
        "unevaluatedItems",
        "unevaluatedProperties",
    }
)
_checks_left: ContextVar[list[int] | None] = ContextVar("schema_checks_left", default=None)


class ChecksSpent(Exception):
    """Checking a value took more applications of the schema's applicators than its size
    allows."""


def counted(keyword):
    """`keyword` (a jsonschema keyword function), each application spending one of the
    current check's budget (none outside `checks_bounded`)."""

    def spending(validator, value, instance, schema):
        left = _checks_left.get()
        if left is not None:
            left[0] -= 1
            if left[0] < 0:
                raise ChecksSpent
        return keyword(validator, value, instance, schema)

    return spending


def checks_allowed(size: int) -> int:
    """The applications a check of a value of `size` bytes of JSON may take."""
    return max(CHECKS_MIN, CHECKS_PER_BYTE * size)


@contextmanager
def checks_bounded(allowed: int) -> Iterator[None]:
    """Within it, the counted keywords may be applied `allowed` times (ChecksSpent after)."""
    token = _checks_left.set([allowed])
    try:
        yield
    finally:
        _checks_left.reset(token)


def spent_message(allowed: int) -> str:
    return (
        f"Checking it against the schema takes more than {allowed:,} subschema checks "
        f"({CHECKS_PER_BYTE} per byte of its JSON): the schema's references and "
        "allOf/anyOf/oneOf/if/not multiply over its parts."
    )
