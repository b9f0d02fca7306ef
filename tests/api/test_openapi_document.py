"""The served OpenAPI document is valid OpenAPI 3.0.3 as outside tools read it: openapi-spec-
validator finds nothing, Redocly's recommended rules find no error, and an OAS 3.0 validator
takes each trigger shape the server takes (it refused `{"on": "entity.created"}` while the
trigger schemas used JSON Schema's `const`)."""

import json
import shutil
import subprocess

import pytest
from openapi_schema_validator import OAS30Validator
from openapi_spec_validator import validate

from config.api.openapi import _schema_to_oas30
from config.api.serializers import StrictSerializer

pytestmark = pytest.mark.django_db

# Pinned: a new Redocly release may add rules; bump it on purpose.
REDOCLY = "@redocly/cli@2.77.0"


def all_schemas(node):
    if isinstance(node, dict):
        if "type" in node or "nullable" in node or "$ref" in node:
            yield node
        for key, value in node.items():
            if key not in ("example", "enum", "default"):
                yield from all_schemas(value)
    elif isinstance(node, list):
        for value in node:
            yield from all_schemas(value)


def test_openapi_spec_validator_finds_nothing(document):
    validate(document)  # raises on the first problem


def test_redocly_recommended_rules_find_nothing_but_the_missing_license(document, tmp_path):
    assert shutil.which("npx"), "Redocly's linter needs Node.js (npx)"
    path = tmp_path / "schema.json"
    path.write_text(json.dumps(document))
    result = subprocess.run(
        ["npx", "--yes", REDOCLY, "lint", "--format=json", str(path)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    start = result.stdout.find("{")
    report = json.loads(result.stdout[start:])
    errors = [p for p in report["problems"] if p["severity"] == "error"]
    assert errors == [], json.dumps(errors, indent=1)
    # Warnings too, but `info-license`: the project names no license to serve.
    warnings = [p for p in report["problems"] if p["ruleId"] != "info-license"]
    assert warnings == [], json.dumps(warnings, indent=1)
    assert report["totals"]["errors"] == 0
    assert result.returncode == 0, result.stdout + result.stderr


def test_no_component_carries_the_base_serializers_docstring(document):
    internal = StrictSerializer.__doc__.split("\n")[0].strip()
    described = {
        name: schema.get("description", "")
        for name, schema in document["components"]["schemas"].items()
    }
    assert [name for name, text in described.items() if internal in text] == []


def test_no_json_schema_2020_keyword_is_left(document):
    text = json.dumps(document)
    assert '"const":' not in text
    for schema in all_schemas(document):
        assert "examples" not in schema or not isinstance(schema["examples"], list), schema
        assert not isinstance(schema.get("type"), list), schema
        if schema.get("nullable"):
            assert {"type", "$ref", "allOf", "oneOf", "anyOf"} & set(schema), schema


@pytest.mark.parametrize(
    ("trigger", "valid"),
    [
        ({"on": "entity.created"}, True),
        ({"on": "entity.updated"}, True),
        ({"on": "entity.updated", "fields": ["title"]}, True),
        ({"on": "schedule", "cron": "0 3 * * *", "timezone": "UTC"}, True),
        ({"on": "schedule"}, False),
        ({"on": "entity.created", "fields": ["title"]}, False),
        ({"on": "entity.deleted"}, False),
    ],
)
def test_an_openapi_30_validator_reads_triggers_as_the_server_does(document, trigger, valid):
    validator = OAS30Validator(
        {
            "$ref": "#/components/schemas/WorkflowCreateRequest/properties/triggers",
            "components": document["components"],
        }
    )
    assert validator.is_valid([trigger]) is valid


def test_json_schema_constructs_become_their_openapi_30_form():
    schema = {
        "type": "object",
        "properties": {
            "kind": {"const": "a"},
            "when": {"type": ["string", "null"], "examples": ["0 3 * * *"]},
            "many": {"type": ["string", "integer"]},
            "size": {"type": "number", "exclusiveMinimum": 0},
            "anything": {"nullable": True, "description": "Any JSON."},
        },
        "items": {"oneOf": [{"const": 1}]},
    }
    schema["properties"]["if"] = {"$ref": "#/components/schemas/If", "description": "Which."}
    schema["properties"]["budget"] = {"allOf": [{"$ref": "#/c/Budget"}], "nullable": True}
    _schema_to_oas30(schema)
    assert schema["properties"] == {
        "kind": {"enum": ["a"]},
        "when": {"type": "string", "nullable": True, "example": "0 3 * * *"},
        "many": {"oneOf": [{"type": "string"}, {"type": "integer"}]},
        "size": {"type": "number", "minimum": 0, "exclusiveMinimum": True},
        "anything": {"description": "Any JSON."},
        # 3.0 ignores a reference's siblings; beside an allOf they count.
        "if": {"allOf": [{"$ref": "#/components/schemas/If"}], "description": "Which."},
        # openapi-python-client reads `type: object` beside a nullable allOf as never null.
        "budget": {
            "oneOf": [{"$ref": "#/c/Budget"}, {"type": "object", "nullable": True, "enum": [None]}]
        },
    }
    assert schema["items"] == {"oneOf": [{"enum": [1]}]}


def test_the_docs_page_loads_the_whole_schema_with_a_key_and_only_how_to_authorize_without(
    api, anonymous
):
    assert anonymous.get("/api/v1/schema?format=json").status_code == 401  # kept behind a key
    bare = anonymous.get("/api/docs/schema?format=json")
    assert bare.status_code == 200
    assert bare.json()["paths"] == {}
    assert bare.json()["components"]["securitySchemes"]["apiKey"]["scheme"] == "bearer"
    validate(bare.json())
    full = api.get("/api/docs/schema?format=json")
    assert "/api/v1/entities" in full.json()["paths"]
    wrong = anonymous.get("/api/docs/schema", HTTP_AUTHORIZATION="Bearer wk_nope")
    assert wrong.status_code == 401
    assert wrong.json()["error"]["code"] == "authentication_failed"
