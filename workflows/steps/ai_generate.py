"""`ai_generate`: a model call per entity, live (`mode: sync`) or as one provider batch job
per chunk at half the price (`mode: batch`: the entities wait, holding no worker, for the
`ai_batch` wait of `jobs.waits` to resume them with their answers)."""

from dataclasses import asdict, dataclass, replace
from typing import ClassVar

from django.conf import settings
from jsonschema.exceptions import best_match

from config.api.errors import FieldError
from config.api.parsers import MAX_JSON_DEPTH, json_depth, json_loads_finite
from config.metrics import MODEL_COST, MODEL_UNPRICED
from entities.schemas import (
    RefusedSchema,
    data_validator,
    schema_errors,
    schema_problems,
    schema_validator,
)
from workflows.pricing import NANOS_PER_USD, call_cost_nanos, request_estimate
from workflows.providers import PROVIDERS, GenerationRequest, provider_get
from workflows.providers.ratelimit import rate_limit_flush
from workflows.providers.usage import model_label
from workflows.steps.base import JSON_SCHEMA, StepType, advance, template_string
from workflows.steps.fields import field_path
from workflows.steps.inflight import bounded_calls
from workflows.steps.registry import register
from workflows.steps.runtime import EntityState, Flow, StepContext, StepError, get_path, set_path
from workflows.steps.waits import WaitRequest


@register
class AiGenerate(StepType):
    type = "ai_generate"
    name = "AI generate"
    description = (
        "Calls the configured LLM provider with the rendered prompt and writes the answer to "
        "`outputField`. With `responseFormat: json` the answer is parsed and validated against "
        "`jsonSchema`, which is also sent to the provider (OpenAI structured outputs, an "
        "Anthropic forced tool); one corrective retry on an invalid answer. Token usage is "
        "recorded. With `mode: batch` the chunk's requests go to the provider as one batch job "
        "(half the price, answered within hours): the entities wait, holding no worker, and go "
        "on when celery beat finds the batch ended; the test endpoint answers them live."
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
                JSON_SCHEMA: True,
            },
            "mode": {
                "type": "string",
                "enum": ["sync", "batch"],
                "default": "sync",
                "description": "`sync` calls the model live; `batch` sends each chunk's "
                "requests as one provider batch job (half the price, within 24 h), its entities "
                "waiting meanwhile. Needs a provider with batch support.",
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
        found = []
        provider = config.get("provider") or settings.AI_PROVIDER
        unusable = PROVIDERS[provider].setup_problem()
        if unusable is not None:  # every call would be a 401, entity after entity
            found.append(FieldError(f"{path}.provider", unusable, "not_configured"))
        if config.get("mode") == "batch" and not PROVIDERS[provider].supports_batch:
            found.append(
                FieldError(
                    f"{path}.mode",
                    f"The provider {provider!r} does not support batch mode.",
                    "unsupported",
                )
            )
        return found + self._json_schema_problems(config, path=path)

    def _json_schema_problems(self, config: dict, *, path: str) -> list[FieldError]:
        if "jsonSchema" not in config:
            return []
        if config.get("responseFormat") != "json":
            return [FieldError(f"{path}.jsonSchema", 'Only allowed with responseFormat "json".')]
        # The same rules as an entity type's schema: nothing fetched, patterns on RE2.
        return schema_problems(config["jsonSchema"], field=f"{path}.jsonSchema")

    def chunk_size_limit(self, config: dict) -> int | None:
        # In batch mode a chunk's calls become one provider batch: no worker waits on them,
        # and fewer, larger batches are what providers expect.
        if config.get("mode") == "batch":
            return None
        return settings.AI_RUN_CHUNK_SIZE

    def run_batch(self, states: list[EntityState], config: dict, ctx: StepContext) -> None:
        """The chunk's calls are in flight together, up to AI_MAX_CONCURRENCY."""
        provider = provider_get(config.get("provider") or settings.AI_PROVIDER)
        refused = _schema_refused(config.get("jsonSchema"))
        if refused:  # saved before schemas were measured: no answer could be checked
            for state in states:
                state.fail(ctx.step_id, refused)
            return

        def rendered():
            # Lazily: the first calls start once their prompts are rendered, not after the
            # whole chunk's (a chunk of 400 renders its prompts while its calls are out).
            for state in states:
                existing = get_path(state.data, config["outputField"])
                if not config["overwrite"] and existing not in (None, ""):
                    advance(state, Flow(output=existing), ctx)
                    continue
                try:
                    request = self._request(state, config, ctx)
                except StepError as exc:
                    state.fail(ctx.step_id, exc.message)
                    continue
                yield state, request

        requests = rendered()
        if config["mode"] == "batch":
            requests = self._park(list(requests), config, ctx)

        def generate(pair):
            state, request = pair

            def log_retry(message):
                state.log.append(("warning", ctx.step_id, message))

            try:
                answer, usage = self._generate(provider, request, log_retry)
            except CallsFailed as exc:
                raise CallsFailed(exc.message, priced(exc.usage, provider, request.model)) from None
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
                if isinstance(exc, CallsFailed):  # answered, invalid: paid for all the same
                    ctx.engine.usage_record(exc.usage)
                    state.add_usage(exc.usage, ctx.step_id)
                state.fail(ctx.step_id, exc.message)
                continue
            ctx.engine.usage_record(usage)
            state.add_usage(usage, ctx.step_id)
            set_path(state.data, config["outputField"], answer)
            advance(state, Flow(output=answer), ctx)
        rate_limit_flush()  # the last calls' token corrections: no later call carries them

    @staticmethod
    def _park(requests: list, config: dict, ctx: StepContext) -> list:
        """Batch mode: each entity waits for its answer from a provider batch (`ai_batch`);
        returns the requests left to answer live (an engine that does not wait: a test).

        A batch is paid for once answered, so each request's estimate is reserved against
        the run's budget before it is parked: those past the budget fail now, unsent."""
        name = config.get("provider") or settings.AI_PROVIDER
        provider = provider_get(name)
        estimates = [request_estimate(provider, request, batch=True) for _, request in requests]
        admitted = ctx.engine.budget_reserve(estimates)
        reached = ctx.engine.budget_reached() if admitted < len(requests) else None
        live = []
        for index, (state, request) in enumerate(requests):
            if index >= admitted:
                state.fail(ctx.step_id, reached or "Budget reached.")
                continue
            asked = AiBatchWaitRequest(
                provider=name,
                request=asdict(request),
                output_field=config["outputField"],
                reserved=estimates[index],
            )
            if not ctx.engine.wait(state, ctx, asked):
                state.log.append(
                    ("info", ctx.step_id, "Batch mode: answered live (a test sends no batch).")
                )
                live.append((state, request))
        return live

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
        value, problem = answer_of(generation.text, request)
        if problem is None:
            return value, usage
        on_retry(f"{provider.name}: the answer was not valid ({problem}); asking once more.")
        try:
            generation = provider.generate(corrective(request, problem), on_retry=on_retry)
        except StepError as exc:
            raise CallsFailed(exc.message, usage) from None
        usage = usage_add(usage, {**generation.usage, "calls": 1})
        value, problem = answer_of(generation.text, request)
        if problem is not None:
            raise CallsFailed(invalid_after_retry(provider.name, problem), usage)
        return value, usage


class CallsFailed(StepError):
    """No valid answer, after calls that answered and are paid for: `usage` is theirs (the
    stored shape, with `calls`; priced once the caller prices it), counted in the run's
    spending and the entity's usage as an answer's would be."""

    def __init__(self, message: str, usage: dict):
        super().__init__(message)
        self.usage = usage


@dataclass(frozen=True)
class AiBatchWaitRequest(WaitRequest):
    """What an `ai_generate` step in batch mode asks of its `ai_batch` wait: the provider, the
    model request (a `GenerationRequest` as a dict), where the answer goes, and the usage
    reserved for it against the run's budget."""

    kind: ClassVar[str] = "ai_batch"

    provider: str
    request: dict
    output_field: str
    reserved: dict

    def stored(self) -> dict:
        """As an `AiBatchRequest` row stores it."""
        return {
            "provider": self.provider,
            "request": self.request,
            "outputField": self.output_field,
            "reserved": self.reserved,
        }


# What the engine's `ai_batch` wait shares with the live path: the same checks, the same
# corrective retry, the same pricing (at the batch discount).


def answer_generate(provider, request: GenerationRequest, on_retry):
    """A live answer to a batch request (the few retries left over): (value, usage)."""
    return AiGenerate._generate(provider, request, on_retry)


def answer_of(text: str, request: GenerationRequest):
    """The answer's value, and the problem that makes it invalid (None when valid). A JSON
    answer is decoded refusing what the database cannot store (`NaN`, `Infinity`, `1e400`):
    taken, it failed the commit of the whole chunk, every delivery of it."""
    if not request.json_mode:
        return text, None
    # An answer nested deeper than a request body may be would exhaust the decoder's and the
    # validators' stack: it is an invalid answer (asked again, then the entity fails).
    if json_depth(text) > MAX_JSON_DEPTH:
        return None, f"nested deeper than {MAX_JSON_DEPTH} levels"
    try:
        value = json_loads_finite(text)
    except ValueError as exc:
        return None, f"not JSON ({exc})"
    problem = schema_problem(value, request.json_schema, size=len(text))
    return (value if problem is None else None), problem


def corrective(request: GenerationRequest, problem: str) -> GenerationRequest:
    """The request asked again after an invalid answer."""
    return replace(
        request,
        prompt=f"{request.prompt}\n\nYour previous answer was not valid: {problem}\n"
        "Answer again with only a JSON value that satisfies the schema.",
    )


def invalid_after_retry(provider_name: str, problem: str) -> str:
    return (
        f"{provider_name}: the answer was not valid JSON for the schema after one retry: {problem}"
    )


def usage_add(usage: dict, more: dict) -> dict:
    return {key: usage.get(key, 0) + more.get(key, 0) for key in {*usage, *more}}


def priced(usage: dict, provider, model: str, *, batch: bool = False) -> dict:
    """The usage with its cost (`costNanoUsd`; a batch's at the batch discount), or counted
    as an `unpricedCalls` when the model's price is unknown (then the run's cost is unknown
    too)."""
    model = model or getattr(provider, "default_model", "")
    cost = call_cost_nanos(provider.name, model, usage, batch=batch)
    labels = (provider.name, model_label(provider.name, model))
    if cost is None:
        MODEL_UNPRICED.labels(*labels).inc(usage.get("calls", 1))
        return {**usage, "unpricedCalls": usage.get("calls", 1)}
    MODEL_COST.labels(*labels).inc(cost / NANOS_PER_USD)
    return {**usage, "costNanoUsd": cost}


def _schema_refused(schema: dict | None) -> str | None:
    """Why a step's stored `jsonSchema` cannot be used (measured once per distinct schema,
    as an entity type's is), or None: one saved before schemas were measured may take hours
    to check an answer against."""
    validator = data_validator(schema) if schema else None
    if isinstance(validator, RefusedSchema):
        return f"The step's jsonSchema cannot be used: {validator.problem}"
    return None


def schema_problem(value, schema: dict | None, *, size: int) -> str | None:
    """Where and how a decoded answer (`size` characters of JSON) breaks the step's
    `jsonSchema`, or None."""
    if schema:
        error = best_match(schema_errors(schema_validator(schema), value, size=size))
        if error is not None:
            return f"{'/'.join(map(str, error.absolute_path)) or 'the answer'}: {error.message}"
    return None
