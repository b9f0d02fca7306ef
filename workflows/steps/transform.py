from workflows.steps.base import TEMPLATE, StepType
from workflows.steps.fields import field_path
from workflows.steps.registry import register

TEXT_OPS = ["lowercase", "uppercase", "trim", "slugify"]


def _operation(ops: list[str], required: list[str], properties: dict, description: str) -> dict:
    return {
        "type": "object",
        "additionalProperties": False,
        "required": ["op", *required],
        "description": description,
        "properties": {"op": {"type": "string", "enum": ops}, **properties},
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
