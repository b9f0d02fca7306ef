"""Providers over the network, through the official SDKs, with one retry policy (their
batch mode is in `batch.py`).

The SDKs' own retries are off (`max_retries=0`) so that every attempt passes the shared rate
limit and is logged: 429 waits for `Retry-After`; 5xx, connection errors and timeouts back
off exponentially with jitter; after AI_MAX_ATTEMPTS the entity fails with the provider, the
status and the provider's message. An attempt has one deadline, AI_TIMEOUT_S, for all of it
(`deadline.py`), not only for each network operation.
"""

import email.utils
import random
import time
from dataclasses import replace

from django.conf import settings

from config.api.parsers import json_loads_finite
from config.metrics import (
    MODEL_CALLS,
    MODEL_RATE_LIMITED,
    MODEL_RETRIES,
    model_call,
)
from workflows.providers.base import Generation, GenerationRequest, Provider
from workflows.providers.batch import AnthropicBatch, OpenAIBatch
from workflows.providers.deadline import answer_too_large, call_deadline, deadline_client
from workflows.providers.ratelimit import (
    estimate_tokens,
    rate_limit_correct,
    rate_limit_pause,
    rate_limit_reserve,
)
from workflows.providers.structured import (
    anthropic_tool_options,
    openai_response_format,
    root_schema,
    unwrap,
)
from workflows.providers.usage import (
    anthropic_usage,
    count_usage,
    model_label,
    openai_usage,
    outcome_label,
)
from workflows.steps.runtime import StepError

JSON_INSTRUCTION = "Answer with a single JSON value and nothing else."


def retry_after_s(response) -> float | None:
    """Seconds from `retry-after-ms` or `Retry-After` (seconds or an HTTP date)."""
    if response is None:
        return None
    headers = response.headers
    if headers.get("retry-after-ms"):
        try:
            return float(headers["retry-after-ms"]) / 1000
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(value)
        return max(0.0, parsed.timestamp() - time.time()) if parsed else None


def _message(exc) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        error = body.get("error", body)
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])
    return str(getattr(exc, "message", "") or exc)


class NotAnAnswer(ValueError):
    """A 200 whose body is not the answer's shape (a chat completion, a message; the SDK
    raised for any other status): `generate` asks again, as for a 5xx, then fails the
    entity naming the provider."""


def answer_json(raw) -> dict:
    """The body of an SDK call made `with_raw_response`, as JSON. The step reads four fields
    of an answer: the SDK's typed model of the whole answer cost 5-12% of an OpenAI call's
    CPU and 16-25% of an Anthropic one's (docs/benchmarks.md). The SDK still sends the call
    and raises its errors for any status but 2xx."""
    try:
        body = raw.http_response.json()
    except ValueError as exc:
        raise NotAnAnswer(f"an answer not in JSON ({exc})") from None
    if not isinstance(body, dict):
        raise NotAnAnswer("an answer not a JSON object")
    return body


def _text(value) -> str:
    """An answer's text: a string, or null for none (TypeError: anything else)."""
    if value is None:
        return ""
    if not isinstance(value, str):
        raise TypeError(f"the text is {type(value).__name__}, not a string")
    return value


def _model(value, requested: str) -> str:
    if value is None or value == "":
        return requested
    if not isinstance(value, str):
        raise TypeError(f"the model is {type(value).__name__}, not a string")
    return value


def _unwrapped_text(text: str, schema: dict) -> str:
    try:
        return unwrap(json_loads_finite(text), root_schema(schema)[1])
    except ValueError:
        return text  # not JSON (or NaN...): the step's validation says so and asks again


class NetworkProvider(Provider):
    """Subclasses set `sdk` (the SDK module), `default_model`, and implement `_client()` and
    `_call(client, request)`."""

    sdk = None
    default_model = ""

    def __init__(self):
        self._client_instance = None

    @property
    def client(self):
        if self._client_instance is None:
            self._client_instance = self._client()
        return self._client_instance

    # The settings of the provider's API key and base URL: its own API needs a key, a
    # server of one's own at a base URL may need none.
    key_setting = ""
    url_setting = ""

    @classmethod
    def setup_problem(cls) -> str | None:
        if getattr(settings, cls.key_setting) or getattr(settings, cls.url_setting):
            return None
        return (
            f"The provider {cls.name!r} is not set up: set {cls.key_setting} (or "
            f"{cls.url_setting}, for a server that needs no key)."
        )

    def _client(self):
        raise NotImplementedError

    def _call(self, client, request: GenerationRequest) -> Generation:
        raise NotImplementedError

    def _resolved(self, request: GenerationRequest) -> GenerationRequest:
        return request if request.model else replace(request, model=self.default_model)

    def _problem(self, exc) -> tuple[str, str, bool, float | None]:
        """What an SDK error says: (status, message, retryable, seconds the provider asked
        to wait)."""
        if isinstance(exc, self.sdk.APIStatusError):
            wait = retry_after_s(exc.response) if exc.status_code == 429 else None
            retryable = exc.status_code in (408, 409, 429) or exc.status_code >= 500
            return str(exc.status_code), _message(exc), retryable, wait
        too_large = answer_too_large(exc)
        if too_large is not None:
            # Not asked again: each attempt would read (and the provider bill) as much.
            return "answer too large", f"{too_large} (AI_MAX_ANSWER_BYTES)", False, None
        if isinstance(exc, self.sdk.APITimeoutError):
            return "timeout", f"no answer within {settings.AI_TIMEOUT_S:g}s", True, None
        if isinstance(exc, self.sdk.APIConnectionError):
            return "connection error", _message(exc), True, None
        return "error", _message(exc), False, None

    def generate(self, request: GenerationRequest, on_retry=None) -> Generation:
        request = self._resolved(request)
        attempts = settings.AI_MAX_ATTEMPTS
        limit_key = f"{self.name}:{request.model}"
        labels = (self.name, model_label(self.name, request.model))
        estimated = estimate_tokens(
            text=request.system + request.prompt, max_tokens=self.answer_tokens_max(request)
        )
        for attempt in range(1, attempts + 1):
            rate_limit_reserve(limit_key, tokens=estimated)
            used = 0
            try:
                deadline = call_deadline(
                    settings.AI_TIMEOUT_S, max_bytes=settings.AI_MAX_ANSWER_BYTES
                )
                with model_call(*labels), deadline:
                    generation = self._call(self.client, request)
                used = count_usage(labels, generation.usage)
                MODEL_CALLS.labels(*labels, "ok").inc()
                return generation
            except self.sdk.APIError as exc:
                status, message, retryable, wait = self._problem(exc)
            except NotAnAnswer as exc:
                # A body cut short or replaced on its way (a proxy's page): asked again, as
                # a batch line with one is, and counted as one (its status: 200).
                status, message, retryable, wait = "200", str(exc), True, None
            finally:
                rate_limit_correct(limit_key, estimated=estimated, used=used)
            MODEL_CALLS.labels(*labels, outcome_label(status)).inc()
            if status == "429":
                MODEL_RATE_LIMITED.labels(*labels).inc()
            problem = f"{self.name}: {status}: {message}"
            if not retryable or attempt == attempts:
                suffix = f" (after {attempt} attempts)" if attempt > 1 else ""
                raise StepError(problem + suffix)
            if wait is None:
                wait = settings.AI_BACKOFF_S * 2 ** (attempt - 1) * random.uniform(0.5, 1.5)
            wait = min(wait, settings.AI_MAX_RETRY_WAIT_S)
            if on_retry is not None:
                on_retry(
                    f"{problem}; retrying in {wait:.1f}s (attempt {attempt + 1} of {attempts})."
                )
            MODEL_RETRIES.labels(*labels).inc()
            if status == "429":
                # Every worker calling this model waits, not only this one: the next
                # reservation (this caller's included) starts after the pause.
                rate_limit_pause(limit_key, wait)
            else:
                time.sleep(wait)
        raise AssertionError("unreachable")


class OpenAIProvider(OpenAIBatch, NetworkProvider):
    """Any OpenAI-compatible endpoint: OpenAI, Azure, vLLM, Ollama, llama.cpp."""

    name = "openai"
    default_model = "gpt-5-mini"
    key_setting, url_setting = "OPENAI_API_KEY", "OPENAI_BASE_URL"

    def __init__(self):
        super().__init__()
        import openai

        self.sdk = openai

    def _client(self):
        return self.sdk.OpenAI(
            base_url=settings.OPENAI_BASE_URL or None,
            api_key=settings.OPENAI_API_KEY or "not-needed",  # local servers need none
            timeout=settings.AI_TIMEOUT_S,
            max_retries=0,
            http_client=deadline_client(self.sdk.DefaultHttpxClient),
        )

    def _structured(self, request: GenerationRequest) -> bool:
        return bool(request.json_schema) and settings.AI_OPENAI_STRUCTURED_OUTPUTS

    def _body(self, request: GenerationRequest) -> dict:
        """The JSON body of the chat completion: the sync call's and each batch line's."""
        system = "\n\n".join(
            filter(None, [request.system, JSON_INSTRUCTION if request.json_mode else ""])
        )
        messages = [{"role": "system", "content": system}] if system else []
        messages.append({"role": "user", "content": request.prompt})
        body = {"model": request.model, "messages": messages}
        if request.temperature is not None:
            body["temperature"] = request.temperature
        if request.max_tokens is not None:
            body["max_tokens"] = request.max_tokens
        if self._structured(request):
            body["response_format"] = openai_response_format(request.json_schema)
        elif request.json_mode:
            body["response_format"] = {"type": "json_object"}
        return body

    def _generation(self, completion: dict, request: GenerationRequest) -> Generation:
        """A chat completion as JSON (the sync call's answer, a batch output line's body) as
        a Generation; `NotAnAnswer` when it is not one."""
        try:
            text = _text(completion["choices"][0]["message"].get("content"))
            model = _model(completion.get("model"), request.model)
            usage = openai_usage(completion.get("usage"))
        except (KeyError, IndexError, TypeError, AttributeError) as exc:
            raise NotAnAnswer(f"an answer not in the chat completion shape ({exc!r})") from None
        if self._structured(request):
            text = _unwrapped_text(text, request.json_schema)
        return Generation(text=text, model=model, usage=usage)

    def _call(self, client, request: GenerationRequest) -> Generation:
        raw = client.chat.completions.with_raw_response.create(**self._body(request))
        return self._generation(answer_json(raw), request)


class AnthropicProvider(AnthropicBatch, NetworkProvider):
    name = "anthropic"
    default_model = "claude-haiku-4-5"
    key_setting, url_setting = "ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL"
    default_max_tokens = 1024

    def __init__(self):
        super().__init__()
        import anthropic

        self.sdk = anthropic

    def answer_tokens_max(self, request: GenerationRequest) -> int:
        return request.max_tokens or self.default_max_tokens

    def _client(self):
        return self.sdk.Anthropic(
            base_url=settings.ANTHROPIC_BASE_URL or None,
            api_key=settings.ANTHROPIC_API_KEY or "not-needed",
            timeout=settings.AI_TIMEOUT_S,
            max_retries=0,
            http_client=deadline_client(self.sdk.DefaultHttpxClient),
        )

    def _params(self, request: GenerationRequest) -> dict:
        """The Messages API parameters: the sync call's body and each batch request's."""
        # A schema goes as a forced tool; JSON without one is asked for in words.
        params = {
            "model": request.model,
            "max_tokens": self.answer_tokens_max(request),
            "messages": [{"role": "user", "content": request.prompt}],
        }
        if request.json_schema:
            params.update(anthropic_tool_options(request.json_schema))
        instruct = request.json_mode and not request.json_schema
        system = "\n\n".join(filter(None, [request.system, JSON_INSTRUCTION if instruct else ""]))
        if system:
            # Marked cacheable: the calls of a step share it, and cached reads cost a tenth.
            params["system"] = [
                {"type": "text", "text": system, "cache_control": {"type": "ephemeral"}}
            ]
        if request.temperature is not None:
            params["temperature"] = request.temperature
        return params

    def _generation(self, message: dict, request: GenerationRequest) -> Generation:
        """A message as JSON (the sync call's answer, a batch result's) as a Generation: a
        forced tool's input is the answer; `NotAnAnswer` when it is not a message."""
        try:
            blocks = message["content"]
            tool_inputs = [block["input"] for block in blocks if block["type"] == "tool_use"]
            if not tool_inputs:
                text = "".join(_text(block["text"]) for block in blocks if block["type"] == "text")
            model = _model(message.get("model"), request.model)
            usage = anthropic_usage(message["usage"])
        except (KeyError, TypeError, AttributeError) as exc:
            raise NotAnAnswer(f"an answer not in the message shape ({exc!r})") from None
        if tool_inputs:
            text = unwrap(
                tool_inputs[0], bool(request.json_schema) and root_schema(request.json_schema)[1]
            )
        return Generation(text=text, model=model, usage=usage)

    def _call(self, client, request: GenerationRequest) -> Generation:
        params = self._params(request)
        if "temperature" in params:
            # anthropic 1.x dropped `temperature` from the signature; the API still takes it.
            params["extra_body"] = {"temperature": params.pop("temperature")}
        raw = client.messages.with_raw_response.create(**params)
        return self._generation(answer_json(raw), request)
