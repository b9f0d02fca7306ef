"""The checks of a user's JSON Schema made by walking its subschemas, before it is stored:
references that leave it or point at nothing, patterns RE2 cannot run. (What checking data
against it costs is `schema_graph`'s; the validators are `schemas`'.)
"""

from referencing import Registry
from referencing.exceptions import Unresolvable
from referencing.jsonschema import DRAFT202012

from config.api.errors import FieldError, json_path
from entities.patterns import pattern_problem
from entities.schema_graph import REFERENCE_KEYWORDS, Pointers

NO_RETRIEVAL = Registry()  # retrieving any URI not in the document fails: nothing is fetched


def _declared_ids(schema) -> set[str]:
    found = set()
    if isinstance(schema, dict):
        if isinstance(schema.get("$id"), str):
            found.add(schema["$id"].rstrip("#"))
        for value in schema.values():
            found |= _declared_ids(value)
    elif isinstance(schema, list):
        for value in schema:
            found |= _declared_ids(value)
    return found


# Keywords whose values are data, not subschemas (a `$ref` or `pattern` key there is a
# value), and those whose values are maps of names to subschemas (the names are no keywords).
_DATA_KEYWORDS = frozenset({"const", "enum", "default", "examples"})
_SCHEMA_MAPS = frozenset(
    {"properties", "patternProperties", "$defs", "definitions", "dependentSchemas"}
)


def _walk(schema, path: list, ids: set[str], *, names: bool = False) -> list[FieldError]:
    """Every reference that leaves the document and every pattern RE2 cannot run, in the
    subschemas (`names`: `schema` is a map of names to subschemas, such as `properties`)."""
    found = []
    if isinstance(schema, dict) and not names:
        for keyword in REFERENCE_KEYWORDS:
            reference = schema.get(keyword)
            if isinstance(reference, str) and not (
                reference.startswith("#") or reference.split("#", 1)[0] in ids
            ):
                message = (
                    "Only references inside this schema are allowed (`#/$defs/...` or an "
                    "`$id` declared in it); nothing is fetched."
                )
                found.append(FieldError(json_path([*path, keyword]), message))
        if isinstance(schema.get("pattern"), str):
            problem = pattern_problem(schema["pattern"])
            if problem:
                found.append(FieldError(json_path([*path, "pattern"]), problem))
        if isinstance(schema.get("patternProperties"), dict):
            for pattern in schema["patternProperties"]:
                problem = pattern_problem(pattern)
                if problem:
                    where = json_path([*path, "patternProperties", pattern])
                    found.append(FieldError(where, problem))
        items = [(key, value) for key, value in schema.items() if key not in _DATA_KEYWORDS]
        for key, value in items:
            found += _walk(value, [*path, key], ids, names=key in _SCHEMA_MAPS)
        return found
    if isinstance(schema, dict):
        items = schema.items()
    elif isinstance(schema, list):
        items = enumerate(schema)
    else:
        return []
    for key, value in items:
        found += _walk(value, [*path, key], ids)
    return found


def _paths(node, path: list, found: dict[int, list]) -> dict[int, list]:
    found[id(node)] = path
    if isinstance(node, dict):
        for key, value in node.items():
            _paths(value, [*path, key], found)
    elif isinstance(node, list):
        for index, value in enumerate(node):
            _paths(value, [*path, index], found)
    return found


_POINTS_NOWHERE = "Points at nothing in this schema"


def unresolvable_references(schema: dict, field: str) -> list[FieldError]:
    """Every `$ref` and `$dynamicRef` that points at nothing in the schema, in the order they
    are written: a JSON pointer as the cost's measure reads it (`schema_graph.Pointers`, which
    also refuses an index not in ASCII digits), any other reference as jsonschema resolves it
    at validation (each subschema against its nearest `$id`). Only the keywords that hold
    subschemas are walked: a `$ref` key inside a `const`, `enum`, `default` or `examples` is
    data. Stored, such a schema would answer every write of its data with a 400."""
    paths = _paths(schema, [field], {})
    order = {node: index for index, node in enumerate(paths)}
    pointers = Pointers(schema)
    root = DRAFT202012.create_resource(schema)
    found = []
    left = [(root, NO_RETRIEVAL.resolver_with_root(root))]
    while left:  # iterative: a schema may nest as deep as JSON may
        resource, resolver = left.pop()
        contents = resource.contents
        for keyword in REFERENCE_KEYWORDS if isinstance(contents, dict) else ():
            reference = contents.get(keyword)
            if not isinstance(reference, str):
                continue
            if pointers.to_nowhere(contents, keyword):
                message = (
                    f"{_POINTS_NOWHERE} (a list's index is written in digits, from 0 to its "
                    "length - 1)."
                )
            else:
                try:
                    resolver.lookup(reference)
                    continue
                except (Unresolvable, ValueError):
                    message = f"{_POINTS_NOWHERE}."
            where = json_path([*paths[id(contents)], keyword])
            found.append((order[id(contents)], keyword, FieldError(where, message)))
        left += [(sub, resolver.in_subresource(sub)) for sub in resource.subresources()]
    return [error for *_, error in sorted(found, key=lambda entry: entry[:2])]


def walk_problems(schema: dict, field: str) -> list[FieldError]:
    """Every reference that leaves the schema (only those to `#...` or an `$id` declared in it
    are taken; nothing is fetched) and every pattern RE2 cannot run, in its subschemas."""
    return _walk(schema, [field], _declared_ids(schema))
