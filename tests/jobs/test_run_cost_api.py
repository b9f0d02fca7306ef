"""The cost face of the API: usage on runs and jobs, the estimate, and a run's budget."""

import pytest

from jobs.filter_runs import run_items_make
from jobs.models import Run
from tests.factories import make_entities, make_workflow, run_inline
from tests.workers import wait_for_run

GENERATE = {
    "id": "gen",
    "type": "ai_generate",
    "config": {"prompt": "Describe {{ entity.title }} at {{ entity.price }}", "outputField": "d"},
}


def _post(api, workflow, action, body):
    return api.post(f"/api/v1/workflows/{workflow.pk}/{action}", body)


@pytest.mark.django_db
def test_runs_and_jobs_report_usage_with_cost(api, product_type):
    workflow = make_workflow(product_type, [GENERATE])
    response = _post(api, workflow, "run", {"entityIds": make_entities(product_type, 3)})
    run_inline(response.json()["runId"])
    run = Run.objects.get(pk=response.json()["runId"])
    expected = {
        "inputTokens": run.input_tokens,
        "cachedInputTokens": 0,
        "outputTokens": run.output_tokens,
        "costUsd": 0.0,  # the local stand-in is priced 0: it bills nothing
    }
    assert run.input_tokens > 0
    got = api.get(f"/api/v1/workflows/{workflow.pk}/runs/{run.pk}").json()["usage"]
    assert got == expected
    assert api.get(f"/api/v1/jobs/{run.job.pk}").json()["usage"] == expected
    Run.objects.filter(pk=run.pk).update(unpriced_calls=1)
    got = api.get(f"/api/v1/workflows/{workflow.pk}/runs/{run.pk}").json()["usage"]
    assert got["costUsd"] is None  # one unknown price: the run's cost is unknown


@pytest.mark.django_db
def test_an_estimate_without_history_renders_a_sample_of_prompts(api, product_type):
    workflow = make_workflow(
        product_type, [{**GENERATE, "config": {**GENERATE["config"], "maxTokens": 40}}]
    )
    ids = make_entities(product_type, 30)
    response = _post(api, workflow, "estimate", {"entityIds": ids})
    assert response.status_code == 200, response.json()
    body = response.json()
    # "Describe Item 7 at 7": about 20 characters, 4 a token.
    assert body["basis"] == "sample" and body["entities"] == 30 and body["modelCalls"] == 30
    assert 30 * 4 <= body["inputTokens"] <= 30 * 6
    assert body["outputTokens"] == 30 * 40 and body["costUsd"] == 0.0


@pytest.mark.django_db
def test_an_estimate_of_an_unpriced_model_has_no_cost(api, product_type):
    config = {**GENERATE["config"], "provider": "openai", "model": "private-model-7"}
    workflow = make_workflow(product_type, [{**GENERATE, "config": config}])
    body = _post(api, workflow, "estimate", {"entityIds": make_entities(product_type, 2)}).json()
    assert body["costUsd"] is None and body["modelCalls"] == 2


@pytest.mark.django_db(transaction=True)
@pytest.mark.worker
def test_after_one_run_the_estimate_for_the_same_entities_is_within_20_percent(
    celery_worker, api, product_type
):
    workflow = make_workflow(product_type, [GENERATE])
    ids = make_entities(product_type, 12)
    run = wait_for_run(_post(api, workflow, "run", {"entityIds": ids}).json()["runId"])
    assert run.status == "completed"
    body = _post(api, workflow, "estimate", {"entityIds": ids}).json()
    assert body["basis"] == "history" and body["modelCalls"] == 12
    assert body["inputTokens"] == pytest.approx(run.input_tokens, rel=0.2)
    assert body["outputTokens"] == pytest.approx(run.output_tokens, rel=0.2)


@pytest.mark.django_db
def test_a_revert_does_not_thin_the_estimate(api, product_type):
    """The history counted a revert's items, which call no model, as finished entities: after
    a run and its revert (seen on the demo) the estimate said half the calls the run made."""
    workflow = make_workflow(product_type, [GENERATE])
    ids = make_entities(product_type, 12)
    run_id = _post(api, workflow, "run", {"entityIds": ids}).json()["runId"]
    run_inline(run_id)
    reverted = api.post(f"/api/v1/workflows/{workflow.pk}/runs/{run_id}/revert", {})
    run_items_make(run_id=reverted.json()["runId"])  # as the worker's task makes them
    run_inline(reverted.json()["runId"])
    assert Run.objects.get(pk=reverted.json()["runId"]).completed == 12
    body = _post(api, workflow, "estimate", {"entityIds": ids}).json()
    assert body["basis"] == "history" and body["modelCalls"] == 12


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "entityIds"),
        ({"entityIds": []}, "entityIds"),
        ({"entityIds": "ent_1"}, "entityIds"),
        ({"entityIds": ["nope"]}, "nope"),
        ({"entityIds": ["a", "a"]}, "entityIds"),
        ({"entityIds": ["a"], "budget": {"maxTokens": 5}}, "budget"),
    ],
)
def test_a_bad_estimate_request_is_a_400_naming_the_field(api, product_type, body, field):
    workflow = make_workflow(product_type, [GENERATE])
    response = _post(api, workflow, "estimate", body)
    assert response.status_code == 400, response.json()
    assert field in response.json()["error"]["message"]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("budget", "field"),
    [
        ({}, "budget"),
        ({"maxTokens": 0}, "budget.maxTokens"),
        ({"maxTokens": "100"}, "budget.maxTokens"),
        ({"maxCostUsd": -1}, "budget.maxCostUsd"),
        ({"maxCostUsd": "0.5"}, "budget.maxCostUsd"),
        ({"maxCostUsd": 0}, "budget.maxCostUsd"),
        ({"maxTokens": 1.5}, "budget.maxTokens"),
        ({"maxDollars": 1}, "budget.maxDollars"),
        ("cheap", "budget"),
    ],
)
def test_a_bad_budget_is_a_400_naming_it(api, product_type, budget, field):
    workflow = make_workflow(product_type, [GENERATE])
    body = {"entityIds": make_entities(product_type, 1), "budget": budget}
    response = _post(api, workflow, "run", body)
    assert response.status_code == 400, response.json()
    assert field in response.json()["error"]["message"]
    assert not Run.objects.exists()


@pytest.mark.django_db
def test_a_budget_in_usd_on_a_model_without_a_price_is_a_400(api, product_type):
    config = {**GENERATE["config"], "provider": "openai", "model": "private-model-7"}
    workflow = make_workflow(product_type, [{**GENERATE, "config": config}])
    body = {"entityIds": make_entities(product_type, 1), "budget": {"maxCostUsd": 1}}
    response = _post(api, workflow, "run", body)
    assert response.status_code == 400
    assert "private-model-7" in response.json()["error"]["message"]
    body["budget"] = {"maxTokens": 1000}  # tokens need no price
    assert _post(api, workflow, "run", body).status_code == 202


@pytest.mark.django_db
def test_a_run_stores_its_budget(api, product_type):
    workflow = make_workflow(product_type, [GENERATE])
    body = {
        "entityIds": make_entities(product_type, 1),
        "budget": {"maxCostUsd": 0.5, "maxTokens": 900},
    }
    response = _post(api, workflow, "run", body)
    assert response.status_code == 202, response.json()
    run = Run.objects.get(pk=response.json()["runId"])
    assert (run.budget_max_cost_nano_usd, run.budget_max_tokens) == (500_000_000, 900)
    # Its answer shows the budget and what was spent against it (only the logs said so).
    Run.objects.filter(pk=run.pk).update(spent_tokens=950, spent_cost_nano_usd=120_000_000)
    shown = api.get(f"/api/v1/workflows/{workflow.pk}/runs/{run.pk}").json()["budget"]
    assert shown == {
        "maxTokens": 900,
        "maxCostUsd": 0.5,
        "spentTokens": 950,
        "spentCostUsd": 0.12,
        "reachedAt": None,
    }
    plain = _post(api, workflow, "run", {"entityIds": make_entities(product_type, 1)})
    path = f"/api/v1/workflows/{workflow.pk}/runs/{plain.json()['runId']}"
    assert api.get(path).json()["budget"] is None


@pytest.mark.django_db
def test_an_estimate_takes_the_filter_a_run_takes(api, product_type):
    workflow = make_workflow(product_type, [GENERATE])
    make_entities(product_type, 25)
    body = _post(api, workflow, "estimate", {"filter": {}, "limit": 10}).json()
    assert body["basis"] == "sample" and body["entities"] == 10 and body["modelCalls"] == 10
    everything = _post(api, workflow, "estimate", {"filter": {}}).json()
    assert everything["entities"] == 25
    assert everything["inputTokens"] == pytest.approx(body["inputTokens"] * 2.5, rel=0.2)
    none = _post(api, workflow, "estimate", {"filter": {"status": "published"}})
    assert none.status_code == 400 and "matches the filter" in none.json()["error"]["message"]
    both = _post(api, workflow, "estimate", {"filter": {}, "entityIds": ["ent_1"]})
    assert both.status_code == 400


@pytest.mark.django_db
def test_a_run_over_a_filter_stores_its_budget(api, product_type):
    workflow = make_workflow(product_type, [GENERATE])
    make_entities(product_type, 2)
    response = _post(api, workflow, "run", {"filter": {}, "budget": {"maxTokens": 900}})
    assert response.status_code == 202, response.json()
    run = Run.objects.get(pk=response.json()["runId"])
    assert run.budget_max_tokens == 900
