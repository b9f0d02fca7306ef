from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from config.api.errors import FieldError
from workflows.steps.base import StepType, template_string
from workflows.steps.fields import field_path
from workflows.steps.registry import register


@register
class AiGenerate(StepType):
    type = "ai_generate"
    name = "AI generate"
    description = (
        "Calls the configured LLM provider with the rendered prompt and writes the answer to "
        "`outputField`. With `responseFormat: json` the answer is parsed and validated against "
        "`jsonSchema` (one corrective retry on an invalid answer). Token usage is recorded."
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
                "enum": ["local", "openai", "anthropic"],
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
        try:
            Draft202012Validator.check_schema(config["jsonSchema"])
        except SchemaError as exc:
            return [FieldError(f"{path}.jsonSchema", f"Not a valid JSON Schema: {exc.message}")]
        return []
