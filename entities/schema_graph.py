"""What validating against a user's JSON Schema costs, judged before the schema is accepted.

A subschema applies others to the same part of the data (`$ref`, `allOf`, `if`...) and to its
parts (`properties`, `items`...). Followed without limit, these may never end (`{"$ref": "#"}`)
or fan out: twenty `$defs`, each an `allOf` of two references to the next, make one entity
cost 2^20 checks (a minute of a worker). `schema_cost` finds both before a schema is stored,
without touching any data.
"""

from collections.abc import Iterator
from dataclasses import dataclass, field
from urllib.parse import unquote

from config.api.parsers import MAX_JSON_DEPTH
from config.digits import whole_number

REFERENCE_KEYWORDS = ("$ref", "$dynamicRef")

# Keywords whose subschemas apply to the same part of the data.
_IN_PLACE_LISTS = ("allOf", "anyOf", "oneOf")
_IN_PLACE_ONE = ("not", "if", "then", "else")
# jsonschema evaluates a schema's in-place subschemas again to find what they evaluated.
_UNEVALUATED = ("unevaluatedProperties", "unevaluatedItems")
_REVISITS = 3

# Selectors of a part of the data, beside property names (str) and array indexes (int).
_OTHER_KEY = ("other", "key")
_OTHER_INDEX = ("other", "index")


@dataclass(frozen=True)
class SchemaCost:
    """`loops`: references lead back to a schema before any part of the data is entered.
    `depth`: the longest chain of in-place subschemas. `checks`: the most subschema checks
    one part of the data may take (capped just over the `limit` it was measured against).
    `measured`: False when the schema is too large for the measure to finish."""

    loops: bool
    depth: int = 0
    checks: int = 0
    measured: bool = True


def every_schema(schema) -> Iterator[dict]:
    if isinstance(schema, dict):
        yield schema
        children = schema.values()
    elif isinstance(schema, list):
        children = schema
    else:
        return
    for child in children:
        yield from every_schema(child)


@dataclass
class _Resources:
    """Each subschema's resource (its nearest enclosing schema with an `$id`, else the
    document), against which its `#...` references resolve; the resources by `$id`; each
    resource's anchors; and every schema of each `$dynamicAnchor`."""

    resource_of: dict[int, dict] = field(default_factory=dict)
    by_id: dict[str, dict] = field(default_factory=dict)
    anchors: dict[tuple[int, str], dict] = field(default_factory=dict)
    dynamic: dict[str, list[dict]] = field(default_factory=dict)

    def walk(self, node, resource: dict) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("$id"), str):
                resource = node
                self.by_id[node["$id"].rstrip("#")] = node
            self.resource_of[id(node)] = resource
            for keyword in ("$anchor", "$dynamicAnchor"):  # a `$ref` may name either
                if isinstance(node.get(keyword), str):
                    self.anchors.setdefault((id(resource), node[keyword]), node)
            if isinstance(node.get("$dynamicAnchor"), str):
                self.dynamic.setdefault(node["$dynamicAnchor"], []).append(node)
            children = node.values()
        elif isinstance(node, list):
            children = node
        else:
            return
        for child in children:
            self.walk(child, resource)


def _pointer(resource, fragment: str):
    node = resource
    for part in fragment.split("/")[1:]:
        part = part.replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and (index := whole_number(part)) is not None:
            if index >= len(node):
                return None
            node = node[index]
        else:
            return None
    return node


class _Graph:
    """The document's subschemas and, for each, those it applies in place."""

    def __init__(self, root: dict):
        self.root = root
        self.resources = _Resources()
        self.resources.walk(root, root)
        self._in_place: dict[int, list] = {}

    def _targets(self, schema: dict, keyword: str) -> list:
        base, _, fragment = schema[keyword].partition("#")
        resources = self.resources
        resource = resources.by_id.get(base) if base else resources.resource_of[id(schema)]
        if resource is None:
            return []
        fragment = unquote(fragment)
        if fragment.startswith("/") or not fragment:
            return [_pointer(resource, fragment)]
        if keyword == "$dynamicRef" and fragment in resources.dynamic:
            return resources.dynamic[fragment]  # resolved at run time: any of that anchor
        return [resources.anchors.get((id(resource), fragment))]

    def in_place(self, schema: dict) -> list:
        """The subschemas (objects and booleans) `schema` applies to the data it is given."""
        if id(schema) not in self._in_place:
            found = [schema[keyword] for keyword in _IN_PLACE_ONE if keyword in schema]
            for keyword in _IN_PLACE_LISTS:
                if isinstance(schema.get(keyword), list):
                    found += schema[keyword]
            if isinstance(schema.get("dependentSchemas"), dict):
                found += schema["dependentSchemas"].values()
            for keyword in REFERENCE_KEYWORDS:
                if isinstance(schema.get(keyword), str):
                    found += self._targets(schema, keyword)
            self._in_place[id(schema)] = [c for c in found if isinstance(c, dict | bool)]
        return self._in_place[id(schema)]

    def order(self) -> list[dict] | None:
        """Every subschema, each after all it applies in place; None if they loop. Iterative:
        a chain of thousands of references would exhaust Python's stack."""
        state: dict[int, bool] = {}  # False while on the path, True once done
        order = []
        for start in every_schema(self.root):
            if id(start) in state:
                continue
            state[id(start)] = False
            path = [(start, iter(self.in_place(start)))]
            while path:
                schema, children = path[-1]
                for child in children:
                    if not isinstance(child, dict) or state.get(id(child)):
                        continue
                    if id(child) in state:
                        return None
                    state[id(child)] = False
                    path.append((child, iter(self.in_place(child))))
                    break
                else:
                    path.pop()
                    state[id(schema)] = True
                    order.append(schema)
        return order


class Pointers:
    """Whether a reference's JSON pointer (`#/...`, or `<$id>#/...`) points at nothing in its
    resource, read as the cost's measure reads it. A list's index must be ASCII digits within
    the list: jsonschema reads a part with `int()`, which refuses `²` and 5,000 digits (a 500)
    and takes `-1`, `+1` or `1_0` as an index; refused when the schema is given, they never
    reach it (nor can a target the measure does not see be checked against data)."""

    def __init__(self, root: dict):
        self._graph = _Graph(root)

    def to_nowhere(self, schema: dict, keyword: str) -> bool:
        reference = schema.get(keyword)
        pointer = isinstance(reference, str) and unquote(reference.partition("#")[2])
        if not pointer or pointer[0] != "/":
            return False
        return self._graph._targets(schema, keyword) == [None]


def _selector_value(counts: dict, selector) -> int:
    """A count for one property or index: its own, else that of any other key or item."""
    if selector in counts:
        return counts[selector]
    return counts.get(_OTHER_INDEX if isinstance(selector, int) else _OTHER_KEY, 0)


def _parts(schema: dict, checks) -> dict:
    """The checks `schema` makes on one property or item of the data, by selector, from
    `checks(subschema)` each subschema it applies to a part makes there."""
    any_key = [schema[k] for k in ("additionalProperties", "unevaluatedProperties", "propertyNames")
               if k in schema]  # fmt: skip
    if isinstance(schema.get("patternProperties"), dict):
        any_key += schema["patternProperties"].values()
    key_base = sum(map(checks, any_key))
    counts = {_OTHER_KEY: key_base} if key_base else {}
    if isinstance(schema.get("properties"), dict):
        for name, subschema in schema["properties"].items():
            counts[name] = key_base + checks(subschema)
    item_base = sum(checks(schema[k]) for k in ("contains", "unevaluatedItems") if k in schema)
    rest = item_base + (checks(schema["items"]) if "items" in schema else 0)
    if rest:
        counts[_OTHER_INDEX] = rest
    if isinstance(schema.get("prefixItems"), list):
        for index, subschema in enumerate(schema["prefixItems"]):
            counts[index] = item_base + checks(subschema)
    return counts


_PART_KEYWORDS = frozenset(
    {
        *("properties", "patternProperties", "additionalProperties", "propertyNames"),
        *("unevaluatedProperties", "items", "prefixItems", "contains", "unevaluatedItems"),
    }
)


def _add(one: dict, two: dict) -> dict:
    return {
        key: _selector_value(one, key) + _selector_value(two, key)
        for key in one.keys() | two.keys()
    }


def schema_cost(root: dict, *, limit: int, work_limit: int = 2_000_000) -> SchemaCost:
    """Whether `root`'s references loop, and the most checks one part of the data may take
    (an upper bound: every branch of `anyOf`/`if` taken, every pattern matching), measured
    part by part down to MAX_JSON_DEPTH: a node's checks, its children's (by property or
    index, summed over every schema that reaches them), and so on."""
    graph = _Graph(root)
    order = graph.order()
    if order is None:
        return SchemaCost(loops=True)
    cap = limit + 1  # past the limit the figure is refused: bigger numbers need not be kept
    depth: dict[int, int] = {}
    level: dict[int, int] = {}  # the checks each schema makes on the part it is given
    for schema in order:
        children = graph.in_place(schema)
        weight = _REVISITS if any(k in schema for k in _UNEVALUATED) else 1
        depth[id(schema)] = 1 + max(
            (depth[id(c)] for c in children if isinstance(c, dict)), default=0
        )
        own = sum(level[id(c)] if isinstance(c, dict) else 1 for c in children)
        level[id(schema)] = min(cap, 1 + weight * own)
    # Most subschemas apply nothing to the parts of the data, nor anything in place.
    active = [s for s in order if graph.in_place(s) or _PART_KEYWORDS.intersection(s)]
    most, work = level[id(root)], 0
    for below in range(1, MAX_JSON_DEPTH + 1):
        if most > limit:
            break

        def checks(subschema, level=level, first=below == 1):
            return level[id(subschema)] if isinstance(subschema, dict) else int(first)

        by_part: dict[int, tuple[dict, int]] = dict.fromkeys(map(id, order), ({}, 0))
        for schema in active:
            counts = _parts(schema, checks)
            weight = _REVISITS if any(k in schema for k in _UNEVALUATED) else 1
            reached = [
                by_part[id(child)]
                for child in graph.in_place(schema)
                if isinstance(child, dict) and by_part[id(child)][1]
            ]
            if not counts and weight == 1 and len(reached) == 1:
                by_part[id(schema)] = reached[0]  # a bare reference: shared, not copied
                continue
            for child_counts, _ in reached:
                counts = _add(counts, child_counts)
            work += len(counts)
            if work > work_limit:
                return SchemaCost(loops=False, depth=max(depth.values()), measured=False)
            counts = {key: min(cap, weight * value) for key, value in counts.items() if value}
            by_part[id(schema)] = (counts, max(counts.values(), default=0))
        next_level = {key: largest for key, (_, largest) in by_part.items()}
        if next_level == level or not any(next_level.values()):
            break  # each level follows from the one above: nothing new comes after
        level = next_level
        most = max(most, level[id(root)])
    return SchemaCost(loops=False, depth=max(depth.values()), checks=min(most, cap))
