"""Comparing JSON values as JSON: `true`, `1` and `1.0` are three different values.

Python's `==` says `True == 1 == 1.0`, and so of dicts and lists holding them, at any depth.
An entity whose `flag` went from `true` to `1` has changed (the API returns the new value),
so its revision, its outbox row and a run's merge must all see the change: they compare
with `json_equal`, never with `==`.
"""

# Where `==` is exact already: equal values of these types are the same JSON value.
_SCALARS = frozenset({str, int, float, bool, type(None)})


def json_equal(a, b) -> bool:
    """Whether `a` and `b` are the same JSON value: equal, with the same type at every depth
    (a bool is not a number, an int is not a float).

    This runs for every key of every entity a run commits, so the common case costs what
    `==` does: values of one type that `==` finds unequal are so; equal scalars are the
    same; only equal dicts and lists are walked, to check the types inside them."""
    kind = type(a)
    if kind is not type(b) or a != b:
        return False
    return kind in _SCALARS or _types_agree(a, b)


def _types_agree(a, b) -> bool:
    """For `a == b` of one type: whether every value inside them has the same type on both
    sides (their equality then is exact). Two plain loops: a generator of pairs shared by
    both, or the types listed with `map`, measured twice as slow on entity-like dicts."""
    if type(a) is dict:
        for key, x in a.items():
            y = b[key]
            kind = type(x)
            if kind is not type(y):
                return False
            if (kind is dict or kind is list) and not _types_agree(x, y):
                return False
    elif type(a) is list:
        for x, y in zip(a, b, strict=True):
            kind = type(x)
            if kind is not type(y):
                return False
            if (kind is dict or kind is list) and not _types_agree(x, y):
                return False
    return True


def as_jsonb(value):
    """`value` as PostgreSQL's jsonb gives it back: a float Python writes with an exponent
    and no fraction (`1e+16`) is stored as the numeric 10000000000000000 and read as an int;
    any other number keeps its type (`1.0` stays `1.0`). Compare two values of which one was
    stored and the other was not through this (both sides: SQLite keeps the text as sent)."""
    kind = type(value)
    if kind is float:
        return int(value) if value.is_integer() and "e" in repr(value) else value
    if kind is dict:
        return {key: as_jsonb(item) for key, item in value.items()}
    if kind is list:
        return [as_jsonb(item) for item in value]
    return value
