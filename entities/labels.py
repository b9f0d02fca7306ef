"""An entity's label for a person: the first of its data's naming fields that holds text.

The contract fixes an entity type's fields (`{id, name, description, schema, ...}`), so the
label is a rule rather than a per-type setting: `title`, then `name`, `label`, `subject`,
`headline`, `sku`; an entity with none of them is named by its id alone."""

LABEL_FIELDS = ("title", "name", "label", "subject", "headline", "sku")


def entity_label(data) -> str:
    if not isinstance(data, dict):
        return ""
    for name in LABEL_FIELDS:
        value = data.get(name)
        if isinstance(value, str) and value.strip():
            return value
    return ""
