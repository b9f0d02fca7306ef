"""An entity type's schema comes from a user: its `$ref`s never leave the document (nothing is
fetched, from the network or the disk), its patterns run on RE2, in time linear in the text, and
what checking a value against it costs is bounded before it is stored."""

import json
from unittest import mock

import pytest
from jsonschema import Draft202012Validator

from entities.models import EntityType
from entities.schemas import data_problems, data_validator
from tests.servers import start_schema_host

pytestmark = pytest.mark.django_db

# Python's `re` backtracks on these for longer than any test runs; RE2 answers at once.
CATASTROPHIC = ["^(a+)+$", "^(a|a)+$", "^(a|aa)+$", "(x+x+)+y"]
EVIL_TEXT = "a" * 40 + "!"


@pytest.fixture
def schema_server():
    """A loopback host serving a schema, counting every GET it is sent."""
    url, hits, server = start_schema_host()
    yield url, hits
    server.shutdown()
    server.server_close()


def _details(response) -> list[dict]:
    assert response.status_code == 400, response.json()
    return response.json()["error"]["details"]


def _create_type(api, schema):
    return api.post("/api/v1/entity-types", {"name": "h", "schema": schema})


@pytest.mark.parametrize(
    ("schema", "field"),
    [
        ({"$ref": "{url}/internal/schema.json"}, "schema.$ref"),
        ({"$ref": "{url}/internal/schema.json#/properties"}, "schema.$ref"),
        ({"$ref": "file:///etc/passwd"}, "schema.$ref"),
        ({"properties": {"a": {"$ref": "other.json"}}}, "schema.properties.a.$ref"),
        ({"prefixItems": [{"$ref": "//127.0.0.1/x"}]}, "schema.prefixItems[0].$ref"),
        ({"$defs": {"a": {"$dynamicRef": "{url}/d.json"}}}, "schema.$defs.a.$dynamicRef"),
        ({"allOf": [{"$ref": "urn:not-declared-here"}]}, "schema.allOf[0].$ref"),
    ],
)
def test_a_schema_referring_outside_itself_is_refused_and_nothing_is_fetched(
    api, schema_server, schema, field
):
    url, hits = schema_server
    schema = json.loads(json.dumps(schema).replace("{url}", url))
    [detail] = _details(_create_type(api, schema))
    assert detail["field"] == field
    assert "nothing is fetched" in detail["message"]
    assert hits == []


@pytest.mark.parametrize(
    "schema",
    [
        {"$defs": {"t": {"type": "string", "maxLength": 3}},
         "properties": {"a": {"$ref": "#/$defs/t"}}},
        {"$defs": {"t": {"$id": "urn:t", "type": "string", "maxLength": 3}},
         "properties": {"a": {"$ref": "urn:t"}}},
        {"$id": "https://example.com/root", "$defs": {"t": {"type": "string", "maxLength": 3}},
         "properties": {"a": {"$ref": "#/$defs/t"}}},
    ],
)  # fmt: skip
def test_references_inside_the_schema_are_accepted_and_resolve(api, schema_server, schema):
    _, hits = schema_server
    response = _create_type(api, schema)
    assert response.status_code == 201, response.json()
    type_id = response.json()["id"]
    good = api.post("/api/v1/entities", {"entityTypeId": type_id, "data": {"a": "abc"}})
    assert good.status_code == 201, good.json()
    [detail] = _details(
        api.post("/api/v1/entities", {"entityTypeId": type_id, "data": {"a": "abcd"}})
    )
    assert detail["field"] == "data.a"
    assert hits == []


@pytest.mark.parametrize(
    ("schema", "field"),
    [
        ({"properties": {"a": {"$ref": "#/$defs/missing"}}}, "schema.properties.a.$ref"),
        ({"items": {"$ref": "#nowhere"}}, "schema.items.$ref"),
        # Resolved against the nearest `$id`, as at validation: `#/$defs/b` inside the
        # resource `sub` is sub's, which has no `b`.
        ({"$defs": {"b": {"type": "string"},
                    "s": {"$id": "urn:sub", "items": {"$ref": "#/$defs/b"}}}},
         "schema.$defs.s.items.$ref"),
        ({"$dynamicAnchor": "m", "items": {"$dynamicRef": "#other"}}, "schema.items.$dynamicRef"),
    ],
)  # fmt: skip
def test_a_reference_that_points_at_nothing_is_a_400_when_the_schema_is_stored(api, schema, field):
    """Stored, every write of the type's entities would be a 400 naming the reference."""
    response = _create_type(api, schema)
    [detail] = _details(response)
    assert detail["field"] == field
    assert detail["message"].startswith("Points at nothing in this schema")
    assert not EntityType.objects.exists()


@pytest.mark.parametrize(
    ("keyword", "value"),
    [
        ("const", {"$ref": "#/components/schemas/Pet"}),
        ("default", {"$ref": "#/components/schemas/Pet"}),
        ("examples", [{"$ref": "#/components/schemas/Pet"}]),
        ("enum", [{"$ref": "#/components/schemas/Pet"}]),
        # Nor is a remote one, or a `pattern` RE2 cannot run, checked there.
        ("examples", [{"$ref": "https://example.com/schemas/pet.json"}]),
        ("default", {"pattern": "(a)\\1"}),
    ],
)
def test_a_ref_key_inside_a_value_the_schema_holds_is_data_not_a_reference(api, keyword, value):
    """A type describing OpenAPI documents holds such values; they validate as data."""
    schema = {"type": "object", "properties": {"link": {"type": "object", keyword: value}}}
    response = _create_type(api, schema)
    assert response.status_code == 201, response.json()


@pytest.mark.parametrize("reference", ["{url}/internal/schema.json", "file:///etc/hostname"])
def test_a_stored_schema_with_a_remote_reference_fetches_nothing_and_answers_400(
    api, schema_server, reference
):
    """A schema saved before references were checked is refused at use, not fetched."""
    url, hits = schema_server
    entity_type = EntityType.objects.create(
        name="old", schema={"$ref": reference.replace("{url}", url)}
    )
    response = api.post("/api/v1/entities", {"entityTypeId": entity_type.pk, "data": {"a": 1}})
    [detail] = _details(response)
    assert "cannot be resolved" in detail["message"]
    assert "s3cr3t" not in json.dumps(response.json())
    assert hits == []


@pytest.mark.parametrize(
    ("schema", "field"),
    [
        ({"properties": {"a": {"pattern": "(a)\\1"}}}, "schema.properties.a.pattern"),
        ({"properties": {"a": {"pattern": "a(?=b)"}}}, "schema.properties.a.pattern"),
        ({"items": {"pattern": "(?<!x)y"}}, "schema.items.pattern"),
        ({"patternProperties": {"^(?!x)": {}}}, "schema.patternProperties.^(?!x)"),
        ({"propertyNames": {"pattern": "[unclosed"}}, "schema.propertyNames.pattern"),
        ({"properties": {"a": {"pattern": "a{2000}"}}}, "schema.properties.a.pattern"),
    ],
)  # fmt: skip
def test_a_pattern_re2_cannot_run_is_refused_naming_it(api, schema, field):
    [detail] = _details(_create_type(api, schema))
    assert detail["field"] == field
    assert "Invalid regular expression" in detail["message"]


def test_unevaluated_properties_with_pattern_properties_is_refused(api):
    schema = {"patternProperties": {"^x": {}}, "unevaluatedProperties": False}
    [detail] = _details(_create_type(api, schema))
    assert detail["field"] == "schema" and "unevaluatedProperties" in detail["message"]
    assert _create_type(api, {"unevaluatedProperties": False}).status_code == 201


@pytest.mark.parametrize("pattern", CATASTROPHIC)
def test_a_catastrophic_pattern_answers_at_once_in_every_place_a_schema_uses_one(api, pattern):
    schema = {
        "type": "object",
        "properties": {"text": {"type": "string", "pattern": pattern}},
        "patternProperties": {pattern: {"type": "integer"}},
        "propertyNames": {"maxLength": 100},
        "additionalProperties": {"type": "integer"},
    }
    response = _create_type(api, schema)
    assert response.status_code == 201, response.json()
    type_id = response.json()["id"]
    data = {"text": EVIL_TEXT, EVIL_TEXT: "not checked by the pattern, so by additionalProperties"}
    details = _details(api.post("/api/v1/entities", {"entityTypeId": type_id, "data": data}))
    assert {d["field"] for d in details} == {"data.text", f"data.{EVIL_TEXT}"}
    good = {"text": "aaaa" if "y" not in pattern else "xxy", "aa": 1}
    assert api.post("/api/v1/entities", {"entityTypeId": type_id, "data": good}).status_code == 201


def test_additional_properties_false_names_the_unexpected_keys(api):
    schema = {"patternProperties": {"^x_": {"type": "integer"}}, "additionalProperties": False}
    type_id = _create_type(api, schema).json()["id"]
    data = {"x_ok": 1, "other": 2}
    [detail] = _details(api.post("/api/v1/entities", {"entityTypeId": type_id, "data": data}))
    assert detail["field"] == "data" and "must not have the properties 'other'" in detail["message"]
    good = {"entityTypeId": type_id, "data": {"x_ok": 1, "x_two": 2}}
    assert api.post("/api/v1/entities", good).status_code == 201


@pytest.mark.parametrize(
    "schema",
    [
        {"$ref": "#"},
        {"$defs": {"a": {"$ref": "#/$defs/a"}}, "properties": {"x": {"$ref": "#/$defs/a"}}},
        {"$defs": {"a": {"allOf": [{"$ref": "#/$defs/b"}]}, "b": {"not": {"$ref": "#/$defs/a"}}},
         "$ref": "#/$defs/a"},
        {"$defs": {"a": {"$anchor": "here", "anyOf": [{"$ref": "#here"}]}}},
        {"if": {"$ref": "#"}},
        {"$dynamicAnchor": "m", "anyOf": [{"$dynamicRef": "#m"}]},
        {"$defs": {"x": {"$id": "urn:x",
                         "$defs": {"y": {"$anchor": "y", "allOf": [{"$ref": "urn:x#y"}]}}}}},
        # `#` inside a resource with an `$id` is that resource, not the document.
        {"$defs": {"x": {"$id": "urn:x", "not": {"$ref": "#"}}}},
    ],
)  # fmt: skip
def test_a_schema_whose_references_loop_without_entering_the_data_is_refused(api, schema):
    [detail] = _details(_create_type(api, schema))
    assert detail["field"] == "schema" and "never ends" in detail["message"]


@pytest.mark.parametrize(
    "schema",
    [  # recursion through a property or an item enters the data, so it ends
        {"$defs": {"node": {"type": "object",
                            "properties": {"child": {"$ref": "#/$defs/node"}}}},
         "$ref": "#/$defs/node"},
        {"type": "array", "items": {"$ref": "#"}},
    ],
)  # fmt: skip
def test_a_recursive_schema_that_enters_the_data_is_accepted_and_validates(api, schema):
    response = _create_type(api, schema)
    assert response.status_code == 201, response.json()


def test_a_stored_schema_whose_references_loop_answers_400_not_500(api):
    """Saved before loops were checked: the validation that would never end is a 400."""
    entity_type = EntityType.objects.create(name="old", schema={"$ref": "#"})
    response = api.post("/api/v1/entities", {"entityTypeId": entity_type.pk, "data": {"a": 1}})
    [detail] = _details(response)
    assert "never ends" in detail["message"]


@pytest.mark.parametrize(
    "ref",
    ["#/allOf/²", "#/allOf/" + "9" * 5000, "#/allOf/-1", "#/allOf/1", "#/nowhere"],
    ids=["superscript", "5000-digits", "negative", "past-the-end", "no-such-key"],
)
def test_a_ref_pointing_at_nothing_in_the_schema_is_a_400_naming_it(api, ref):
    """A pointer's part such as `²` (a digit to `str.isdigit()`, not to `int()`) or 5,000
    digits (past `int()`'s conversion limit) made creating the type a 500; stored, it made
    every entity's check a 500 (jsonschema reads the part with `int()`). A pointer to
    nothing is refused when the schema is given, not at each entity."""
    api.raise_request_exception = False
    schema = {"allOf": [{"type": "object"}], "properties": {"a": {"$ref": ref}}}
    [detail] = _details(_create_type(api, schema))
    assert detail["field"] == "schema.properties.a.$ref", detail
    assert "Points at nothing" in detail["message"]


def test_a_ref_to_a_list_index_in_ascii_digits_still_resolves(api):
    schema = {"allOf": [{"type": "object"}], "properties": {"a": {"$ref": "#/allOf/0"}}}
    assert _create_type(api, schema).status_code == 201


def test_unique_items_over_thousands_of_objects_is_checked_in_one_pass(api):
    """jsonschema's own check compares every pair of objects (3,000 took 12 s): it is never
    called, and the distinct items are accepted."""
    schema = {"type": "object", "properties": {"tags": {"type": "array", "uniqueItems": True}}}
    type_id = _create_type(api, schema).json()["id"]
    data = {"tags": [{"a": i} for i in range(3000)]}
    with mock.patch("jsonschema._keywords.uniq", side_effect=AssertionError("pairwise")):
        response = api.post("/api/v1/entities", {"entityTypeId": type_id, "data": data})
        assert response.status_code == 201, response.json()
        data["tags"].append({"a": 2999})
        response = api.post("/api/v1/entities", {"entityTypeId": type_id, "data": data})
    [detail] = _details(response)
    assert detail["field"] == "data.tags"
    assert "non-unique" in detail["message"] and "2999 and 3000" in detail["message"]


@pytest.mark.parametrize(
    ("items", "unique"),
    [
        ([{"a": 1}, {"a": 1.0}], False),  # one number to JSON Schema
        ([{"a": 1, "b": 2}, {"b": 2, "a": 1}], False),  # key order does not count
        ([[1, [2.0]], [1.0, [2]]], False),
        (["x", "y", "x"], False),
        ([None, None], False),
        ([1, True], True),  # true is not 1 to JSON Schema, although it is to Python
        ([0, False], True),
        ([[1, 2], [2, 1]], True),  # arrays compare in order
        ([{"a": 1}, {"a": "1"}], True),
        ([{"a": [True]}, {"a": [1]}], True),
        ([1, "1"], True),
    ],
)
def test_unique_items_finds_the_duplicates_json_schema_means(items, unique):
    validator = data_validator({"properties": {"tags": {"uniqueItems": True}}})
    assert (data_problems(validator, {"tags": items}) == []) is unique
    # The same verdict as jsonschema's own check, pairwise.
    assert Draft202012Validator({"uniqueItems": True}).is_valid(items) is unique


def _doubling(depth: int) -> dict:
    """Each definition an `allOf` of two references to the next: 2^depth checks a value."""
    defs = {f"d{i}": {"allOf": [{"$ref": f"#/$defs/d{i + 1}"}] * 2} for i in range(depth)}
    defs[f"d{depth}"] = {"type": "object"}
    return {"$defs": defs, "$ref": "#/$defs/d0"}


@pytest.mark.parametrize(
    "schema",
    [
        _doubling(20),  # 1 KB; creating one entity `{"x": 1}` took 59 s
        _doubling(10),
        {"$defs": {"a": {"anyOf": [{"$ref": "#/$defs/b"}] * 40}, "b": {"oneOf": [{}] * 40}},
         "$ref": "#/$defs/a"},
        # Each level of the data doubles what checks the next: {"a": {"a": ...}} 30 deep.
        {"properties": {"a": {"allOf": [{"$ref": "#"}, {"$ref": "#"}]}}},
        {"type": "array", "items": {"anyOf": [{"$ref": "#"}, {"$ref": "#"}]}},
        {"unevaluatedProperties": False, "$defs": _doubling(8)["$defs"], "$ref": "#/$defs/d0"},
    ],
)  # fmt: skip
def test_a_schema_whose_checks_multiply_is_refused_before_any_data_is_checked(api, schema):
    [detail] = _details(_create_type(api, schema))
    assert detail["field"] == "schema" and "1,000 subschema checks" in detail["message"]


def test_a_chain_of_thousands_of_references_is_refused_not_a_server_error(api):
    defs = {f"d{i}": {"$ref": f"#/$defs/d{i + 1}"} for i in range(5000)}
    defs["d5000"] = {"type": "object"}
    [detail] = _details(_create_type(api, {"$defs": defs, "$ref": "#/$defs/d0"}))
    assert detail["field"] == "schema" and "the limit is 100" in detail["message"]


def test_a_loop_through_dependent_schemas_is_refused(api):
    [detail] = _details(_create_type(api, {"dependentSchemas": {"a": {"$ref": "#"}}}))
    assert "never ends" in detail["message"]


@pytest.mark.parametrize(
    "schema",
    [
        _doubling(5),
        # A tagged union of twenty kinds, each naming its own recursive property.
        {"$defs": {"n": {"oneOf": [{"properties": {f"k{i}": {"$ref": "#/$defs/n"}}}
                                   for i in range(20)]}},
         "$ref": "#/$defs/n"},
        # One definition shared by many properties costs each property once.
        {"$defs": {"address": {"type": "object", "required": ["city"],
                               "properties": {"city": {"type": "string"}}}},
         "properties": {f"p{i}": {"allOf": [{"$ref": "#/$defs/address"}]} for i in range(300)}},
        {"$defs": {"node": {"type": "object", "properties": {
            "children": {"type": "array", "items": {"$ref": "#/$defs/node"}},
            "meta": {"if": {"required": ["kind"]}, "then": {"$ref": "#/$defs/node"},
                     "else": {"type": "object"}}}}},
         "$ref": "#/$defs/node"},
    ],
)  # fmt: skip
def test_schemas_whose_checks_stay_few_are_accepted(api, schema):
    response = _create_type(api, schema)
    assert response.status_code == 201, response.json()


def test_unevaluated_items_over_tens_of_thousands_of_items_is_checked_in_one_pass(api):
    """jsonschema's own keyword looked each index up in a list: 40,000 items took 11 s."""
    schema = {"properties": {"n": {"items": {"type": "integer"}, "unevaluatedItems": False},
                             "m": {"additionalProperties": {"type": "integer"},
                                   "unevaluatedProperties": False}}}  # fmt: skip
    type_id = _create_type(api, schema).json()["id"]
    data = {"n": list(range(20_000)), "m": {f"k{i}": i for i in range(10_000)}}
    response = api.post("/api/v1/entities", {"entityTypeId": type_id, "data": data})
    assert response.status_code == 201, response.json()


@pytest.mark.parametrize(
    ("schema", "value"),
    [
        ({"prefixItems": [{}], "unevaluatedItems": False}, [1]),
        ({"prefixItems": [{}], "unevaluatedItems": False}, [1, 2]),
        ({"prefixItems": [{}], "unevaluatedItems": {"type": "string"}}, [1, "a"]),
        ({"prefixItems": [{}], "unevaluatedItems": {"type": "string"}}, [1, 2]),
        ({"anyOf": [{"prefixItems": [{}, {}]}], "unevaluatedItems": False}, [1, 2]),
        ({"contains": {"type": "string"}, "unevaluatedItems": False}, ["a", 1]),
        ({"properties": {"a": {}}, "unevaluatedProperties": False}, {"a": 1}),
        ({"properties": {"a": {}}, "unevaluatedProperties": False}, {"a": 1, "b": 2}),
        ({"allOf": [{"properties": {"b": {}}}], "unevaluatedProperties": False}, {"b": 2}),
        ({"unevaluatedProperties": {"type": "integer"}}, {"b": 2}),
        ({"unevaluatedProperties": {"type": "integer"}}, {"b": "x"}),
        ({"if": {"required": ["a"]}, "then": {"properties": {"b": {}}},
          "unevaluatedProperties": False}, {"a": 1, "b": 2}),
    ],
)  # fmt: skip
def test_unevaluated_keywords_judge_as_jsonschema_does(schema, value):
    ours = data_validator({"properties": {"v": schema}})
    assert (data_problems(ours, {"v": value}) == []) is Draft202012Validator(schema).is_valid(value)


def test_a_stored_schema_whose_checks_multiply_answers_400_at_once(api):
    """Saved before schemas were measured: writes are refused naming it, not checked for a
    minute each."""
    entity_type = EntityType.objects.create(name="old", schema=_doubling(25))
    response = api.post("/api/v1/entities", {"entityTypeId": entity_type.pk, "data": {"x": 1}})
    [detail] = _details(response)
    assert detail["field"] == "data"
    assert detail["message"].startswith("The entity type's schema cannot be used: Checking one")


def test_a_schema_whose_checks_multiply_over_the_datas_parts_stops_at_the_values_size(api):
    """Accepted (255 checks an item, under the measure of one part), then used over 10,000
    items: the check stops at CHECKS_PER_BYTE per byte of the value's JSON with a 400 naming
    the data, where it took a minute (128,000 items of a 256 KB entity: 13 minutes)."""
    doubling = _doubling(7)
    schema = {
        "$defs": doubling["$defs"],
        "type": "object",
        "properties": {"xs": {"type": "array", "items": {"$ref": "#/$defs/d0"}}},
    }
    created = api.post("/api/v1/entity-types", {"name": "wide", "schema": schema})
    assert created.status_code == 201, created.json()
    with mock.patch("entities.schema_budget.CHECKS_MIN", 1_000):
        response = api.post(
            "/api/v1/entities",
            {"entityTypeId": created.json()["id"], "data": {"xs": [{}] * 10_000}},
        )
    [detail] = _details(response)
    assert detail["field"] == "data"
    assert "subschema checks (2 per byte of its JSON)" in detail["message"]


def test_large_values_of_plain_schemas_are_checked_whole():
    """A part or two of applicators per item: far inside the values' own size."""
    schema = {
        "type": "object",
        "$defs": {"item": {"type": "object", "properties": {"n": {"type": "integer"}}}},
        "properties": {
            "ns": {"type": "array", "items": {"type": "integer"}},
            "objects": {"type": "array", "items": {"$ref": "#/$defs/item"}},
        },
    }
    data = {"ns": list(range(20_000)), "objects": [{"n": i} for i in range(5_000)]}
    assert data_problems(data_validator(schema), data) == []
    data["objects"][4_999]["n"] = "x"
    [problem] = data_problems(data_validator(schema), data)
    assert problem.field == "data.objects[4999].n"


def test_properties_named_like_keywords_are_schemas_checked_as_such(api):
    """A property named `examples` or `const` holds a schema, not data."""
    schema = {"properties": {"examples": {"$ref": "https://example.com/x.json"}}}
    [detail] = _details(_create_type(api, schema))
    assert detail["field"] == "schema.properties.examples.$ref"
    schema = {"properties": {"const": {"pattern": "(a)\\1"}}}
    [detail] = _details(_create_type(api, schema))
    assert detail["field"] == "schema.properties.const.pattern"
