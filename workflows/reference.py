"""The step type reference as staff read it: every option of a type's config schema, nested
ones included (each transform operation, each condition operator, each validate rule field,
each notify channel), descriptions rendered from their Markdown. The schemas in
workflows/steps/*.py are the one source; this only walks them."""

import json
from dataclasses import dataclass, field

from django.utils.safestring import SafeString, mark_safe
from markdown_it import MarkdownIt

# CommonMark without raw HTML: backticks become <code>, *stars* emphasis, the rest escaped.
_markdown = MarkdownIt("commonmark", {"html": False})


def markdown_inline(text: str) -> SafeString:
    """One paragraph of Markdown as HTML, safe to show (raw HTML in it is escaped)."""
    return mark_safe(_markdown.renderInline(text or ""))  # noqa: S308  (escaped by markdown-it)


@dataclass
class Option:
    """One row of the reference: a config field, or a kind of item in a list."""

    path: str
    depth: int
    kind: str
    description: SafeString
    required: bool = False
    default: str = ""
    template: bool = False
    values: list[tuple[str, SafeString]] = field(default_factory=list)


def options(schema: dict) -> list[Option]:
    """Every option of a config schema, parents before their children."""
    rows: list[Option] = []
    _object(schema, schema.get("$defs", {}), "", 0, rows, seen=frozenset())
    return rows


def _resolve(spec: dict, defs: dict) -> tuple[dict, str | None]:
    ref = spec.get("$ref", "")
    if ref.startswith("#/$defs/"):
        name = ref.removeprefix("#/$defs/")
        return {**defs[name], **{k: v for k, v in spec.items() if k != "$ref"}}, name
    return spec, None


# What a shared definition is called where a field refers to it.
REF_NAMES = {"Predicate": "condition"}


def _kind(spec: dict) -> str:
    if "$ref" in spec:
        name = spec["$ref"].rsplit("/", 1)[-1]
        return REF_NAMES.get(name, name.lower())
    if "enum" in spec:
        return "one of " + ", ".join(json.dumps(value) for value in spec["enum"])
    if "oneOf" in spec:
        return " or ".join(_kind(choice) for choice in spec["oneOf"])
    kind = spec.get("type")
    if kind == "array":
        items = spec.get("items", {})
        if "oneOf" in items:
            return "list of objects (their kinds below)"
        return f"list of {_kind(items)}s"
    return kind or "any JSON value"


def _object(schema, defs, prefix, depth, rows, seen):
    required = set(schema.get("required", []))
    for name, raw in schema.get("properties", {}).items():
        if raw.get("readOnly"):
            continue  # shown in responses only
        spec, ref = _resolve(raw, defs)
        path = f"{prefix}{name}"
        row = Option(
            path=path,
            depth=depth,
            kind=_kind(raw),
            description=markdown_inline(spec.get("description", "")),
            required=name in required,
            default=json.dumps(spec["default"]) if "default" in spec else "",
            template=bool(spec.get("x-template")),
            values=[
                (value, markdown_inline(text))
                for value, text in spec.get("x-enumDescriptions", {}).items()
            ],
        )
        rows.append(row)
        _children(spec, ref, defs, path, depth + 1, rows, seen)


def _children(spec, ref, defs, path, depth, rows, seen):
    """The options inside a field: its object's fields, its list items', its choices'."""
    if ref in seen:
        return  # a recursive definition (a condition inside `all`) is explained once
    seen = seen | {ref} if ref else seen
    if spec.get("type") == "object" and "properties" in spec:
        _object(spec, defs, f"{path}.", depth, rows, seen)
    elif spec.get("type") == "array":
        items, item_ref = _resolve(spec.get("items", {}), defs)
        _children(items, item_ref, defs, f"{path}[]", depth, rows, seen)
    discriminator = spec.get("x-discriminator")
    for choice in spec.get("oneOf", []):
        choice, choice_ref = _resolve(choice, defs)
        if choice.get("type") != "object":
            continue
        if choice_ref in seen:
            continue
        label = _choice_label(choice, discriminator)
        rows.append(
            Option(
                path=f"{path} {label}",
                depth=depth,
                kind="object",
                description=markdown_inline(choice.get("description", "")),
            )
        )
        _children(choice, choice_ref, defs, path, depth + 1, rows, seen)


def _choice_label(choice: dict, discriminator: str | None) -> str:
    """How a kind of item is told apart: by its discriminator (`op: copy | rename`), or by
    the keys it requires."""
    if discriminator:
        values = choice.get("properties", {}).get(discriminator, {}).get("enum", [])
        return f"with {discriminator}: " + " | ".join(str(value) for value in values)
    keys = choice.get("required", [])
    return "with " + ", ".join(keys) if keys else ""
