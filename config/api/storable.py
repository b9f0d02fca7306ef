"""Values the database cannot store. JSON can carry a NUL character (`"\\u0000"`) or an
unpaired surrogate (`"\\ud800"`), and Python holds both, but PostgreSQL's text and jsonb refuse
them and fail the whole statement; so does jsonb a number that is not finite (Python decodes
`1e400` as infinity, and its decoder's defaults take `NaN` and `Infinity`). They are refused
where they come in (a request body, data a step made), naming where they are, instead of
failing a write later."""

import math

from config.api.errors import FieldError, json_path

NOT_FINITE = (
    "Is not a finite number (NaN, Infinity, or a number too large for a double, such as "
    "1e400), which cannot be stored."
)


def unstorable(value, prefix: str = "") -> FieldError | None:
    """The first string in `value` (a key or a value, at any depth) or number the database
    cannot store, located under `prefix`; None when there is none."""
    return _find(value, [prefix] if prefix else [])


def _find(value, path: list) -> FieldError | None:
    if isinstance(value, str):
        return _problem(value, path)
    if isinstance(value, float) and not math.isfinite(value):
        return FieldError(json_path(path) or "body", NOT_FINITE, "unstorable")
    if isinstance(value, dict):
        for key, item in value.items():
            found = _problem(key, [*path, key]) or _find(item, [*path, key])
            if found:
                return found
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found = _find(item, [*path, index])
            if found:
                return found
    return None


def _problem(text: str, path: list) -> FieldError | None:
    if "\x00" in text:
        reason = "Contains a NUL character (\\u0000), which cannot be stored."
    elif not text.isascii() and not _encodable(text):
        reason = "Contains an unpaired surrogate (\\ud800-\\udfff), which cannot be stored."
    else:
        return None
    return FieldError(json_path(path) or "body", reason, "unstorable")


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
