import json
from dataclasses import replace

from django.conf import settings
from jsonschema.exceptions import best_match

from config.api.errors import FieldError
from config.metrics import MODEL_COST, MODEL_UNPRICED
from entities.schemas import schema_errors, schema_problems, schema_validator
from workflows.pricing import NANOS_PER_USD, call_cost_nanos
from workflows.providers import PROVIDERS, GenerationRequest, provider_get
from workflows.providers.ratelimit import rate_limit_flush
from workflows.steps.base import StepType, advance, template_string
from workflows.steps.fields import field_path
from workflows.steps.inflight import bounded_calls
from workflows.steps.registry import register
from workflows.steps.runtime import EntityState, Flow, StepContext, StepError, get_path, set_path


@register
class AiGenerate(StepType):
    type = "ai_generate"
    name = "AI generate"
    description = (
        "Calls the configured LLM provider with the rendered prompt and writes the answer to "
        "`outputField`. With `responseFormat: json` the answer is parsed and validated against "
        "`jsonSchema`, which is also sent to the provider (OpenAI structured outputs, an "
        "Anthropic forced tool); one corrective retry on an invalid answer. Token usage is "
        "recorded."
    )
    config_schema = {
        "type": "object",
        "additionalProperties": False,
        "required": ["prompt", "outputField"],
        "properties": {
            "prompt": template_string("The prompt sent to the model", minLength=1),
            "outputField": field_path("Where the answer is written."),
            "system": template_string("An optional system message"),
            "provider": {
                "type": "string",
                "enum": list(PROVIDERS),
                "description": "The LLM provider; defaults to the deployment's AI_PROVIDER.",
            },
            "model": {
                "type": "string",
                "minLength": 1,
                "maxLength": 200,
                "description": "The model name; defaults to the deployment's AI_MODEL.",
            },
            "temperature": {
                "type": "number",
                "minimum": 0,
                "maximum": 2,
                "description": "Sampling temperature.",
            },
            "maxTokens": {
                "type": "integer",
                "minimum": 1,
                "maximum": 200_000,
                "description": "The most tokens the answer may have.",
            },
            "responseFormat": {
                "type": "string",
                "enum": ["text", "json"],
                "default": "text",
                "description": "`text` writes the answer as is; `json` parses it as JSON.",
            },
            "jsonSchema": {
                "type": "object",
                "description": "With `responseFormat: json`: a JSON Schema the answer must meet.",
            },
            "overwrite": {
                "type": "boolean",
                "default": True,
                "description": "When false, an entity whose `outputField` already has a value "
                "keeps it and no call is made.",
            },
        },
    }
    example = {
        "prompt": "Write a two-sentence product description for {{ entity.title }} "
        "by {{ entity.brand }}.",
        "outputField": "description",
        "system": "You write concise, factual e-commerce copy.",
        "temperature": 0.7,
        "maxTokens": 300,
    }

    def extra_problems(self, config: dict, *, path: str) -> list[FieldError]:
        if "jsonSchema" not in config:
            return []
        if config.get("responseFormat") != "json":
            return [FieldError(f"{path}.jsonSchema", 'Only allowed with responseFormat "json".')]
        # The same rules as an entity type's schema: nothing fetched, patterns on RE2.
        return schema_problems(config["jsonSchema"], field=f"{path}.jsonSchema")

    def chunk_size_limit(self, config: dict) -> int:
        return settings.AI_RUN_CHUNK_SIZE

    def run_batch(self, states: list[EntityState], config: dict, ctx: StepContext) -> None:
        """The chunk's calls are in flight together, up to AI_MAX_CONCURRENCY."""
        provider = provider_get(config.get("provider") or settings.AI_PROVIDER)
        requests = []
        for state in states:
            existing = get_path(state.data, config["outputField"])
            if not config["overwrite"] and existing not in (None, ""):
                advance(state, Flow(output=existing), ctx)
                continue
            try:
                requests.append((state, self._request(state, config, ctx)))
            except StepError as exc:
                state.fail(ctx.step_id, exc.message)

        def generate(pair):
            state, request = pair

            def log_retry(message):
                state.log.append(("warning", ctx.step_id, message))

            answer, usage = self._generate(provider, request, log_retry)
            return answer, priced(usage, provider, request.model)

        def admit(pair) -> bool:
            # A run's budget: once reached, no new call starts (those in flight finish).
            reached = ctx.engine.budget_reached()
            if reached is not None:
                pair[0].fail(ctx.step_id, reached)
            return reached is None

        calls = bounded_calls(
            requests, generate, limit=settings.AI_MAX_CONCURRENCY, ctx=ctx, admit=admit
        )
        for (state, _request), future in calls:
            try:
                answer, usage = future.result()
            except StepError as exc:
                state.fail(ctx.step_id, exc.message)
                continue
            ctx.engine.usage_record(usage)
            state.add_usage(usage, ctx.step_id)
            set_path(state.data, config["outputField"], answer)
            advance(state, Flow(output=answer), ctx)
        rate_limit_flush()  # the last calls' token corrections: no later call carries them

    def _request(self, state: EntityState, config: dict, ctx: StepContext) -> GenerationRequest:
        return GenerationRequest(
            prompt=self.render(config["prompt"], state, ctx),
            system=self.render(config.get("system", ""), state, ctx),
            model=config.get("model") or settings.AI_MODEL,
            temperature=config.get("temperature"),
            max_tokens=config.get("maxTokens"),
            json_mode=config["responseFormat"] == "json",
            json_schema=config.get("jsonSchema"),
        )

    @staticmethod
    def _generate(provider, request: GenerationRequest, on_retry):
        """One answer (parsed, for JSON) and its usage; one corrective retry for bad JSON."""
        generation = provider.generate(request, on_retry=on_retry)
        usage = {**generation.usage, "calls": 1}
        if not request.json_mode:
            return generation.text, usage
        problem = json_problem(generation.text, request.json_schema)
        if problem is None:
            return json.loads(generation.text), usage
        retry = replace(
            request,
            prompt=f"{request.prompt}\n\nYour previous answer was not valid: {problem}\n"
            "Answer again with only a JSON value that satisfies the schema.",
        )
        on_retry(f"{provider.name}: the answer was not valid ({problem}); asking once more.")
        generation = provider.generate(retry, on_retry=on_retry)
        for key, value in {**generation.usage, "calls": 1}.items():
            usage[key] = usage.get(key, 0) + value
        problem = json_problem(generation.text, request.json_schema)
        if problem is not None:
            raise StepError(
                f"{provider.name}: the answer was not valid JSON for the schema "
                f"after one retry: {problem}"
            )
        return json.loads(generation.text), usage


def priced(usage: dict, provider, model: str) -> dict:
    """The usage with its cost (`costNanoUsd`), or counted as an `unpricedCalls` when the
    model's price is unknown (then the run's cost is unknown too)."""
    model = model or getattr(provider, "default_model", "")
    cost = call_cost_nanos(provider.name, model, usage)
    if cost is None:
        MODEL_UNPRICED.labels(provider.name, model).inc(usage.get("calls", 1))
        return {**usage, "unpricedCalls": usage.get("calls", 1)}
    MODEL_COST.labels(provider.name, model).inc(cost / NANOS_PER_USD)
    return {**usage, "costNanoUsd": cost}


def json_problem(text: str, schema: dict | None) -> str | None:
    try:
        value = json.loads(text)
    except ValueError as exc:
        return f"not JSON ({exc})"
    if schema:
        error = best_match(schema_errors(schema_validator(schema), value))
        if error is not None:
            return f"{'/'.join(map(str, error.absolute_path)) or 'the answer'}: {error.message}"
    return None
