"""Schema pieces shared by several step types."""

FIELD_PATTERN = r"^[A-Za-z_][A-Za-z0-9_-]*(\.[A-Za-z_][A-Za-z0-9_-]*)*$"


def field_path(description: str) -> dict:
    """A property naming a field of the entity's data; dotted paths reach nested objects."""
    return {
        "type": "string",
        "minLength": 1,
        "maxLength": 200,
        "pattern": FIELD_PATTERN,
        "description": description + " Dotted paths (`seo.title`) reach nested objects.",
    }
