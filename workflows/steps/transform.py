from django.conf import settings
from django.utils.text import slugify

from entities.json_values import json_equal
from entities.schemas import data_encode
from workflows.steps.base import TEMPLATE, StepType
from workflows.steps.fields import field_path
from workflows.steps.registry import register
from workflows.steps.runtime import (
    MISSING,
    EntityState,
    Flow,
    StepContext,
    StepError,
    get_path,
    json_copy,
    remove_path,
    set_path,
)

TEXT_OPS = ["lowercase", "uppercase", "trim", "slugify"]
# What each operation does, shown in the admin's step type reference and editor.
OP_DESCRIPTIONS = {
    "set": "Set `field` to `value` (a string value is a template).",
    "copy": "Copy the value of `from` to `to`, keeping `from`.",
    "rename": "Move the value of `from` to `to`, removing `from`.",
    "remove": "Remove `field` (nothing happens when it is missing).",
    "lowercase": "Lowercase the string in `field`.",
    "uppercase": "Uppercase the string in `field`.",
    "trim": "Remove the whitespace around the string in `field`.",
    "slugify": "Make the string in `field` a slug: lowercase ASCII words joined by hyphens.",
}


def _operation(ops: list[str], required: list[str], properties: dict, description: str) -> dict:
    op = {
        "type": "string",
        "enum": ops,
        "description": "The operation.",
        "x-enumDescriptions": {name: OP_DESCRIPTIONS[name] for name in ops},
    }
    return {
        "type": "object",
        "additionalProperties": False,
        "required": ["op", *required],
        "description": description,
        "properties": {"op": op, **properties},
    }


@register
class Transform(StepType):
    type = "transform"
    name = "Transform"
    description = "Changes the entity's working copy with a list of operations, in order."
    config_schema = {
        "type": "object",
        "additionalProperties": False,
        "required": ["operations"],
        "properties": {
            "operations": {
                "type": "array",
                "minItems": 1,
                "maxItems": 200,
                "description": "Operations applied in order.",
                "items": {
                    "x-discriminator": "op",
                    "oneOf": [
                        {"$ref": "#/$defs/SetOperation"},
                        {"$ref": "#/$defs/CopyOperation"},
                        {"$ref": "#/$defs/RemoveOperation"},
                        {"$ref": "#/$defs/TextOperation"},
                    ],
                },
            },
        },
        "$defs": {
            "SetOperation": _operation(
                ["set"],
                ["field", "value"],
                {
                    "field": field_path("The field to set."),
                    "value": {
                        "description": "The value: a string is a template; any other JSON "
                        "value is set as is.",
                        TEMPLATE: True,
                    },
                },
                "Set a field to a value.",
            ),
            "CopyOperation": _operation(
                ["copy", "rename"],
                ["from", "to"],
                {"from": field_path("The source field."), "to": field_path("The target field.")},
                "Copy a field, or rename it (copy, then remove the source).",
            ),
            "RemoveOperation": _operation(
                ["remove"],
                ["field"],
                {"field": field_path("The field to remove.")},
                "Remove a field.",
            ),
            "TextOperation": _operation(
                TEXT_OPS,
                ["field"],
                {"field": field_path("The string field to change.")},
                "Lowercase, uppercase, trim or slugify a string field.",
            ),
        },
    }
    example = {
        "operations": [
            {"op": "trim", "field": "title"},
            {"op": "set", "field": "seo.title", "value": "{{ entity.title }} | {{ entity.brand }}"},
            {"op": "slugify", "field": "seo.title"},
            {"op": "copy", "from": "price", "to": "listPrice"},
            {"op": "remove", "field": "internalNotes"},
        ]
    }

    def run(self, state: EntityState, config: dict, ctx: StepContext) -> Flow:
        changed = []
        added = _Added(settings.ENTITY_MAX_DATA_BYTES)
        for index, operation in enumerate(config["operations"]):
            op = operation["op"]
            if op == "set":
                value = operation["value"]
                if isinstance(value, str):
                    value = self.render(value, state, ctx)  # a new string, of bounded length
                else:
                    value = json_copy(value)  # the config's own list or object
                    added.add(value, f"operations[{index}] ({op})")
                before = get_path(state.data, operation["field"], MISSING)
                set_path(state.data, operation["field"], value)
                if before is MISSING or not json_equal(before, value):
                    changed.append(operation["field"])
            elif op in ("copy", "rename"):
                value = get_path(state.data, operation["from"], MISSING)
                if value is MISSING:
                    raise StepError(
                        f"operations[{index}] ({op}): the field {operation['from']!r} "
                        "does not exist."
                    )
                if op == "copy":  # a rename moves the value: the working copy grows by nothing
                    added.add(value, f"operations[{index}] ({op})")
                set_path(state.data, operation["to"], json_copy(value))
                if op == "rename":
                    remove_path(state.data, operation["from"])
                    changed.append(operation["from"])
                changed.append(operation["to"])
            elif op == "remove":
                if remove_path(state.data, operation["field"]) is not MISSING:
                    changed.append(operation["field"])
            else:
                value = get_path(state.data, operation["field"])
                if value is None:
                    continue  # nothing to change: a missing field stays missing
                if not isinstance(value, str):
                    raise StepError(
                        f"operations[{index}] ({op}): the field {operation['field']!r} is a "
                        f"{type(value).__name__}, not a string."
                    )
                result = TEXT_FUNCTIONS[op](value)
                if result != value:  # two strings: `==` is exact
                    set_path(state.data, operation["field"], result)
                    changed.append(operation["field"])
        # Each field whose value the operations changed, once, in the order first changed.
        return Flow(output={"changed": list(dict.fromkeys(changed))})


class _Added:
    """What one step's copies (and JSON values set) add to the working copy, in bytes of
    JSON, up to `limit` (as much as an entity may hold): copying a value into itself (`a` to
    `a.b`) doubles it, so thirty such copies would build a billion nodes before the commit's
    size check. (A template's rendering is bounded by its own limit, and replaces.)"""

    def __init__(self, limit: int):
        self.limit = limit
        self.total = 0

    def add(self, value, where: str) -> None:
        # A string's length is its size; any other value is measured as the entity's size
        # limit measures it (its compact JSON, in C), and only while the step's total is
        # within the limit (each copy is checked before it is made).
        self.total += len(value) if isinstance(value, str) else len(data_encode(value))
        if self.total > self.limit:
            raise StepError(
                f"{where}: the step's operations would add more than {self.limit} bytes to "
                "the entity (ENTITY_MAX_DATA_BYTES)."
            )


TEXT_FUNCTIONS = {
    "lowercase": str.lower,
    "uppercase": str.upper,
    "trim": str.strip,
    "slugify": slugify,
}
