"""A schema's messages say where a value is wrong and what it must be, never the value: they
reach a run's items and a job's log, read without `entities.view_entity`."""

import pytest

from entities.schemas import data_problems, data_validator

pytestmark = pytest.mark.django_db

SCHEMA = {
    "type": "object",
    "required": ["need"],
    "additionalProperties": False,
    "propertyNames": {"pattern": "^[a-zA-Z_]+$"},
    "properties": {
        "need": {},
        "ssn": {"type": "integer"},
        "code": {"type": "string", "pattern": "^[A-Z]+$"},
        "tags": {"type": "array", "uniqueItems": True, "maxItems": 2},
        "kind": {"enum": ["a", "b"]},
        "c": {"const": 3},
        "n": {"type": ["integer", "null"], "minimum": 0, "multipleOf": 5},
        "s": {"minLength": 3, "maxLength": 1},
        "any": {"anyOf": [{"type": "string"}, {"type": "integer"}]},
        "one": {"oneOf": [{"type": "string"}, {"maxLength": 100}]},
        "no": {"not": {"type": "string"}},
        "arr": {"prefixItems": [{}], "items": False, "contains": {"type": "integer"},
                "minContains": 2},
        "few": {"contains": {"type": "integer"}, "maxContains": 1},
        "obj": {"minProperties": 2, "unevaluatedProperties": False},
        "deep": {"$ref": "#/$defs/deep"},
    },
    "$defs": {"deep": {"properties": {"x": {"exclusiveMaximum": 1}}}},
}  # fmt: skip
DATA = {
    "ssn": "123-45-6789",
    "code": "secret-1",
    "tags": ["SECRET-2", "SECRET-2", "x"],
    "kind": "SECRET-3",
    "c": "SECRET-4",
    "n": -7.5,
    "s": "SECRET-5",
    "any": ["SECRET-6"],
    "one": "SECRET-7",
    "no": "SECRET-8",
    "arr": ["SECRET-9", "SECRET-10"],
    "few": [1, 2],
    "obj": {"Secret_key": "SECRET-11"},
    "deep": {"x": 98765},
    "bad key": 1,
}
EXPECTED = [
    "data: 'need' is a required property",
    "data: must not have the properties 'bad key': the schema allows no other "
    "(additionalProperties is false)",
    "data: its property names must match '^[a-zA-Z_]+$'",
    "data.any: must match at least one of the schema's `anyOf`",
    "data.arr: must have at most 1 item",
    "data.arr: must have at least 2 items matching the schema's `contains`",
    "data.c: must be 3",
    "data.code: must match '^[A-Z]+$'",
    "data.deep.x: must be less than 1",
    "data.few: must have at most 1 item matching the schema's `contains`",
    "data.kind: must be one of ['a', 'b']",
    "data.n: must be of one of the types integer, null",
    "data.n: must be at least 0",
    "data.n: must be a multiple of 5",
    "data.no: must not match the schema's `not`",
    "data.obj: must have at least 2 properties",
    "data.obj: must not have the properties 'Secret_key': the schema allows no other "
    "(unevaluatedProperties is false)",
    "data.one: must match exactly one of the schema's `oneOf`",
    "data.s: must have at most 1 character",
    "data.ssn: must be of type integer",
    "data.tags: has non-unique elements (items 0 and 1 are equal)",
    "data.tags: must have at most 2 items",
]


def test_every_keyword_says_what_the_value_must_be_without_showing_it():
    problems = data_problems(data_validator(SCHEMA), DATA)
    messages = [f"{p.field}: {p.message}" for p in problems]
    assert sorted(messages) == sorted(EXPECTED)
    assert all(p.code == "schema" for p in problems)
    for text in messages:
        assert "SECRET" not in text and "123-45" not in text and "98765" not in text


def test_a_long_enum_is_not_spelled_out():
    schema = {"properties": {"k": {"enum": [f"value-{i}" for i in range(100)]}}}
    [problem] = data_problems(data_validator(schema), {"k": "nope"})
    assert problem.message == "must be one of the schema's 100 values"
