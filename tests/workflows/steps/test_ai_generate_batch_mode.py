"""`ai_generate`'s `mode`: validated at workflow create (a 400 naming the field), shown in
the step-type reference and the OpenAPI schema; the test endpoint answers a batch-mode step
live, as sync mode would, and says so. (The batch runs themselves, with workers:
tests/jobs/test_worker_ai_batches.py.)"""

import pytest

from tests.factories import make_entities, make_workflow
from workflows.providers.network import OpenAIProvider

pytestmark = pytest.mark.django_db


def _create(api, product_type, config: dict):
    step = {"type": "ai_generate", "config": {"prompt": "Describe", "outputField": "d", **config}}
    return api.post(
        "/api/v1/workflows", {"name": "W", "entityTypeId": product_type.id, "steps": [step]}
    )


def _problems(response) -> dict[str, str]:
    assert response.status_code == 400, response.json()
    return {d["field"]: d["message"] for d in response.json()["error"]["details"]}


def test_a_mode_other_than_sync_or_batch_is_a_400_naming_the_field(api, product_type):
    problems = _problems(_create(api, product_type, {"mode": "later"}))
    assert list(problems) == ["steps[0].config.mode"]
    assert "sync" in problems["steps[0].config.mode"]


def test_an_unknown_field_beside_mode_is_a_400_naming_it(api, product_type):
    problems = _problems(_create(api, product_type, {"mode": "batch", "batchSize": 10}))
    assert problems == {"steps[0].config.batchSize": "Unknown field."}


def test_batch_mode_with_a_provider_without_batch_support_is_a_400(api, product_type, monkeypatch):
    monkeypatch.setattr(OpenAIProvider, "supports_batch", False)
    problems = _problems(_create(api, product_type, {"mode": "batch", "provider": "openai"}))
    assert problems == {
        "steps[0].config.mode": "The provider 'openai' does not support batch mode."
    }


def test_batch_mode_on_the_local_provider_is_accepted_and_sync_is_the_default(api, product_type):
    created = _create(api, product_type, {"mode": "batch"})
    assert created.status_code == 201, created.json()
    assert created.json()["steps"][0]["config"]["mode"] == "batch"
    types = {t["type"]: t for t in api.get("/api/v1/step-types").json()}
    mode = types["ai_generate"]["configSchema"]["properties"]["mode"]
    assert (mode["enum"], mode["default"]) == (["sync", "batch"], "sync")


def test_the_openapi_schema_shows_mode_and_the_runs_batches(api):
    schema = api.get("/api/v1/schema", HTTP_ACCEPT="application/json").json()
    components = schema["components"]["schemas"]
    ai_generate = components["AiGenerateConfig"]
    assert ai_generate["properties"]["mode"]["enum"] == ["sync", "batch"]
    assert "batches" in components["Run"]["properties"]
    batch = components["RunBatch"]["properties"]
    assert set(batch) == {
        "id",
        "stepId",
        "provider",
        "model",
        "providerBatchId",
        "status",
        "attempt",
        "live",
        "counts",
        "error",
        "createdAt",
        "endedAt",
    }


def test_the_test_endpoint_answers_a_batch_step_live_as_sync_would(api, product_type):
    entity_id = make_entities(product_type, 1)[0]
    answers, notes = {}, {}
    for mode in ("sync", "batch"):
        step = {
            "id": "describe",
            "type": "ai_generate",
            "config": {"prompt": "Describe {{ entity.title }}", "outputField": "d", "mode": mode},
        }
        workflow = make_workflow(product_type, [step])
        body = api.post(f"/api/v1/workflows/{workflow.pk}/test", {"entityId": entity_id}).json()
        assert body["status"] == "completed", body
        answers[mode] = (body["steps"][0]["output"], body["data"]["d"], body["usage"])
        notes[mode] = body["steps"][0]["notes"]
    assert answers["batch"] == answers["sync"]
    assert "Describe Item 0" in answers["batch"][0]
    assert notes == {
        "sync": [],
        "batch": ["Batch mode: answered live (a test sends no batch)."],
    }


def test_an_estimate_prices_a_batch_step_at_half(api, product_type, settings):
    settings.AI_PRICES = {"house-model": {"input": 1.0, "cachedInput": 1.0, "output": 2.0}}
    ids = make_entities(product_type, 10)
    costs = {}
    for mode in ("sync", "batch"):
        config = {"prompt": "Describe {{ entity.title }}", "outputField": "d", "mode": mode}
        step = {"id": "describe", "type": "ai_generate", "config": {**config, "maxTokens": 50}}
        workflow = make_workflow(
            product_type, [{**step, "config": {**step["config"], "model": "house-model"}}]
        )
        body = api.post(f"/api/v1/workflows/{workflow.pk}/estimate", {"entityIds": ids}).json()
        costs[mode] = body["costUsd"]
    assert costs["sync"] > 0 and costs["batch"] == pytest.approx(costs["sync"] / 2)


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_a_network_provider_the_deployment_gives_no_key_nor_server_is_a_400_at_create(
    api, product_type, settings, provider
):
    """Every call would be a 401 at run time, entity after entity: said at create."""
    prefix = provider.upper()
    setattr(settings, f"{prefix}_API_KEY", "")
    setattr(settings, f"{prefix}_BASE_URL", "")
    problems = _problems(_create(api, product_type, {"provider": provider}))
    assert problems == {
        "steps[0].config.provider": f"The provider {provider!r} is not set up: set "
        f"{prefix}_API_KEY (or {prefix}_BASE_URL, for a server that needs no key)."
    }
    setattr(settings, f"{prefix}_API_KEY", "sk-test")
    assert _create(api, product_type, {"provider": provider}).status_code == 201
    setattr(settings, f"{prefix}_API_KEY", "")
    setattr(settings, f"{prefix}_BASE_URL", "http://127.0.0.1:11434/v1")
    assert _create(api, product_type, {"provider": provider}).status_code == 201
