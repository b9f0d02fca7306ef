"""The bounds of one template render and the checks that keep a render within them.

Each check works out the size of a value *before* it is built (`'x' * 10**9` is refused
without allocating it): `workflows.sandbox` calls them from the operators, filters and methods
a template can use. Sizes bound the length of `str(value)`: characters of strings, digits of
integers, items (and their sizes) of lists and mappings.
"""

import re
import time
from collections.abc import ItemsView, Iterator, KeysView, ValuesView
from contextvars import ContextVar
from dataclasses import dataclass, field

MAX_VALUE_SIZE = 1_000_000  # characters of a string, or items and characters of a list/dict
MAX_STEPS = 50_000  # loop iterations, calls, filters and operators in one render
MAX_WRITTEN = 1_000_000  # characters written in one render, `{% set %}` blocks and macros too
MAX_INT_BITS = 10_000  # about 3,000 digits
STEP_PER_CHARACTERS = 1_000  # building a large value costs a step per this many characters
RENDER_TIMEOUT_S = 5.0  # the default of settings.TEMPLATE_RENDER_TIMEOUT_S

# Walking a value (a filter, a method, a test, `in` or a comparison reads all of it) costs a
# step per this many characters of its operands, measured against a step of the sandbox
# (about half a microsecond): C-level scans (`in`, `==`, `count`, `find`) are the cheapest,
# filters written in Python that make an object per item or character (`sort`, `unique`,
# `wordcount`, `urlize`, ...) the dearest.
WALK_SCAN = 1_000
WALK = 100
WALK_PER_ITEM = 10
WALK_FREE = 0  # reads a fixed part of the value: `length`, `first`, `last`, `default`, ...


class TemplateLimitError(Exception):
    """A render went over one of the bounds above; the message names it."""


@dataclass
class Budget:
    """What one render has spent so far, and when it must have ended (`time.monotonic()`).

    Every step checks the clock, so a render stops within one step of its deadline; no step
    runs long, as each walk of a large value is charged (and refused) before it is made."""

    steps: int = 0
    written: int = 0
    sizes: dict = field(default_factory=dict)  # id -> (value, size): shared values count once
    deadline: float = float("inf")
    timeout: float = RENDER_TIMEOUT_S

    def spend(self, steps: int) -> None:
        self.steps += steps
        if self.steps > MAX_STEPS:
            raise TemplateLimitError(
                f"Template did too much work: more than {MAX_STEPS:,} steps in one render "
                "(a loop iteration, call, filter or operator is a step; walking a large value "
                "costs a step per 10 to 1,000 of its characters)."
            )
        if time.monotonic() > self.deadline:
            raise TemplateLimitError(
                f"Template took too long: over {self.timeout:g} s of rendering "
                "(TEMPLATE_RENDER_TIMEOUT_S)."
            )

    def walk(self, values, characters_per_step: int) -> None:
        """Charge reading every one of `values` (strings, lists and tuples; a mapping or set
        is looked up by hash)."""
        if not characters_per_step:
            return
        size = sum(size_of(value, self) for value in values if isinstance(value, _WALKED))
        if size >= characters_per_step:
            self.spend(size // characters_per_step)


_current: ContextVar[Budget | None] = ContextVar("template_budget", default=None)
_allowance: ContextVar[list[float] | None] = ContextVar("template_allowance", default=None)


class render_budget:
    """A fresh budget for the renders inside the block, which must end within `timeout`
    seconds, and within what is left of an enclosing `time_allowance`.

    A class rather than a generator: a run enters one per entity and template, and
    `contextlib`'s generator machinery cost more than the budget itself."""

    __slots__ = ("allowance", "started", "timeout", "token")

    def __init__(self, timeout: float = RENDER_TIMEOUT_S):
        self.timeout = timeout

    def __enter__(self) -> None:
        self.allowance = allowance = _allowance.get()
        limit = self.timeout if allowance is None else max(min(self.timeout, allowance[0]), 0.0)
        self.started = started = time.monotonic()
        self.token = _current.set(Budget(deadline=started + limit, timeout=self.timeout))

    def __exit__(self, *exc_info) -> None:
        _current.reset(self.token)
        if self.allowance is not None:
            self.allowance[0] -= time.monotonic() - self.started


class time_allowance:
    """The renders inside the block share `seconds` of rendering between them (the time
    between renders, a model call's, is not counted): one entity's step, or an estimate's
    sample, is held by its templates no longer than one render may be."""

    __slots__ = ("seconds", "token")

    def __init__(self, seconds: float):
        self.seconds = seconds

    def __enter__(self) -> None:
        self.token = _allowance.set([self.seconds])

    def __exit__(self, *exc_info) -> None:
        _allowance.reset(self.token)


def allowance_spent() -> bool:
    """Whether the enclosing `time_allowance`, if any, has no time left."""
    allowance = _allowance.get()
    return allowance is not None and allowance[0] <= 0


def current_budget() -> Budget:
    # Compile-time constant folding has no budget; it never reaches the checks that spend.
    return _current.get() or Budget()


def too_large(what: str) -> TemplateLimitError:
    return TemplateLimitError(
        f"Template value too large: {what} would be over {MAX_VALUE_SIZE:,} characters or items."
    )


_CONTAINERS = (list, tuple, dict, set, frozenset, KeysView, ValuesView, ItemsView)
_WALKED = (str, list, tuple, KeysView, ValuesView, ItemsView)


def size_of(value, budget: Budget | None = None) -> int:
    """An upper bound on the length of `str(value)`, raising as soon as it passes
    MAX_VALUE_SIZE. A list holding the same list ten times counts it ten times: that is what
    printing it would write."""
    if isinstance(value, str):
        return len(value)
    if isinstance(value, bool) or value is None:
        return 5
    if isinstance(value, int):
        return value.bit_length() // 3 + 2
    if not isinstance(value, _CONTAINERS):
        return 32  # numbers, Undefined, ranges, loop helpers: short reprs
    budget = budget or current_budget()
    known = budget.sizes.get(id(value))
    if known is not None and known[0] is value:
        return known[1]
    total = 2
    for item in value.items() if isinstance(value, dict) else value:
        total += size_of(item, budget) + 2
        if total > MAX_VALUE_SIZE:
            raise too_large("a list or mapping")
    budget.sizes[id(value)] = (value, total)
    return total


def checked(value, what: str = "the result"):
    """`value`, once its size is within bounds; large values cost steps."""
    size = size_of(value)
    if size > MAX_VALUE_SIZE:
        raise too_large(what)
    current_budget().spend(1 + size // STEP_PER_CHARACTERS)
    return value


def within(size: int, what: str) -> None:
    if size > MAX_VALUE_SIZE:
        raise too_large(what)


def materialized(value):
    """An iterator (a `map` or `select` result) as a list, counted item by item, so a filter
    that would build a list from it builds a bounded one."""
    if not isinstance(value, Iterator):
        return value
    budget, items, total = current_budget(), [], 0
    for item in value:
        budget.spend(1)
        total += size_of(item, budget) + 2
        within(total, "a list")
        items.append(item)
    return items


# Operators --------------------------------------------------------------------------------

_PERCENT_FIELD = re.compile(r"%(?:\([^)]*\))?[#0\- +]*(\*|\d+)?(?:\.(\*|\d+))?[hlL]?(.)", re.S)


def check_percent_format(template: str, values) -> None:
    """`template % values` stays within bounds: widths and precisions are counted, and each
    field may take the largest value."""
    fields, padding = 0, 0
    for width, precision, kind in _PERCENT_FIELD.findall(template):
        if kind == "%":
            continue
        if "*" in (width, precision):
            raise TemplateLimitError("Template formatting: `*` widths are not supported.")
        for number in (width, precision):
            if len(number) > 7:
                raise too_large("a formatted field")
            padding += int(number or 0)
        fields += 1
    if isinstance(values, dict):
        values = list(values.values())
    elif not isinstance(values, tuple):
        values = [values]
    largest = max((size_of(value) for value in values), default=0)
    within(len(template) + padding + fields * largest, "the formatted string")


def _repeated_size(sequence, times) -> int:
    if isinstance(times, bool) or not isinstance(times, int) or times <= 0:
        return 0
    return size_of(sequence) * times


def check_binop(operator: str, left, right) -> None:
    """Refuse an operation whose result would be over a bound, before computing it."""
    numbers = (int, float)
    if operator == "*":
        for sequence, times in ((left, right), (right, left)):
            if isinstance(sequence, str | list | tuple):
                within(_repeated_size(sequence, times), "a repeated string or list")
        both_int = isinstance(left, int) and isinstance(right, int)
        if both_int and left.bit_length() + right.bit_length() > MAX_INT_BITS:
            raise too_large("a product of integers")
    elif operator == "**":
        if isinstance(left, int) and isinstance(right, int) and right > 0:
            if max(left.bit_length() - 1, 1) * right > MAX_INT_BITS and abs(left) > 1:
                raise too_large("a power")
        elif (
            isinstance(left, numbers)
            and isinstance(right, numbers)
            and abs(right) > 10**6
            and abs(left) not in (0, 1)
        ):
            raise too_large("a power")
    elif operator == "+":
        if isinstance(left, str | list | tuple) and isinstance(right, str | list | tuple):
            within(size_of(left) + size_of(right), "a concatenation")
    elif operator == "%" and isinstance(left, str):
        check_percent_format(left, right)


# Filters and methods that can make a value much larger than their input -------------------


def _width(value, width, what):
    if isinstance(width, int) and not isinstance(width, bool):
        within(max(width, 0) + size_of(value), what)


def _center(value, width=80, *args, **kwargs):
    _width(value, width, "a padded string")


def _indent(value, width=4, first=False, blank=False):
    unit = len(width) if isinstance(width, str) else width
    lines = str(value).count("\n") + 1 if isinstance(value, str) else 1
    if isinstance(unit, int):
        within(size_of(value) + lines * max(unit, 0), "an indented string")


def _wordwrap(value, width=79, break_long_words=True, wrapstring=None, *args, **kwargs):
    separator = len(wrapstring) if isinstance(wrapstring, str) else 1
    within(size_of(value) * (1 + separator), "a wrapped string")


def _replace(value, old, new, count=None):
    if not isinstance(value, str) or not isinstance(old, str) or not isinstance(new, str):
        return
    found = len(value) + 1 if old == "" else value.count(old)
    if isinstance(count, int) and count >= 0:
        found = min(found, count)
    within(len(value) + found * max(len(new) - len(old), 0), "a replaced string")


def _join(value, d="", *args, **kwargs):
    items = value if isinstance(value, list | tuple) else []
    separator = len(d) if isinstance(d, str) else size_of(d)
    within(size_of(items) + separator * max(len(items) - 1, 0), "a joined string")


def _format(value, *args, **kwargs):
    if isinstance(value, str):
        check_percent_format(value, kwargs or args)


def _filled(value, count, fill_with=None):
    if isinstance(count, int) and not isinstance(count, bool):
        within(max(count, 0), "a number of batches or slices")
        if fill_with is not None:
            within(max(count, 0) * size_of(fill_with), "the filled rows")


def _sum(value, attribute=None, start=0):
    if not isinstance(start, int | float):
        raise TemplateLimitError("Template filter `sum` adds numbers only.")


def _tojson(value, indent=None):
    if indent is not None:
        if not isinstance(indent, int) or not 0 <= indent <= 16:
            raise TemplateLimitError("Template filter `tojson`: indent must be 0 to 16.")
        within(size_of(value) * (1 + indent), "the JSON text")


def _urlize(value, trim_url_limit=None, nofollow=False, target=None, rel=None, *args, **kw):
    for extra in (target, rel):
        if isinstance(extra, str) and len(extra) > 100:
            raise TemplateLimitError("Template filter `urlize`: target and rel are at most 100.")


FILTER_CHECKS = {
    "center": _center,
    "indent": _indent,
    "wordwrap": _wordwrap,
    "replace": _replace,
    "join": _join,
    "format": _format,
    "batch": _filled,
    "slice": _filled,
    "sum": _sum,
    "tojson": _tojson,
    "urlize": _urlize,
}


def _expandtabs(value, tabsize=8):
    if isinstance(tabsize, int):
        within(len(value) + value.count("\t") * max(tabsize, 0), "an expanded string")


def _translate(value, table):
    if isinstance(table, dict):
        longest = max((size_of(item) for item in table.values()), default=1)
        within(len(value) * max(longest, 1), "a translated string")


STR_METHOD_CHECKS = {
    "center": _center,
    "ljust": _center,
    "rjust": _center,
    "zfill": _center,
    "expandtabs": _expandtabs,
    "replace": _replace,
    "join": lambda separator, items: _join(items, separator),
    "translate": _translate,
}


# What walking its operands costs each filter and method ----------------------------------

_PER_ITEM = (
    "batch dictsort groupby join list map max min pprint reject rejectattr select "
    "selectattr slice sort striptags sum title unique urlencode urlize wordcount wordwrap "
    "xmlattr"
)
_FREE = "attr abs count d default filesizeformat first float int last length random round safe"
FILTER_WALK = {
    **{name: WALK_PER_ITEM for name in _PER_ITEM.split()},
    **{name: WALK_FREE for name in _FREE.split()},
}


def filter_walk(name: str) -> int:
    """Characters of a filter's operands that cost a step (0: free)."""
    return FILTER_WALK.get(name, WALK)


def method_walk(owner) -> int:
    """Characters of a method's object and arguments that cost a step: every method of a
    string, list or tuple reads it (`count`, `find`, `split`, `index`, ...); a mapping's
    methods look up by hash or hand out views whose items a loop counts."""
    return WALK if isinstance(owner, str | list | tuple) else WALK_FREE
