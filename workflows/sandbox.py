"""The template engine's sandbox, bounded in the work and memory one render may take.

Jinja2's immutable sandbox keeps a template away from Python internals but not from the
machine's time and memory: `'x' * 10**9`, `10**(10**8)`, `'x'|center(10**9)` or two nested
loops are each one short template. Templates come from users, so every way a template makes a
value or does work goes through a check here:

- operators (`+ - * / // % **`, unary `-`/`+`) are intercepted: the result's size is worked
  out *before* it is built (string and list repetition, `%` formatting, big integers). Jinja
  never folds an intercepted operator at compile time, so `POST /workflows` compiles no value;
- filters are wrapped the same way (widths of `center`, `indent`, `wordwrap`, `format`,
  `replace`, `join`, ...) and marked as needing the render's context, which also keeps Jinja
  from folding them at compile time;
- calls of methods (`'x'.center(n)`, `s.replace('', s)`, `'{:>999999999}'.format(1)`) are
  checked like the filters;
- the parsed template is rewritten so that each run of a loop's or macro's body is charged
  by the body's size, and each iteration, `~` and piece of output passes through a counter
  (`_BoundingTransformer`); attribute and item lookups count too.

The bounds hold per render; a render over one fails with `TemplateLimitError`, which the
caller turns into a failed entity or a 400. Values from the context (entity data) are counted
too, so `MAX_VALUE_SIZE` is well above `ENTITY_MAX_DATA_BYTES`' default.
"""

import re
from collections.abc import ItemsView, Iterator, KeysView, ValuesView
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from functools import wraps
from types import BuiltinMethodType

from jinja2 import Undefined, nodes, pass_context
from jinja2.runtime import LoopContext
from jinja2.sandbox import ImmutableSandboxedEnvironment, SandboxedFormatter
from jinja2.utils import _PassArg
from jinja2.visitor import NodeTransformer
from markupsafe import EscapeFormatter, Markup

MAX_VALUE_SIZE = 1_000_000  # characters of a string, or items and characters of a list/dict
MAX_STEPS = 50_000  # loop iterations, calls, filters and operators in one render
MAX_WRITTEN = 1_000_000  # characters written in one render, `{% set %}` blocks and macros too
MAX_INT_BITS = 10_000  # about 3,000 digits
STEP_PER_CHARACTERS = 1_000  # building a large value costs a step per this many characters


class TemplateLimitError(Exception):
    """A render went over one of the bounds above; the message names it."""


@dataclass
class Budget:
    """What one render has spent so far."""

    steps: int = 0
    written: int = 0
    sizes: dict = field(default_factory=dict)  # id -> (value, size): shared values count once

    def spend(self, steps: int) -> None:
        self.steps += steps
        if self.steps > MAX_STEPS:
            raise TemplateLimitError(
                f"Template did too much work: more than {MAX_STEPS:,} loop iterations, "
                "calls, filters and operators (large values count more)."
            )


_current: ContextVar[Budget | None] = ContextVar("template_budget", default=None)


@contextmanager
def render_budget():
    """A fresh budget for the renders inside the block."""
    token = _current.set(Budget())
    try:
        yield
    finally:
        _current.reset(token)


def _budget() -> Budget:
    # Compile-time constant folding has no budget; it never reaches the checks that spend.
    return _current.get() or Budget()


def _too_large(what: str) -> TemplateLimitError:
    return TemplateLimitError(
        f"Template value too large: {what} would be over {MAX_VALUE_SIZE:,} characters or items."
    )


_CONTAINERS = (list, tuple, dict, set, frozenset, KeysView, ValuesView, ItemsView)


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
    budget = budget or _budget()
    known = budget.sizes.get(id(value))
    if known is not None and known[0] is value:
        return known[1]
    total = 2
    for item in value.items() if isinstance(value, dict) else value:
        total += size_of(item, budget) + 2
        if total > MAX_VALUE_SIZE:
            raise _too_large("a list or mapping")
    budget.sizes[id(value)] = (value, total)
    return total


def _checked(value, what: str = "the result"):
    """`value`, once its size is within bounds; large values cost steps."""
    size = size_of(value)
    if size > MAX_VALUE_SIZE:
        raise _too_large(what)
    _budget().spend(1 + size // STEP_PER_CHARACTERS)
    return value


def _within(size: int, what: str) -> None:
    if size > MAX_VALUE_SIZE:
        raise _too_large(what)


def _materialized(value):
    """An iterator (a `map` or `select` result) as a list, counted item by item, so a filter
    that would build a list from it builds a bounded one."""
    if not isinstance(value, Iterator):
        return value
    budget, items, total = _budget(), [], 0
    for item in value:
        budget.spend(1)
        total += size_of(item, budget) + 2
        _within(total, "a list")
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
                raise _too_large("a formatted field")
            padding += int(number or 0)
        fields += 1
    if isinstance(values, dict):
        values = list(values.values())
    elif not isinstance(values, tuple):
        values = [values]
    largest = max((size_of(value) for value in values), default=0)
    _within(len(template) + padding + fields * largest, "the formatted string")


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
                _within(_repeated_size(sequence, times), "a repeated string or list")
        both_int = isinstance(left, int) and isinstance(right, int)
        if both_int and left.bit_length() + right.bit_length() > MAX_INT_BITS:
            raise _too_large("a product of integers")
    elif operator == "**":
        if isinstance(left, int) and isinstance(right, int) and right > 0:
            if max(left.bit_length() - 1, 1) * right > MAX_INT_BITS and abs(left) > 1:
                raise _too_large("a power")
        elif (
            isinstance(left, numbers)
            and isinstance(right, numbers)
            and abs(right) > 10**6
            and abs(left) not in (0, 1)
        ):
            raise _too_large("a power")
    elif operator == "+":
        if isinstance(left, str | list | tuple) and isinstance(right, str | list | tuple):
            _within(size_of(left) + size_of(right), "a concatenation")
    elif operator == "%" and isinstance(left, str):
        check_percent_format(left, right)


# Filters and methods that can make a value much larger than their input -------------------


def _width(value, width, what):
    if isinstance(width, int) and not isinstance(width, bool):
        _within(max(width, 0) + size_of(value), what)


def _center(value, width=80, *args, **kwargs):
    _width(value, width, "a padded string")


def _indent(value, width=4, first=False, blank=False):
    unit = len(width) if isinstance(width, str) else width
    lines = str(value).count("\n") + 1 if isinstance(value, str) else 1
    if isinstance(unit, int):
        _within(size_of(value) + lines * max(unit, 0), "an indented string")


def _wordwrap(value, width=79, break_long_words=True, wrapstring=None, *args, **kwargs):
    separator = len(wrapstring) if isinstance(wrapstring, str) else 1
    _within(size_of(value) * (1 + separator), "a wrapped string")


def _replace(value, old, new, count=None):
    if not isinstance(value, str) or not isinstance(old, str) or not isinstance(new, str):
        return
    found = len(value) + 1 if old == "" else value.count(old)
    if isinstance(count, int) and count >= 0:
        found = min(found, count)
    _within(len(value) + found * max(len(new) - len(old), 0), "a replaced string")


def _join(value, d="", *args, **kwargs):
    items = value if isinstance(value, list | tuple) else []
    separator = len(d) if isinstance(d, str) else size_of(d)
    _within(size_of(items) + separator * max(len(items) - 1, 0), "a joined string")


def _format(value, *args, **kwargs):
    if isinstance(value, str):
        check_percent_format(value, kwargs or args)


def _filled(value, count, fill_with=None):
    if isinstance(count, int) and not isinstance(count, bool):
        _within(max(count, 0), "a number of batches or slices")
        if fill_with is not None:
            _within(max(count, 0) * size_of(fill_with), "the filled rows")


def _sum(value, attribute=None, start=0):
    if not isinstance(start, int | float):
        raise TemplateLimitError("Template filter `sum` adds numbers only.")


def _tojson(value, indent=None):
    if indent is not None:
        if not isinstance(indent, int) or not 0 <= indent <= 16:
            raise TemplateLimitError("Template filter `tojson`: indent must be 0 to 16.")
        _within(size_of(value) * (1 + indent), "the JSON text")


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
        _within(len(value) + value.count("\t") * max(tabsize, 0), "an expanded string")


def _translate(value, table):
    if isinstance(table, dict):
        longest = max((size_of(item) for item in table.values()), default=1)
        _within(len(value) * max(longest, 1), "a translated string")


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


def _check_arguments(args, kwargs) -> tuple:
    args = tuple(_materialized(arg) for arg in args)
    for value in (*args, *kwargs.values()):
        size_of(value)
    return args


def _bounded_filter(name: str, func):
    pass_arg = _PassArg.from_obj(func)
    check = FILTER_CHECKS.get(name)

    # Needing the context keeps Jinja from calling the filter while compiling.
    @pass_context
    @wraps(func)
    def bounded(context, value, *args, **kwargs):
        _budget().spend(1)
        value, *args = _check_arguments((value, *args), kwargs)
        if check is not None:
            check(value, *args, **kwargs)
        if pass_arg is _PassArg.context:
            result = func(context, value, *args, **kwargs)
        elif pass_arg is _PassArg.eval_context:
            result = func(context.eval_ctx, value, *args, **kwargs)
        elif pass_arg is _PassArg.environment:
            result = func(context.environment, value, *args, **kwargs)
        else:
            result = func(value, *args, **kwargs)
        return _checked(result, f"the result of `{name}`")

    return bounded


# Formatting with str.format ---------------------------------------------------------------


class _BoundedFormatter(SandboxedFormatter):
    """Counts what each field will write before writing it."""

    def vformat(self, format_string, args, kwargs):
        self._written = len(format_string)
        return super().vformat(format_string, args, kwargs)

    def convert_field(self, value, conversion):
        self._count(size_of(value) + 2)
        return super().convert_field(value, conversion)

    def format_field(self, value, format_spec):
        widths = re.findall(r"\d+", format_spec)
        if any(len(width) > 7 for width in widths):
            raise _too_large("a formatted field")
        self._count(size_of(value) + sum(int(width) for width in widths))
        return super().format_field(value, format_spec)

    def _count(self, size: int) -> None:
        self._written += size
        _within(self._written, "the formatted string")


class _BoundedEscapeFormatter(_BoundedFormatter, EscapeFormatter):
    pass


# The rewritten template -------------------------------------------------------------------

# Filter names with a space: the template syntax cannot spell them, so only the rewrite below
# reaches these counters. Each needs the context, so Jinja never runs one while compiling.
LOOP, CONCAT, OUTPUT, SPEND = "bounded loop", "bounded concat", "bounded output", "bounded spend"


def _hook(name: str, argument: nodes.Expr) -> nodes.Filter:
    return nodes.Filter(argument, name, [], [], None, None).set_lineno(argument.lineno)


def _weight(body: list[nodes.Node]) -> int:
    """What running `body` once costs: a step per ten nodes (the uncounted ones, comparisons
    and conditions, are cheap), at least one."""
    return 1 + sum(1 for statement in body for _ in statement.find_all(nodes.Node)) // 10


def _charged(body: list[nodes.Node]) -> list[nodes.Node]:
    spend = nodes.ExprStmt(_hook(SPEND, nodes.Const(_weight(body))))
    return [spend.set_lineno(body[0].lineno if body else 1), *body]


class _BoundingTransformer(NodeTransformer):
    """Charges each run of a loop's, macro's or call block's body to the budget and routes
    iterations, `~` and output through the counters."""

    def visit_For(self, node: nodes.For) -> nodes.For:
        self.generic_visit(node)
        node.iter = _hook(LOOP, node.iter)
        node.body = _charged(node.body)
        return node

    def visit_Macro(self, node: nodes.Macro) -> nodes.Macro:
        self.generic_visit(node)
        node.body = _charged(node.body)
        return node

    def visit_CallBlock(self, node: nodes.CallBlock) -> nodes.CallBlock:
        self.generic_visit(node)
        node.body = _charged(node.body)
        return node

    def visit_Concat(self, node: nodes.Concat) -> nodes.Filter:
        self.generic_visit(node)
        return _hook(CONCAT, nodes.List(node.nodes).set_lineno(node.lineno))

    def visit_Output(self, node: nodes.Output) -> nodes.Output:
        self.generic_visit(node)
        node.nodes = [_hook(OUTPUT, child) for child in node.nodes]
        return node


def bounded_loop(iterable):
    budget = _budget()
    for item in iterable:
        budget.spend(1)
        yield item


@pass_context
def _loop_filter(context, iterable):
    return bounded_loop(iterable)


@pass_context
def _spend_filter(context, steps: int) -> str:
    _budget().spend(steps)
    return ""


@pass_context
def _concat_filter(context, parts: list) -> str:
    _within(sum(size_of(part) for part in parts), "a `~` concatenation")
    return _checked("".join(map(str, parts)))


@pass_context
def _output_filter(context, value) -> str:
    size_of(value)
    text = value if isinstance(value, str) else str(value)
    budget = _budget()
    budget.written += len(text)
    if budget.written > MAX_WRITTEN:
        raise TemplateLimitError(
            f"Template wrote too much: over {MAX_WRITTEN:,} characters in one render."
        )
    return text


HOOKS = {LOOP: _loop_filter, SPEND: _spend_filter, CONCAT: _concat_filter, OUTPUT: _output_filter}


class BoundedSandbox(ImmutableSandboxedEnvironment):
    """The immutable sandbox with every operator, filter, call, loop and piece of output
    counted against the current render's `Budget`, and no globals (Jinja's `range`, `dict`,
    `lipsum`, `cycler`, `joiner` and `namespace` are not part of the documented language)."""

    intercepted_binops = frozenset({"+", "-", "*", "/", "//", "%", "**"})
    intercepted_unops = frozenset({"-", "+"})

    def __init__(self):
        super().__init__(autoescape=False, undefined=Undefined)
        self.globals.clear()
        self.filters = {name: _bounded_filter(name, f) for name, f in self.filters.items()}
        self.filters.update(HOOKS)

    def _parse(self, source, name, filename):
        # Rewritten before code generation, so Jinja compiles (and never folds) the counters.
        return _BoundingTransformer().visit(super()._parse(source, name, filename))

    def call_binop(self, context, operator, left, right):
        _budget().spend(1)
        check_binop(operator, left, right)
        return _checked(super().call_binop(context, operator, left, right))

    def getattr(self, obj, attribute):
        _budget().spend(1)  # the sandbox's attribute check is among its slowest operations
        return super().getattr(obj, attribute)

    def getitem(self, obj, argument):
        _budget().spend(1)
        return super().getitem(obj, argument)

    def call_unop(self, context, operator, arg):
        _budget().spend(1)
        return super().call_unop(context, operator, arg)

    def call(__self, __context, __obj, *args, **kwargs):
        _budget().spend(1)
        args = _check_arguments(args, kwargs)
        if isinstance(__obj, LoopContext) and args:  # `loop(children)` in a recursive loop
            args = (bounded_loop(args[0]), *args[1:])
        if isinstance(__obj, BuiltinMethodType) and isinstance(__obj.__self__, str):
            check = STR_METHOD_CHECKS.get(__obj.__name__)
            if check is not None:
                check(__obj.__self__, *args, **kwargs)
        return _checked(super().call(__context, __obj, *args, **kwargs))

    def wrap_str_format(self, value):
        wrapped = super().wrap_str_format(value)
        if wrapped is None:
            return None
        template = value.__self__
        formatter_class = (
            _BoundedEscapeFormatter if isinstance(template, Markup) else _BoundedFormatter
        )
        escape = {"escape": template.escape} if isinstance(template, Markup) else {}
        formatter = formatter_class(self, **escape)
        is_format_map = value.__name__ == "format_map"

        @wraps(wrapped)
        def bounded(*args, **kwargs):
            if is_format_map:
                if kwargs or len(args) != 1:
                    raise TypeError("format_map() takes exactly one argument")
                args, kwargs = (), args[0]
            return type(template)(formatter.vformat(template, args, kwargs))

        return bounded
