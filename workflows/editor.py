"""The step editor's schema: a step type's config schema (the registry's declaration, so a new
type gets its form for free) as django-jsonform's React form renders it. Descriptions become
help text, templates text areas naming their variables, a value of any JSON a choice of text,
number or true/false, an option that is itself a JSON Schema a list of the answer's fields (or
JSON text), options shown in responses only are left out. The API's own checks run in the page
(the admin's check view) and on save (services.steps_clean), their messages next to the step.

The page (config/api/static/workflows/step_editor.js) turns a config into the form's data and
back: an object of any shape is JSON text in the form, a simple JSON Schema its list of
fields."""

import json
import re
from typing import Any

from entities.models import Entity
from workflows.steps import registry
from workflows.steps.base import JSON_SCHEMA
from workflows.triggers import MAX_TRIGGERS

# The JSON types a field of an answer's schema may take in the fields form.
SCHEMA_FIELD_TYPES = ["string", "number", "integer", "boolean", "array of strings"]
SCHEMA_FIELDS = {
    "type": "object",
    "title": "Fields of the answer",
    "properties": {
        "fields": {
            "type": "array",
            "title": "Fields",
            "items": {
                "type": "object",
                "title": "Field",
                "properties": {
                    "name": {"type": "string", "required": True},
                    "type": {
                        "type": "string",
                        "enum": SCHEMA_FIELD_TYPES,
                        "default": "string",
                        "required": True,
                    },
                    "description": {"type": "string"},
                    "required": {"type": "boolean", "title": "Required"},
                },
            },
        }
    },
}
ANY_JSON = [
    {"type": "string", "title": "Text", "widget": "textarea"},
    {"type": "number", "title": "Number"},
    {"type": "boolean", "title": "True or false"},
]


def editor_schema(schema: dict) -> dict:
    """The config schema made ready for the editor."""
    return _adapt(_merge_discriminated(schema, schema.get("$defs", {})), required=False)


def _merge_discriminated(node: Any, defs: dict) -> Any:
    """A list of kinds told apart by a discriminator (a transform's `op`) as one object: the
    discriminator a select of every kind, each kind's fields optional and saying which kinds
    use them. The editor would otherwise pick a kind by the data's shape, not its `op`; the
    API's checks on save still require each kind's fields."""
    if isinstance(node, list):
        return [_merge_discriminated(item, defs) for item in node]
    if not isinstance(node, dict):
        return node
    if "x-discriminator" in node and "oneOf" in node:
        key = node["x-discriminator"]
        kinds, merged, users = [], {}, {}
        for choice in node["oneOf"]:
            choice = defs.get(choice.get("$ref", "").rsplit("/", 1)[-1], choice)
            names = choice["properties"][key]["enum"]
            kinds += names
            for name, spec in choice["properties"].items():
                if name != key:
                    merged.setdefault(name, spec)
                    users.setdefault(name, []).extend(names)
        descriptions = {}
        for choice in node["oneOf"]:
            choice = defs.get(choice.get("$ref", "").rsplit("/", 1)[-1], choice)
            descriptions.update(choice["properties"][key].get("x-enumDescriptions", {}))
        properties = {
            key: {"type": "string", "enum": kinds, "x-enumDescriptions": descriptions},
            **{
                name: {
                    **spec,
                    "description": f"For {', '.join(users[name])}: " + spec.get("description", ""),
                }
                for name, spec in merged.items()
            },
        }
        return {"type": "object", "required": [key], "properties": properties}
    return {key: _merge_discriminated(value, defs) for key, value in node.items()}


def _adapt(node: Any, required: bool) -> Any:
    if isinstance(node, list):
        return [_adapt(item, False) for item in node]
    if not isinstance(node, dict):
        return node
    out: dict = {}
    for key, value in node.items():
        if key == "properties":
            needed = set(node.get("required", []))
            out[key] = {
                name: {"title": _title(name), **_adapt(spec, name in needed)}
                for name, spec in value.items()
                if not spec.get("readOnly")
            }
        elif key in ("x-discriminator", "x-template", "x-enumDescriptions", JSON_SCHEMA):
            continue
        elif key == "oneOf":
            out[key] = [_adapt(_choice_titled(choice), False) for choice in value]
        elif key == "description" and isinstance(value, str):
            out[key] = plain_text(value)
        else:
            out[key] = _adapt(value, False)
    help_text = plain_text(node.get("description", ""))
    if "x-enumDescriptions" in node:
        help_text += " " + " ".join(
            f"{k}: {plain_text(v)}" for k, v in node["x-enumDescriptions"].items()
        )
    if node.get("x-template"):
        out["widget"] = "textarea"
        help_text += (
            " A template: {{ entity.<field> }}, {{ steps.<stepId>.<field> }}, {{ run.id }}."
        )
    if node.get(JSON_SCHEMA):  # a JSON Schema: its fields in a form, or as JSON text
        return {
            "oneOf": [
                SCHEMA_FIELDS,
                {"type": "string", "widget": "textarea", "title": "JSON Schema as JSON"},
            ],
            "help_text": (
                help_text + " Each field of the answer (or the whole schema as JSON)."
            ).strip(),
        }
    if _free_form(node):  # an object of any shape: edited as JSON text
        return {
            "type": "string",
            "widget": "textarea",
            "help_text": (help_text + " Written as JSON.").strip(),
            **({"required": True} if required else {}),
        }
    typed = any(key in node for key in ("type", "$ref", "oneOf", "anyOf", "enum"))
    if not typed and "properties" not in node:
        out["oneOf"] = ANY_JSON
    if help_text:
        out["help_text"] = help_text.strip()
    if required:
        out["required"] = True
    return out


def plain_text(text: str) -> str:
    """A description's Markdown code spans as quoted words: the form shows help as text, where
    `json` would show its backticks."""
    return re.sub(r"`([^`]+)`", r"“\1”", text)


# How a choice among kinds of value is named in its select, when its schema names no title
# (django-jsonform would show "Option 1", "Option 2").
CHOICE_TITLES = {
    "string": "Text",
    "array": "A list",
    "number": "Number",
    "integer": "Whole number",
    "boolean": "True or false",
    "object": "An object",
}


def _choice_titled(choice: Any) -> Any:
    """A choice of a `oneOf` with a title: its definition's name (`AllOf` -> "All of"), or
    its type's."""
    if not isinstance(choice, dict) or "title" in choice:
        return choice
    if "$ref" in choice:
        return {**choice, "title": _title(choice["$ref"].rsplit("/", 1)[-1])}
    if choice.get("type") in CHOICE_TITLES:
        return {**choice, "title": CHOICE_TITLES[choice["type"]]}
    return choice


# Words a label writes in capitals.
ACRONYMS = {"json": "JSON", "url": "URL", "id": "ID", "ai": "AI"}


def _title(name: str) -> str:
    """A label for an option's name: `outputField` -> "Output field", `jsonSchema` -> "JSON
    schema" (django-jsonform would show "Outputfield")."""
    words = re.findall(r"[A-Z]?[a-z0-9]+|[A-Z]+(?![a-z])", name) or [name]
    shown = [ACRONYMS.get(word.lower(), word.lower()) for word in words]
    return shown[0][:1].upper() + shown[0][1:] + "".join(" " + word for word in shown[1:])


def _free_form(spec: dict) -> bool:
    return spec.get("type") == "object" and not any(
        key in spec for key in ("properties", "oneOf", "anyOf", "$ref")
    )


def editor_types() -> dict:
    """What the page needs to edit each step type: the form's schema, the options edited as
    JSON text (objects of any shape), those holding a JSON Schema, and the type's example."""
    return {
        step_type.type: {
            "schema": editor_schema(step_type.config_schema),
            "jsonText": _names(
                step_type.config_schema,
                lambda spec: _free_form(spec) and not spec.get(JSON_SCHEMA),
            ),
            "jsonSchema": _names(step_type.config_schema, lambda spec: spec.get(JSON_SCHEMA)),
            "example": step_type.example,
        }
        for step_type in registry
    }


def _names(schema: dict, test) -> list[str]:
    return [name for name, spec in schema.get("properties", {}).items() if test(spec)]


class EditorInputError(ValueError):
    """A value typed as JSON text that is not JSON."""


def editor_clean(schema: dict, config: Any) -> Any:
    """What the editor posts, as the API would take it: optional fields left empty ("" or
    null) dropped, and in a list of kinds (a transform's operations) only the chosen kind's
    fields kept. The API's checks then run on the result."""
    if isinstance(config, dict):
        config = dict(config)
        for name, spec in schema.get("properties", {}).items():
            value = config.get(name)
            if _free_form(spec) and isinstance(value, str):
                if not value.strip():
                    del config[name]
                    continue
                try:
                    config[name] = json.loads(value)
                except ValueError:
                    raise EditorInputError(f"{name}: Is not valid JSON.") from None
    return _clean(schema, config, schema.get("$defs", {}))


def _resolved(spec: dict, defs: dict) -> dict:
    ref = spec.get("$ref", "")
    return defs.get(ref.rsplit("/", 1)[-1], spec) if ref else spec


def _clean(spec: dict, value: Any, defs: dict) -> Any:
    spec = _resolved(spec, defs)
    if isinstance(value, list) and spec.get("type") == "array":
        return [_clean(spec.get("items", {}), item, defs) for item in value]
    if not isinstance(value, dict):
        return value
    if "x-discriminator" in spec and "oneOf" in spec:
        key = spec["x-discriminator"]
        for choice in spec["oneOf"]:
            choice = _resolved(choice, defs)
            if value.get(key) in choice["properties"][key]["enum"]:
                kept = {k: v for k, v in value.items() if k in choice["properties"]}
                return _clean(choice, kept, defs)
        return value
    properties, required = spec.get("properties"), set(spec.get("required", []))
    if properties is None:
        return value
    return {
        name: _clean(properties.get(name, {}), item, defs)
        for name, item in value.items()
        if name in required or item not in ("", None)
    }


def triggers_editor_schema() -> dict:
    """The workflow's triggers as a list of groups, one per trigger: what fires it, and the
    options of that kind (shown for all, used by theirs; see `triggers_editor_clean`)."""
    return {
        "type": "array",
        "maxItems": MAX_TRIGGERS,
        "title": "Triggers",
        "items": {
            "type": "object",
            "title": "Trigger",
            "properties": {
                "on": {
                    "type": "string",
                    "enum": ["entity.created", "entity.updated", "schedule"],
                    "required": True,
                    "help_text": "entity.created: each new entity of the type; entity.updated: "
                    "a change to one of `fields`; schedule: at each `cron` time.",
                },
                "fields": {
                    "type": "array",
                    "items": {"type": "string"},
                    "help_text": "For entity.updated: the data fields whose change starts a run.",
                },
                "cron": {
                    "type": "string",
                    "help_text": "For schedule: five cron fields, e.g. 0 3 * * * (03:00 daily).",
                },
                "timezone": {
                    "type": "string",
                    "help_text": "For schedule: the cron's time zone, e.g. Europe/Paris "
                    "(default UTC).",
                },
                "filter": {
                    "type": "object",
                    "title": "Filter",
                    "help_text": "For schedule: which entities each tick runs on (default all).",
                    "properties": {
                        "status": {
                            "type": "string",
                            "enum": ["", *Entity.Status.values],
                            "help_text": "Only entities of this status (empty: any).",
                        }
                    },
                },
            },
        },
    }


def triggers_editor_clean(triggers: Any) -> Any:
    """What the triggers editor posts, as the API takes it: the options left empty dropped
    (the editor posts every kind's). The API's checks (`triggers_clean`) run on the result,
    so an option filled for another kind is refused with its message."""
    return groups_editor_clean(triggers)


def groups_editor_clean(groups: Any) -> Any:
    """A list of groups from a form that shows every kind's options (triggers, an
    experiment's scorers), as the API takes it: the options left empty dropped, in an
    option that is an object too. Anything else is left for the API's checks to refuse."""
    if not isinstance(groups, list):
        return groups
    cleaned = []
    for group in groups:
        if not isinstance(group, dict):
            cleaned.append(group)
            continue
        kept = {}
        for key, value in group.items():
            if isinstance(value, dict):
                value = {k: v for k, v in value.items() if v not in ("", None)}
            if value in ("", None, [], {}):
                continue
            kept[key] = value
        cleaned.append(kept)
    return cleaned
