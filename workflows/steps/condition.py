import re

from config.api.errors import FieldError
from workflows.steps.base import StepType
from workflows.steps.fields import field_path
from workflows.steps.registry import register

OPERATORS = [
    "eq",
    "ne",
    "gt",
    "gte",
    "lt",
    "lte",
    "in",
    "notIn",
    "contains",
    "exists",
    "notExists",
    "matches",
]
NO_VALUE = {"exists", "notExists"}
LIST_VALUE = {"in", "notIn"}


@register
class Condition(StepType):
    type = "condition"
    name = "Condition"
    description = (
        "Checks the working copy. If the condition holds the entity goes on; if not, `else` "
        "decides: `stop` the entity (its item is `skipped`, counted completed), `fail` it, or "
        "`skip` the next `skipCount` steps."
    )
    config_schema = {
        "type": "object",
        "additionalProperties": False,
        "required": ["if"],
        "properties": {
            "if": {"$ref": "#/$defs/Predicate"},
            "else": {
                "type": "string",
                "enum": ["stop", "fail", "skip"],
                "default": "stop",
                "description": "What happens when the condition is false.",
            },
            "skipCount": {
                "type": "integer",
                "minimum": 1,
                "maximum": 100,
                "default": 1,
                "description": 'With `else: "skip"`: how many following steps to skip.',
            },
        },
        "$defs": {
            "Predicate": {
                "description": "A comparison, or `all`/`any` of predicates.",
                "oneOf": [
                    {"$ref": "#/$defs/Comparison"},
                    {"$ref": "#/$defs/AllOf"},
                    {"$ref": "#/$defs/AnyOf"},
                ],
            },
            "Comparison": {
                "type": "object",
                "additionalProperties": False,
                "required": ["field", "operator"],
                "properties": {
                    "field": field_path("The field compared."),
                    "operator": {
                        "type": "string",
                        "enum": OPERATORS,
                        "description": "How the field is compared with `value`.",
                    },
                    "value": {
                        "description": "The value compared with (not for exists/notExists; "
                        "a list for in/notIn; a regex for matches)."
                    },
                },
            },
            "AllOf": {
                "type": "object",
                "additionalProperties": False,
                "required": ["all"],
                "properties": {
                    "all": {
                        "type": "array",
                        "minItems": 1,
                        "maxItems": 50,
                        "items": {"$ref": "#/$defs/Predicate"},
                        "description": "True when every predicate is.",
                    }
                },
            },
            "AnyOf": {
                "type": "object",
                "additionalProperties": False,
                "required": ["any"],
                "properties": {
                    "any": {
                        "type": "array",
                        "minItems": 1,
                        "maxItems": 50,
                        "items": {"$ref": "#/$defs/Predicate"},
                        "description": "True when at least one predicate is.",
                    }
                },
            },
        },
    }
    example = {
        "if": {
            "all": [
                {"field": "price", "operator": "gt", "value": 0},
                {"field": "description", "operator": "exists"},
            ]
        },
        "else": "stop",
    }

    def extra_problems(self, config: dict, *, path: str) -> list[FieldError]:
        return _predicate_problems(config["if"], f"{path}.if")


def _predicate_problems(predicate: dict, path: str) -> list[FieldError]:
    for key in ("all", "any"):
        if key in predicate:
            return [
                problem
                for index, item in enumerate(predicate[key])
                for problem in _predicate_problems(item, f"{path}.{key}[{index}]")
            ]
    operator, has_value = predicate["operator"], "value" in predicate
    if operator in NO_VALUE:
        return [FieldError(f"{path}.value", f"Not used with {operator}.")] if has_value else []
    if not has_value:
        return [FieldError(f"{path}.value", f"Required with {operator}.", "required")]
    value = predicate["value"]
    if operator in LIST_VALUE and not isinstance(value, list):
        return [FieldError(f"{path}.value", f"Must be a list with {operator}.")]
    if operator == "matches":
        if not isinstance(value, str):
            return [FieldError(f"{path}.value", "Must be a regular expression string.")]
        try:
            re.compile(value)
        except re.error as exc:
            return [FieldError(f"{path}.value", f"Invalid regular expression: {exc}")]
    return []
