"""A step's `jsonSchema` sent to the provider, so the model answers in its shape.

OpenAI takes it as `response_format: json_schema` (structured outputs), `strict` only when the
schema is in the subset strict mode accepts; Anthropic as a forced tool whose `input_schema` is
the schema (every Claude model and proxy supports tools; native structured outputs only some
models). Both want an object at the root, so any other schema is wrapped in one property and
the answer unwrapped. The answer is still validated by the step: the provider's guarantee is a
saving, not a trust boundary.
"""

import json

ANSWER_NAME = "answer"
WRAPPED = "value"  # the one property a non-object schema is wrapped in

# What OpenAI's strict mode accepts (platform.openai.com/docs/guides/structured-outputs,
# "Supported schemas"); annotations are allowed too.
STRICT_KEYWORDS = frozenset(
    {
        "type", "properties", "required", "additionalProperties", "items", "enum", "const",
        "anyOf", "$ref", "$defs", "definitions", "description", "title",
        "pattern", "format", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum",
        "multipleOf", "minItems", "maxItems",
    }
)  # fmt: skip
_SUBSCHEMA_MAPS = ("properties", "$defs", "definitions")


def root_schema(schema: dict) -> tuple[dict, bool]:
    """The schema to send, with an object at its root, and whether it was wrapped."""
    if schema.get("type") == "object":
        return schema, False
    wrapper = {
        "type": "object",
        "properties": {WRAPPED: schema},
        "required": [WRAPPED],
        "additionalProperties": False,
    }
    return wrapper, True


def unwrap(value, wrapped: bool) -> str:
    """The answer as JSON text: the wrapped property when it is there, else what came."""
    if wrapped and isinstance(value, dict) and set(value) == {WRAPPED}:
        value = value[WRAPPED]
    return json.dumps(value)


def strict_qualifies(schema) -> bool:
    """Whether OpenAI's strict mode takes the schema as is: only its keywords, and every
    object closed (`additionalProperties: false`) with all its properties required."""
    if isinstance(schema, bool) or not isinstance(schema, dict):
        return False
    if not set(schema) <= STRICT_KEYWORDS:
        return False
    kinds = schema.get("type")
    kinds = kinds if isinstance(kinds, list) else [kinds]
    if "object" in kinds or "properties" in schema:
        properties = schema.get("properties", {})
        if schema.get("additionalProperties") is not False:
            return False
        if sorted(schema.get("required", [])) != sorted(properties):
            return False
    subschemas = [schema["items"]] if "items" in schema else []
    subschemas += schema.get("anyOf", [])
    for key in _SUBSCHEMA_MAPS:
        subschemas += list(schema.get(key, {}).values())
    return all(strict_qualifies(sub) for sub in subschemas)


def openai_response_format(schema: dict) -> dict:
    sent, _ = root_schema(schema)
    return {
        "type": "json_schema",
        "json_schema": {"name": ANSWER_NAME, "schema": sent, "strict": strict_qualifies(sent)},
    }


def anthropic_tool_options(schema: dict) -> dict:
    sent, _ = root_schema(schema)
    tool = {
        "name": ANSWER_NAME,
        "description": "Give the answer; its input is the answer itself.",
        "input_schema": sent,
    }
    return {"tools": [tool], "tool_choice": {"type": "tool", "name": ANSWER_NAME}}
