import codecs
import math
import re
from itertools import accumulate

from rest_framework import parsers
from rest_framework.exceptions import ParseError
from rest_framework.utils import json

from config.api.errors import InvalidInput
from config.api.storable import unstorable

# The deepest nesting of arrays and objects a request body may have. Python's JSON decoder,
# the validators and the database adapter all recurse once per level (some several frames
# per level), so a body nested a thousand deep would exhaust the interpreter's stack
# (RecursionError, a 500). 64 is far beyond any real entity, schema or workflow, and far
# below the stack. Not a setting: raising it towards the stack's depth is never safe.
MAX_JSON_DEPTH = 64

# A JSON string, escapes included (the unrolled form: linear, no per-character alternation).
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_DELTA = {"[": 1, "{": 1, "]": -1, "}": -1}


def json_depth(text: str) -> int:
    """How deep arrays and objects nest in a JSON text, counted without recursion: strings
    are cut out (their brackets are not structure), then the brackets are summed."""
    brackets = _NOT_BRACKET.sub("", _STRING.sub("", text))
    return max(accumulate(map(_DELTA.__getitem__, brackets)), default=0)


def depth_problem(text: str) -> str | None:
    """Why a JSON text nests too deep to be decoded here (the admin's JSON fields say it as
    the API does), or None."""
    depth = json_depth(text)
    if depth > MAX_JSON_DEPTH:
        return f"Arrays and objects nest {depth} deep; the limit is {MAX_JSON_DEPTH}."
    return None


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise ValueError(f"{text} is too large a number (it would be infinity)")
    return value


def json_loads_finite(text: str):
    """`json.loads` refusing with ValueError what the database cannot store and Python's
    defaults take: `NaN`, `Infinity` (not JSON) and a number overflowing a double (`1e400`).
    For JSON from outside that is decoded to be stored, such as a model's answer."""
    return json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float)


class JSONParser(parsers.JSONParser):
    """DRF's JSON parser, refusing a body nested deeper than MAX_JSON_DEPTH (before the
    decoder can recurse into it), `NaN` and `Infinity` (DRF's strict JSON: a parse error),
    and a body with text or a number the database cannot store (a `1e400`, which Python
    decodes as infinity): a 400 that names the field, instead of a failed write."""

    def parse(self, stream, media_type=None, parser_context=None):
        encoding = parsers.get_encoding(parser_context or {})
        try:
            text = codecs.getreader(encoding)(stream).read()
        except ValueError as exc:  # UnicodeDecodeError
            raise ParseError(f"JSON parse error - {exc}") from exc
        depth = json_depth(text)
        if depth > MAX_JSON_DEPTH:
            raise ParseError(
                f"JSON parse error - arrays and objects nest {depth} deep; "
                f"the limit is {MAX_JSON_DEPTH}."
            )
        try:
            data = json.loads(text, parse_constant=json.strict_constant if self.strict else None)
        except ValueError as exc:
            raise ParseError(f"JSON parse error - {exc}") from exc
        problem = unstorable(data)
        if problem:
            raise InvalidInput(f"{problem.field}: {problem.message}", details=[problem])
        return data
