import pytest
from django.core.exceptions import ImproperlyConfigured

from workflows.steps import registry
from workflows.steps.publish import Publish
from workflows.steps.registry import StepTypeRegistry

pytestmark = pytest.mark.django_db


def test_step_types_endpoint_serves_the_registry(api):
    response = api.get("/api/v1/step-types")
    assert response.status_code == 200
    rows = {row["type"]: row for row in response.json()}
    assert set(rows) == {
        "ai_generate",
        "validate",
        "publish",
        "notify",
        "transform",
        "condition",
        "review",
        "delay",
        "wait_for_event",
    }
    for row in rows.values():
        assert set(row) == {"type", "name", "description", "configSchema", "example"}
        assert row["configSchema"]["type"] == "object"
    assert rows["ai_generate"]["configSchema"]["required"] == ["prompt", "outputField"]


def test_every_example_is_a_valid_config():
    for step_type in registry:
        assert step_type.problems(step_type.example) == [], step_type.type


def test_every_config_field_is_described():
    for step_type in registry:
        for name, spec in step_type.config_schema["properties"].items():
            assert spec.get("description") or "$ref" in spec, f"{step_type.type}.{name}"


def test_registry_refuses_duplicates_and_unknown_names():
    fresh = StepTypeRegistry()
    fresh.register(Publish)
    with pytest.raises(ImproperlyConfigured, match="'publish' is registered twice"):
        fresh.register(Publish)
    with pytest.raises(ImproperlyConfigured, match="Unknown step type 'nope'"):
        fresh.get("nope")


def test_step_types_require_authentication(anonymous):
    assert anonymous.get("/api/v1/step-types").status_code == 401
