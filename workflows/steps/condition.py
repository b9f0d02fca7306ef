from config.api.errors import FieldError
from entities.patterns import pattern_problem
from workflows.steps.base import StepType, regex_search
from workflows.steps.fields import field_path
from workflows.steps.registry import register
from workflows.steps.runtime import MISSING, EntityState, Flow, StepContext, StepError, get_path

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
# What each operator means, shown in the admin's step type reference and editor.
OPERATOR_DESCRIPTIONS = {
    "eq": "Equal to `value` (any JSON value; a missing field is not equal).",
    "ne": "Not equal to `value` (true when the field is missing).",
    "gt": "Greater than `value`: numbers with numbers, strings with strings.",
    "gte": "Greater than or equal to `value`.",
    "lt": "Less than `value`: numbers with numbers, strings with strings.",
    "lte": "Less than or equal to `value`.",
    "in": "One of the values in the list `value`.",
    "notIn": "None of the values in the list `value` (true when the field is missing).",
    "contains": "A string containing the text `value`, a list containing the item `value`, "
    "or an object with the key `value`.",
    "exists": "The field is set and not null (no `value`).",
    "notExists": "The field is missing or null (no `value`).",
    "matches": "A string matching the regular expression `value` (RE2 syntax, searched anywhere).",
}
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
            "if": {
                "$ref": "#/$defs/Predicate",
                "description": "The condition: a comparison of one field, or `all`/`any` of "
                "conditions, nested as deep as needed.",
            },
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
                "description": "True when the field compares with `value` as `operator` says.",
                "type": "object",
                "additionalProperties": False,
                "required": ["field", "operator"],
                "properties": {
                    "field": field_path("The field compared."),
                    "operator": {
                        "type": "string",
                        "enum": OPERATORS,
                        "description": "How the field is compared with `value`.",
                        "x-enumDescriptions": OPERATOR_DESCRIPTIONS,
                    },
                    "value": {
                        "description": "The value compared with (not for exists/notExists; "
                        "a list for in/notIn; a regex for matches)."
                    },
                },
            },
            "AllOf": {
                "description": "True when every condition in `all` is (they nest).",
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
                "description": "True when at least one condition in `any` is (they nest).",
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

    def run(self, state: EntityState, config: dict, ctx: StepContext) -> Flow:
        if evaluate(config["if"], state.data):
            return Flow(output={"result": True})
        otherwise = config["else"]
        if otherwise == "fail":
            raise StepError(f"Condition not met: {describe(config['if'])}.")
        if otherwise == "skip":  # the API's word: jump over the next `skipCount` steps
            return Flow(output={"result": False}, jump=config["skipCount"])
        return Flow(output={"result": False}, stop=True)


def evaluate(predicate: dict, data: dict) -> bool:
    if "all" in predicate:
        return all(evaluate(item, data) for item in predicate["all"])
    if "any" in predicate:
        return any(evaluate(item, data) for item in predicate["any"])
    actual = get_path(data, predicate["field"], MISSING)
    operator, expected = predicate["operator"], predicate.get("value")
    if operator == "exists":
        return actual is not MISSING and actual is not None
    if operator == "notExists":
        return actual is MISSING or actual is None
    if actual is MISSING:
        return operator in ("ne", "notIn")
    return COMPARE[operator](actual, expected)


def _ordered(compare):
    """Order comparisons hold only between numbers, or between strings."""

    def check(actual, expected) -> bool:
        numbers = (int, float)
        if isinstance(actual, bool) or isinstance(expected, bool):
            return False
        if isinstance(actual, numbers) and isinstance(expected, numbers):
            return compare(actual, expected)
        if isinstance(actual, str) and isinstance(expected, str):
            return compare(actual, expected)
        return False

    return check


def _contains(actual, expected) -> bool:
    if isinstance(actual, str):
        return isinstance(expected, str) and expected in actual
    if isinstance(actual, list):
        return expected in actual
    if isinstance(actual, dict):
        return isinstance(expected, str) and expected in actual
    return False


COMPARE = {
    "eq": lambda actual, expected: actual == expected,
    "ne": lambda actual, expected: actual != expected,
    "gt": _ordered(lambda a, b: a > b),
    "gte": _ordered(lambda a, b: a >= b),
    "lt": _ordered(lambda a, b: a < b),
    "lte": _ordered(lambda a, b: a <= b),
    "in": lambda actual, expected: actual in expected,
    "notIn": lambda actual, expected: actual not in expected,
    "contains": _contains,
    "matches": lambda actual, expected: isinstance(actual, str) and regex_search(expected, actual),
}


def describe(predicate: dict) -> str:
    if "all" in predicate:
        return "all of (" + "; ".join(describe(item) for item in predicate["all"]) + ")"
    if "any" in predicate:
        return "any of (" + "; ".join(describe(item) for item in predicate["any"]) + ")"
    if "value" in predicate:
        return f"{predicate['field']} {predicate['operator']} {predicate['value']!r}"
    return f"{predicate['field']} {predicate['operator']}"


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
        problem = pattern_problem(value)
        if problem:
            return [FieldError(f"{path}.value", problem)]
    return []
