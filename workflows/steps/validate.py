import re

from config.api.errors import FieldError
from workflows.steps.base import StepType
from workflows.steps.fields import field_path
from workflows.steps.registry import register

JSON_TYPES = ["string", "number", "integer", "boolean", "object", "array", "null"]


@register
class Validate(StepType):
    type = "validate"
    name = "Validate"
    description = (
        "Fails the entity, naming every broken rule, if its working copy breaks one of the "
        "`rules` or (unless `useEntityTypeSchema` is false) its entity type's JSON Schema."
    )
    config_schema = {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "rules": {
                "type": "array",
                "maxItems": 200,
                "default": [],
                "description": "Rules the working copy must meet.",
                "items": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["field"],
                    "properties": {
                        "field": field_path("The field the rule checks."),
                        "required": {"type": "boolean", "description": "The field must be set."},
                        "type": {
                            "type": "string",
                            "enum": JSON_TYPES,
                            "description": "The JSON type the value must have.",
                        },
                        "minLength": {
                            "type": "integer",
                            "minimum": 0,
                            "description": "Shortest string or list.",
                        },
                        "maxLength": {
                            "type": "integer",
                            "minimum": 0,
                            "description": "Longest string or list.",
                        },
                        "pattern": {
                            "type": "string",
                            "maxLength": 1000,
                            "description": "A regular expression a string must match.",
                        },
                        "enum": {
                            "type": "array",
                            "minItems": 1,
                            "items": {},
                            "description": "The allowed values.",
                        },
                        "minimum": {"type": "number", "description": "Smallest number."},
                        "maximum": {"type": "number", "description": "Largest number."},
                    },
                },
            },
            "useEntityTypeSchema": {
                "type": "boolean",
                "default": True,
                "description": "Also check the working copy against the entity type's schema.",
            },
        },
    }
    example = {
        "rules": [
            {"field": "title", "required": True, "type": "string", "maxLength": 120},
            {"field": "description", "required": True, "minLength": 50},
            {"field": "price", "type": "number", "minimum": 0},
        ],
        "useEntityTypeSchema": True,
    }

    def extra_problems(self, config: dict, *, path: str) -> list[FieldError]:
        found = []
        for index, rule in enumerate(config.get("rules", [])):
            where = f"{path}.rules[{index}]"
            if "pattern" in rule:
                try:
                    re.compile(rule["pattern"])
                except re.error as exc:
                    found.append(
                        FieldError(f"{where}.pattern", f"Invalid regular expression: {exc}")
                    )
            for low, high in (("minLength", "maxLength"), ("minimum", "maximum")):
                if low in rule and high in rule and rule[low] > rule[high]:
                    found.append(FieldError(f"{where}.{low}", f"Greater than {high}."))
        return found
