"""A request body nested deeper than MAX_JSON_DEPTH is a JSON 400 before anything recurses
into it (it was a 500: RecursionError); a body at the limit, and brackets inside strings,
are fine."""

import json

import pytest

from config.api.parsers import MAX_JSON_DEPTH, json_depth
from entities.models import Entity
from tests.factories import make_entity_type

pytestmark = pytest.mark.django_db

OPEN_SCHEMA = {"type": "object"}


def arrays(depth: int):
    return "[" * depth + "]" * depth


def objects(depth: int):
    return '{"a":' * depth + "1" + "}" * depth


def mixed(depth: int):
    return '{"a":[' * (depth // 2) + "1" + "]}" * (depth // 2)


def entity_body(entity_type, data_json: str) -> str:
    return f'{{"entityTypeId": "{entity_type.pk}", "data": {data_json}}}'


def post(api, path: str, raw: str):
    return api.generic("POST", path, raw, content_type="application/json")


def assert_too_deep(response):
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["code"] == "parse_error"
    assert f"the limit is {MAX_JSON_DEPTH}" in error["message"]


@pytest.mark.parametrize("shape", [arrays, objects, mixed])
@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH + 2, 1000, 100_000])
@pytest.mark.parametrize("path", ["/api/v1/entities", "/api/v1/entities/bulk", "/api/v1/workflows"])
def test_a_body_nested_too_deep_is_a_400(api, shape, depth, path):
    assert_too_deep(post(api, path, shape(depth)))


def test_deep_nesting_inside_a_valid_body_is_a_400(api):
    entity_type = make_entity_type(schema=OPEN_SCHEMA)
    assert_too_deep(post(api, "/api/v1/entities", entity_body(entity_type, objects(1000))))
    assert not Entity.objects.exists()


def test_a_body_at_the_limit_is_stored(api):
    entity_type = make_entity_type(schema=OPEN_SCHEMA)
    data = objects(MAX_JSON_DEPTH - 1)  # the body's own object is the first level
    response = post(api, "/api/v1/entities", entity_body(entity_type, data))
    assert response.status_code == 201, response.content
    assert response.json()["data"] == json.loads(data)


def test_brackets_inside_strings_are_not_nesting(api):
    entity_type = make_entity_type(schema=OPEN_SCHEMA)
    text = '[{"\\"[[[' * 500  # quotes and backslashes escaped inside the JSON string
    data = json.dumps({"text": text, "key[[[": "{{{"})
    response = post(api, "/api/v1/entities", entity_body(entity_type, data))
    assert response.status_code == 201, response.content
    assert response.json()["data"]["text"] == text


@pytest.mark.parametrize(
    ("text", "depth"),
    [
        ("1", 0),
        ("[]", 1),
        ('{"a": [1, {"b": []}]}', 4),
        ('["]]]]", "[[[[\\"[["]', 1),
        ('{"\\\\": ["\\\\\\"]"]}', 2),
    ],
)
def test_json_depth_counts_structure_only(text, depth):
    json.loads(text)  # each case is valid JSON
    assert json_depth(text) == depth
