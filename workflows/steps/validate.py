from config.api.errors import FieldError
from entities.patterns import pattern_problem
from entities.schemas import data_problems, data_validator
from workflows.steps.base import StepType, regex_search
from workflows.steps.fields import field_path
from workflows.steps.registry import register
from workflows.steps.runtime import MISSING, EntityState, Flow, StepContext, StepError, get_path

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
            problem = pattern_problem(rule["pattern"]) if "pattern" in rule else None
            if problem:
                found.append(FieldError(f"{where}.pattern", problem))
            for low, high in (("minLength", "maxLength"), ("minimum", "maximum")):
                if low in rule and high in rule and rule[low] > rule[high]:
                    found.append(FieldError(f"{where}.{low}", f"Greater than {high}."))
        return found

    _last_validator: tuple | None = None  # (schema, its validator)

    def _schema_validator(self, schema):
        """One validator per schema object, not per entity: a chunk's entities share their
        type's schema. The pair is kept whole, so a new schema never gets an old validator."""
        last = self._last_validator
        if last is None or last[0] is not schema:
            last = self._last_validator = (schema, data_validator(schema))
        return last[1]

    def run(self, state: EntityState, config: dict, ctx: StepContext) -> Flow:
        broken = [
            message for rule in config["rules"] for message in rule_problems(rule, state.data)
        ]
        if config["useEntityTypeSchema"]:
            # What the commit would refuse: the type's schema and the size limit. The messages
            # name the field and what it must be, never its value: the item's error and the
            # job's log are read without `entities.view_entity`.
            validator = self._schema_validator(state.entity_type_schema)
            broken += [f"{p.field}: {p.message}" for p in data_problems(validator, state.data)]
        if broken:
            raise StepError("Validation failed: " + "; ".join(broken))
        return Flow(output={"valid": True})


PYTHON_TYPES = {
    "string": (str,),
    "number": (int, float),
    "integer": (int,),
    "boolean": (bool,),
    "object": (dict,),
    "array": (list,),
    "null": (type(None),),
}


def _has_type(value, json_type: str) -> bool:
    if isinstance(value, bool) and json_type in ("number", "integer"):
        return False
    if json_type == "integer" and isinstance(value, float):
        return value.is_integer()
    return isinstance(value, PYTHON_TYPES[json_type])


def rule_problems(rule: dict, data: dict) -> list[str]:
    """Every way `data` breaks `rule`, as `field: what is wrong`."""
    name = rule["field"]
    value = get_path(data, name, MISSING)
    if value is MISSING or value is None:
        return [f"{name}: is required"] if rule.get("required") else []
    found = []
    if "type" in rule and not _has_type(value, rule["type"]):
        found.append(f"{name}: must be of type {rule['type']}")
    if isinstance(value, str | list):
        if "minLength" in rule and len(value) < rule["minLength"]:
            found.append(f"{name}: must have at least {rule['minLength']} characters or items")
        if "maxLength" in rule and len(value) > rule["maxLength"]:
            found.append(f"{name}: must have at most {rule['maxLength']} characters or items")
    if "pattern" in rule and isinstance(value, str) and not regex_search(rule["pattern"], value):
        found.append(f"{name}: must match {rule['pattern']!r}")
    if "enum" in rule and value not in rule["enum"]:
        found.append(f"{name}: must be one of {rule['enum']!r}")
    numeric = isinstance(value, int | float) and not isinstance(value, bool)
    if numeric and "minimum" in rule and value < rule["minimum"]:
        found.append(f"{name}: must be at least {rule['minimum']}")
    if numeric and "maximum" in rule and value > rule["maximum"]:
        found.append(f"{name}: must be at most {rule['maximum']}")
    return found
