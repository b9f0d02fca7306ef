"""JSON Schema checks for entity data, with the failing path in every message.

A schema comes from a user, so it is checked as a program from outside would be: `$ref` may
point only inside the same document (nothing is ever fetched: the validators' registry has no
retrieval), and every regular expression in it (`pattern`, `patternProperties`, the `regex`
runs on RE2, whose matching time is linear in the text. Its references and patterns are
checked before it is accepted (`entities/schema_walks.py`), and what checking data against
it costs is measured (`entities/schema_graph.py`).
"""

import json
from dataclasses import dataclass
from functools import lru_cache

from django.conf import settings
from jsonschema import Draft202012Validator, validators
from jsonschema._utils import (  # what jsonschema's own unevaluated* keywords call
    find_evaluated_item_indexes_by_schema,
    find_evaluated_property_keys_by_schema,
)
from jsonschema.exceptions import SchemaError, ValidationError
from referencing.exceptions import Unresolvable

from config.api.errors import FieldError, json_path
from config.api.storable import unstorable
from entities.patterns import PatternError, pattern_compile, pattern_problem
from entities.schema_budget import (
    APPLICATORS,
    ChecksSpent,
    checks_allowed,
    checks_bounded,
    counted,
    spent_message,
)
from entities.schema_graph import schema_cost
from entities.schema_messages import without_values
from entities.schema_walks import NO_RETRIEVAL, unresolvable_references, walk_problems

# The most subschema checks one part of the data may take. The schemas people write take a
# few dozen at most (every branch of a `oneOf` counted); at ~6-35 us a check, 1,000 keep a
# part of the data under ~35 ms, where twenty `allOf`s of two references took a minute.
SCHEMA_MAX_CHECKS = 1_000
# The longest chain of references and in-place keywords: jsonschema follows each with two
# frames of Python's stack, whose limit is 1,000 (a chain of ~450 exhausts it).
SCHEMA_MAX_DEPTH = 100


_NOT_ALLOWED = "the schema allows no other (additionalProperties is false)"


def _pattern(validator, pattern, instance, schema):
    if not validator.is_type(instance, "string"):
        return
    try:
        compiled = pattern_compile(pattern)
    except PatternError as exc:
        yield ValidationError(f"The schema's pattern {pattern!r} cannot be used: {exc}")
        return
    if compiled.search(instance) is None:
        yield ValidationError(f"must match {pattern!r}")


def _matching_patterns(patterns, key: str) -> list[str]:
    return [
        pattern
        for pattern in patterns
        if pattern_problem(pattern) is None and pattern_compile(pattern).search(key) is not None
    ]


def _pattern_properties(validator, pattern_properties, instance, schema):
    if not validator.is_type(instance, "object"):
        return
    for pattern, subschema in pattern_properties.items():
        problem = pattern_problem(pattern)
        if problem:
            yield ValidationError(f"The schema's pattern {pattern!r} cannot be used: {problem}")
            continue
        for key, value in instance.items():
            if pattern_compile(pattern).search(key) is not None:
                yield from validator.descend(value, subschema, path=key, schema_path=pattern)


def _additional_properties(validator, additional, instance, schema):
    """jsonschema's own keyword, with `patternProperties` matched by RE2 (its helper uses
    Python's `re`)."""
    if not validator.is_type(instance, "object"):
        return
    known = schema.get("properties", {})
    patterns = schema.get("patternProperties", {})
    extras = [key for key in instance if key not in known and not _matching_patterns(patterns, key)]
    if validator.is_type(additional, "object"):
        for extra in extras:
            yield from validator.descend(instance[extra], additional, path=extra)
    elif additional is False and extras:
        # The keys, like every path under the data, are named; their values are not.
        names = ", ".join(repr(extra) for extra in sorted(extras, key=str))
        yield ValidationError(f"must not have the properties {names}: {_NOT_ALLOWED}")


def _equality_key(value):
    """A hashable stand-in for a JSON value, equal for values JSON Schema calls equal, as
    jsonschema's `equal` does: 1 and 1.0 are one number (Python hashes them alike), `true` is
    not 1, objects compare whatever their key order, arrays in order."""
    if isinstance(value, bool) or value is None:
        return ("literal", value)
    if isinstance(value, str):
        return ("string", value)
    if isinstance(value, int | float):
        return ("number", value)
    if isinstance(value, list):
        return ("array", tuple(map(_equality_key, value)))
    if isinstance(value, dict):
        return ("object", frozenset((key, _equality_key(item)) for key, item in value.items()))
    return ("other", id(value))  # nothing a JSON decoder makes: equal to itself alone


def _unique_items(validator, unique, instance, schema):
    """jsonschema's own keyword compares every pair of items that cannot be sorted (objects):
    3,000 of them took 12 s. One pass over hashable keys finds the same duplicates."""
    if not unique or not validator.is_type(instance, "array"):
        return
    first_at: dict = {}
    for index, item in enumerate(instance):
        earlier = first_at.setdefault(_equality_key(item), index)
        if earlier != index:
            message = f"has non-unique elements (items {earlier} and {index} are equal)"
            yield ValidationError(message)
            return


def _unevaluated_items(validator, unevaluated, instance, schema):
    """jsonschema's own keyword, with the evaluated indexes in a set: looked up in its list,
    40,000 items took 11 s."""
    if not validator.is_type(instance, "array"):
        return
    evaluated = set(find_evaluated_item_indexes_by_schema(validator, instance, schema))
    if any(index not in evaluated for index in range(len(instance))):
        yield ValidationError("has items the schema does not allow (unevaluatedItems)")


def _unevaluated_properties(validator, unevaluated, instance, schema):
    """jsonschema's own keyword, with the evaluated keys in a set (see `_unevaluated_items`)."""
    if not validator.is_type(instance, "object"):
        return
    evaluated = set(find_evaluated_property_keys_by_schema(validator, instance, schema))
    extras = [
        key
        for key, value in instance.items()
        if key not in evaluated
        and next(validator.descend(value, unevaluated, path=key, schema_path=key), None)
    ]
    if extras:
        names = ", ".join(repr(extra) for extra in sorted(extras, key=str))
        if unevaluated is False:
            message = "the schema allows no other (unevaluatedProperties is false)"
        else:
            message = "they do not match the schema's unevaluatedProperties"
        yield ValidationError(f"must not have the properties {names}: {message}")


_KEYWORDS = {
    **Draft202012Validator.VALIDATORS,
    "pattern": _pattern,
    "patternProperties": _pattern_properties,
    "additionalProperties": _additional_properties,
    "uniqueItems": _unique_items,
    "unevaluatedItems": _unevaluated_items,
    "unevaluatedProperties": _unevaluated_properties,
}
SchemaValidator = validators.extend(
    Draft202012Validator,
    {
        name: counted(keyword) if name in APPLICATORS else keyword
        for name, keyword in _KEYWORDS.items()
    },
)
"""Draft 2020-12 with RE2 for every pattern, linear `uniqueItems` and `unevaluated*`, and
its applicators counted (`schema_errors` bounds a check's work by the value's size). Build
it with `schema_validator`, never alone: jsonschema's default registry would fetch a remote
`$ref`."""


def schema_validator(schema: dict, **kwargs) -> Draft202012Validator:
    return SchemaValidator(schema, registry=NO_RETRIEVAL, **kwargs)


def _keywords(schema) -> set[str]:
    if isinstance(schema, dict):
        return set(schema).union(*map(_keywords, schema.values()))
    if isinstance(schema, list):
        return set().union(*map(_keywords, schema))
    return set()


def _unevaluated_with_patterns(schema) -> bool:
    """`unevaluatedProperties` matches `patternProperties` with Python's `re` inside
    jsonschema, where RE2 cannot be put; the two are not accepted together."""
    return {"unevaluatedProperties", "patternProperties"} <= _keywords(schema)


def _cost_problem(schema: dict) -> str | None:
    """Why checking a value against `schema` would never end or cost too much, if it would."""
    cost = schema_cost(schema, limit=SCHEMA_MAX_CHECKS)
    if cost.loops:
        return "Its references lead back to themselves without entering the data: it never ends."
    if cost.depth > SCHEMA_MAX_DEPTH:
        return (
            f"Its references and in-place keywords (allOf, anyOf, oneOf, not, if, "
            f"dependentSchemas...) nest {cost.depth} deep; the limit is {SCHEMA_MAX_DEPTH}."
        )
    if not cost.measured:
        return (
            "Its references and allOf/anyOf/oneOf/if/not are too many to measure what "
            "checking a value against it costs; share fewer large definitions."
        )
    if cost.checks > SCHEMA_MAX_CHECKS:
        return (
            f"Checking one value against it may take more than {SCHEMA_MAX_CHECKS:,} subschema "
            "checks: its references and allOf/anyOf/oneOf/if/not multiply one another."
        )
    return None


def schema_problems(schema, *, field: str = "schema") -> list[FieldError]:
    """Problems with a JSON Schema given by a user (an entity type's `schema`, an
    `ai_generate` step's `jsonSchema`), located under `field`."""
    if schema is None:
        return []
    if not isinstance(schema, dict):
        return [FieldError(field, "Must be a JSON Schema object.")]
    # References and patterns first: the meta-schema would judge a pattern by Python's `re`.
    problems = walk_problems(schema, field)
    if problems:
        return problems
    try:
        SchemaValidator.check_schema(schema)
    except SchemaError as exc:
        return [FieldError(json_path([field, *exc.absolute_path]), exc.message)]
    problems = unresolvable_references(schema, field)
    if problems:
        return problems
    problem = _cost_problem(schema)
    if problem:
        problems.append(FieldError(field, problem))
    if _unevaluated_with_patterns(schema):
        message = "`unevaluatedProperties` cannot be combined with `patternProperties`."
        problems.append(FieldError(field, message))
    return problems


@dataclass(frozen=True)
class RefusedSchema:
    """In place of the validator of a stored schema that is refused now (saved before its
    cost was measured): every value gets one error saying why, at once, instead of minutes of
    checks."""

    problem: str


@lru_cache(maxsize=256)
def _stored_schema_problem(encoded: str) -> str | None:
    return _cost_problem(json.loads(encoded))


def data_validator(schema) -> Draft202012Validator | RefusedSchema | None:
    """Build once, check many (a bulk create checks up to 10,000 items with one)."""
    if not schema:
        return None
    problem = _stored_schema_problem(data_encode(schema)) if isinstance(schema, dict) else None
    return RefusedSchema(problem) if problem else schema_validator(schema)


def schema_errors(validator, value, *, size: int | None = None) -> list[ValidationError]:
    """The schema's errors for `value`, each saying what the value must be without showing it
    (`without_values`); a reference the schema cannot resolve is one more error (a schema stored
    before references were checked may still hold a remote one). The check's work is bounded
    by the value's size (`size`: its JSON's length, when the caller has it; `schema_budget`):
    past it, one error says so."""
    if isinstance(validator, RefusedSchema):
        return [ValidationError(f"The entity type's schema cannot be used: {validator.problem}")]
    if size is None:
        size = len(data_encode(value))
    allowed = checks_allowed(size)
    try:
        with checks_bounded(allowed):
            return [without_values(error) for error in validator.iter_errors(value)]
    except ChecksSpent:
        return [ValidationError(spent_message(allowed))]
    except Unresolvable as exc:
        return [ValidationError(f"The schema's reference {exc.ref!r} cannot be resolved.")]
    except RecursionError:  # a loop of references stored before they were checked
        return [ValidationError("The schema's references lead back to themselves without end.")]


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
    # The encoding escapes every non-ASCII character and writes a number that is not finite
    # as `NaN` or `Infinity`: without these in it, the data holds neither a NUL, a surrogate
    # nor such a number, and is not walked.
    if any(sign in encoded for sign in ("\\u0000", "\\ud", "NaN", "Infinity")):
        problem = unstorable(data, prefix)
        if problem:
            return [problem]
    if validator is None:
        return []
    return [
        FieldError(json_path([prefix, *error.absolute_path]), error.message, "schema")
        for error in sorted(
            schema_errors(validator, data, size=len(encoded)), key=lambda e: list(map(str, e.path))
        )
    ]
