"""A stand-in model: no network, no key, deterministic, and honest about being a stand-in.

It lets the product run on a fresh machine. Text answers say what they are; JSON answers are
the smallest object that satisfies the requested schema.
"""

import json

from workflows.providers.base import Generation, GenerationRequest, Provider

STAND_IN = "[local stand-in model: set AI_PROVIDER for real output]"


def _tokens(text: str) -> int:
    return max(1, len(text.split()))


def stand_in_value(schema: dict | None):
    """The smallest value of the schema's type, with every required property filled in."""
    schema = schema or {}
    if "enum" in schema:
        return schema["enum"][0]
    if "default" in schema:
        return schema["default"]
    kind = schema.get("type", "object")
    if isinstance(kind, list):
        kind = kind[0]
    if kind == "object":
        properties = schema.get("properties", {})
        return {name: stand_in_value(properties.get(name)) for name in schema.get("required", [])}
    if kind == "array":
        return [stand_in_value(schema.get("items"))] * schema.get("minItems", 0)
    if kind == "string":
        return (STAND_IN + " ") * (1 + schema.get("minLength", 0) // len(STAND_IN))
    if kind in ("number", "integer"):
        return schema.get("minimum", 0)
    if kind == "boolean":
        return False
    return None


class LocalProvider(Provider):
    name = "local"

    def generate(self, request: GenerationRequest, on_retry=None) -> Generation:
        if request.json_mode:
            text = json.dumps(stand_in_value(request.json_schema))
        else:
            text = f"{STAND_IN} {' '.join(request.prompt.split())[:200]}"
            if request.max_tokens:
                text = " ".join(text.split()[: request.max_tokens])
        usage = {
            "inputTokens": _tokens(request.system + " " + request.prompt),
            "cachedInputTokens": 0,
            "outputTokens": _tokens(text),
        }
        return Generation(text=text, model=request.model or "local", usage=usage)
