"""drf-spectacular hook: each step type's config schema becomes typed OpenAPI components, and a
step is a union discriminated by `type`, so generated SDKs get a typed config per step type."""

import copy

from workflows.steps import registry


def _camel(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("_"))


def _hoist(schema: dict, prefix: str, components: dict) -> dict:
    """OpenAPI 3.0 has no `$defs`: move them to components and point the `$ref`s there."""
    schema = copy.deepcopy(schema)
    definitions = schema.pop("$defs", {})

    def rewrite(node):
        if isinstance(node, dict):
            ref = node.get("$ref", "")
            if ref.startswith("#/$defs/"):
                node["$ref"] = f"#/components/schemas/{prefix}{ref.rsplit('/', 1)[1]}"
            for value in node.values():
                rewrite(value)
        elif isinstance(node, list):
            for value in node:
                rewrite(value)

    rewrite(schema)
    for name, definition in definitions.items():
        rewrite(definition)
        components[f"{prefix}{name}"] = definition
    return schema


def _step(step_type, prefix: str, *, id_required: bool) -> dict:
    return {
        "type": "object",
        "description": step_type.description,
        "required": ["id", "type", "config"] if id_required else ["type", "config"],
        "properties": {
            "id": {
                "type": "string",
                "description": "The step's id within the workflow (generated when not given); "
                "templates read its output as `steps.<id>`.",
            },
            "type": {"type": "string", "enum": [step_type.type]},
            "config": {"$ref": f"#/components/schemas/{prefix}Config"},
        },
    }


def add_step_type_components(result, generator, request, public):
    schemas = result.setdefault("components", {}).setdefault("schemas", {})
    for union, id_required in (("Step", True), ("StepRequest", False)):
        mapping = {}
        for step_type in registry:
            prefix = _camel(step_type.type)
            schemas[f"{prefix}Config"] = _hoist(step_type.config_schema, prefix, schemas)
            schemas[f"{prefix}{union}"] = _step(step_type, prefix, id_required=id_required)
            mapping[step_type.type] = f"#/components/schemas/{prefix}{union}"
        schemas[union] = {
            "oneOf": [{"$ref": ref} for ref in mapping.values()],
            "discriminator": {"propertyName": "type", "mapping": mapping},
        }
    return result
