"""What a run would cost before it starts (`POST /workflows/:id/estimate`), and the models a
budget in dollars needs prices for. No model is called.

Two bases, per `ai_generate` step of the workflow's current version:
- `history`: this version's past runs (not its reverts). The tokens each finished item
  (completed or stopped by a condition; not one left out of its run) spent in the step
  (`item.usage["steps"]`), averaged per entity over the newest ESTIMATE_HISTORY_ITEMS, times
  the entities asked about. Conditions, retries for bad
  JSON and real answer lengths are in it.
- `sample`: no history yet. The step's prompt and system message rendered for up to
  ESTIMATE_SAMPLE entities (as they are now: earlier steps' outputs read as empty), at
  CHARS_PER_TOKEN characters a token (the usual rule of thumb for English with GPT and
  Claude tokenizers), one call each; the answer counted at the step's `maxTokens` (an upper
  bound), else ESTIMATE_OUTPUT_TOKENS.
The cost is priced from the tokens with today's prices (`workflows.pricing`); null when a
step's model has none.
"""

import math
from collections.abc import Callable
from decimal import Decimal

from django.conf import settings

from config.api.errors import FieldError, InvalidInput
from entities.models import Entity
from jobs.models import ItemStatus, RunItem, TriggerType
from workflows.models import Workflow, WorkflowVersion
from workflows.pricing import (
    CHARS_PER_TOKEN,
    ESTIMATE_OUTPUT_TOKENS,
    NANOS_PER_USD,
    call_cost_nanos,
    model_priced,
    usd_of,
)
from workflows.providers import PROVIDERS
from workflows.templating import TemplateError, render, rendering_time_limit

ESTIMATE_HISTORY_ITEMS = 2000
ESTIMATE_SAMPLE = 20


def model_steps(version: WorkflowVersion) -> list[tuple[dict, str, str]]:
    """Each `ai_generate` step of the version with the provider and model it calls."""
    found = []
    for step in version.steps:
        if step["type"] != "ai_generate":
            continue
        found.append((step, *model_of(step["config"])))
    return found


def model_of(config: dict) -> tuple[str, str]:
    """The provider and model that calls configured by `config` (an `ai_generate` step's,
    an experiment's judge's) are made to."""
    provider = config.get("provider") or settings.AI_PROVIDER
    model = (
        config.get("model")
        or settings.AI_MODEL
        or getattr(PROVIDERS.get(provider), "default_model", "")
    )
    return provider, model


def unpriced_refuse(models, field: str) -> None:
    """A 400 on `field` when `maxCostUsd` is asked of any of (provider, model) `models`
    without a price: their calls' cost is unknown, so the budget could not be kept."""
    unpriced = sorted({model for provider, model in models if not model_priced(provider, model)})
    if unpriced:
        message = (
            f"No price is known for {', '.join(unpriced)}: a budget in USD cannot be kept. "
            "Set its price in AI_PRICES, or give maxTokens instead."
        )
        raise InvalidInput(
            f"{field}: {message}", details=[FieldError(field, message, "unpriced_model")]
        )


def budget_columns(version: WorkflowVersion, budget: dict | None) -> dict:
    """The run's budget fields; a 400 when `maxCostUsd` is asked of models without a price
    (their calls' cost is unknown, so the budget could not be kept)."""
    if not budget:
        return {}
    columns = {"budget_max_tokens": budget.get("maxTokens")}
    if budget.get("maxCostUsd") is not None:
        unpriced_refuse([(p, model) for _, p, model in model_steps(version)], "budget.maxCostUsd")
        nanos = Decimal(str(budget["maxCostUsd"])) * NANOS_PER_USD
        columns["budget_max_cost_nano_usd"] = int(nanos.to_integral_value())
    return columns


def workflow_estimate(
    *, workflow: Workflow, entities: int, sample_ids: Callable[[int], list[str]]
) -> dict:
    """What a run of the workflow's current version over `entities` entities would use and
    cost; `sample_ids(n)` gives up to n of them, spread over the set, read only when the
    version has no history to go by."""
    version = WorkflowVersion.objects.get(workflow=workflow, number=workflow.version)
    steps = model_steps(version)
    per_entity = _history(version, steps)
    basis = "history"
    if per_entity is None:
        sample = sample_ids(ESTIMATE_SAMPLE)
        with rendering_time_limit():  # one render's time for the whole sample
            per_entity, basis = _sample(workflow, sample, steps), "sample"
    totals = {"modelCalls": 0, "inputTokens": 0, "outputTokens": 0}
    cost, priced = 0, True
    for step, provider, model in steps:
        usage = {
            key: math.ceil(per_entity[step["id"]].get(key, 0) * entities)
            for key in ("calls", "inputTokens", "cachedInputTokens", "outputTokens")
        }
        totals["modelCalls"] += usage["calls"]
        totals["inputTokens"] += usage["inputTokens"]
        totals["outputTokens"] += usage["outputTokens"]
        batch = step["config"].get("mode") == "batch"  # priced at the batch discount
        step_cost = call_cost_nanos(provider, model, usage, batch=batch)
        if step_cost is None:
            priced = False
        else:
            cost += step_cost
    return {
        "entities": entities,
        **totals,
        "costUsd": usd_of(cost) if priced else None,
        "basis": basis,
    }


def _history(version: WorkflowVersion, steps: list) -> dict | None:
    """Per step, the tokens and calls per finished entity in this version's runs; None
    without any finished item."""
    usages = list(
        RunItem.objects.filter(
            run__workflow_version=version,
            status__in=[ItemStatus.COMPLETED, ItemStatus.SKIPPED],
        )
        # Items that ran none of the steps are no history of them: a revert's (it calls no
        # model: a run and its revert made the estimate half the calls the run made) and
        # those left out of a run (in another open run of the workflow: no step, no stepId).
        .exclude(run__trigger__type=TriggerType.REVERT)
        .exclude(status=ItemStatus.SKIPPED, step_id__isnull=True)
        .order_by("-id")
        .values_list("usage", flat=True)[:ESTIMATE_HISTORY_ITEMS]
    )
    if not usages:
        return None
    averages = {}
    for step, _, _ in steps:
        sums: dict[str, float] = {}
        for usage in usages:
            for key, value in (usage or {}).get("steps", {}).get(step["id"], {}).items():
                sums[key] = sums.get(key, 0) + value
        averages[step["id"]] = {key: value / len(usages) for key, value in sums.items()}
    return averages


def ids_sample(entity_ids: list[str]) -> Callable[[int], list[str]]:
    """`sample_ids` for a list of ids: n of them, evenly spread."""
    return lambda n: entity_ids[:: max(1, len(entity_ids) // n)][:n]


def _sample(workflow: Workflow, sample: list[str], steps: list) -> dict:
    """Per step, the tokens of one call per entity, from prompts rendered for a sample."""
    entities = list(
        Entity.objects.filter(entity_type_id=workflow.entity_type_id, pk__in=sample).values_list(
            "pk", "status", "data"
        )
    )
    averages = {}
    for step, _, _ in steps:
        config = step["config"]
        chars = [
            sum(
                _rendered_length(config.get(key, ""), pk, status, data)
                for key in ("prompt", "system")
            )
            for pk, status, data in entities
        ] or [len(config["prompt"]) + len(config.get("system", ""))]
        averages[step["id"]] = {
            "calls": 1,
            "inputTokens": sum(chars) / len(chars) / CHARS_PER_TOKEN,
            "outputTokens": config.get("maxTokens") or ESTIMATE_OUTPUT_TOKENS,
        }
    return averages


def _rendered_length(template: str, pk: str, status: str, data: dict) -> int:
    if not template:
        return 0
    context = {"entity": {**data, "id": pk, "status": status}, "steps": {}, "run": {"id": ""}}
    try:
        return len(render(template, context))
    except TemplateError:
        return len(template)  # a template over its bounds would fail the entity: no call
