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
- what reads a whole value (a filter, test or method, `in`, a comparison, a slice) is charged
  by the size of what it reads, before it runs: `s|wordcount` over 900,000 characters is
  90,000 steps, not one (`template_bounds.FILTER_WALK`);
- the parsed template is rewritten so that each run of a loop's or macro's body is charged
  by the body's size, and each iteration, `~` and piece of output passes through a counter
  (`_BoundingTransformer`); attribute and item lookups count too.

The bounds hold per render, and so does a wall-clock limit (TEMPLATE_RENDER_TIMEOUT_S) that
every step checks; as no single step is long, a render stops within a step of it. A render
over one fails with `TemplateLimitError`, which the caller turns into a failed entity or a
400. Values from the context (entity data) are counted
too, so `MAX_VALUE_SIZE` is well above `ENTITY_MAX_DATA_BYTES`' default.
"""

import re
from functools import wraps
from types import BuiltinMethodType

from jinja2 import Undefined, nodes, pass_context
from jinja2.runtime import LoopContext
from jinja2.sandbox import ImmutableSandboxedEnvironment, SandboxedFormatter
from jinja2.utils import _PassArg
from jinja2.visitor import NodeTransformer
from markupsafe import EscapeFormatter, Markup

from workflows.template_bounds import (
    FILTER_CHECKS,
    MAX_WRITTEN,
    STR_METHOD_CHECKS,
    WALK_SCAN,
    TemplateLimitError,
    check_binop,
    checked,
    current_budget,
    filter_walk,
    materialized,
    method_walk,
    size_of,
    too_large,
    within,
)


def _check_arguments(args, kwargs) -> tuple:
    args = tuple(materialized(arg) for arg in args)
    for value in (*args, *kwargs.values()):
        size_of(value)
    return args


def _bounded_filter(name: str, func, walk: int | None = None, kind: str = "filter"):
    """`func` (a filter or a test) counted: a step, and its operands' sizes."""
    pass_arg = _PassArg.from_obj(func)
    check = FILTER_CHECKS.get(name) if kind == "filter" else None
    walk = filter_walk(name) if walk is None else walk

    # Needing the context keeps Jinja from calling the filter while compiling.
    @pass_context
    @wraps(func)
    def bounded(context, value, *args, **kwargs):
        budget = current_budget()
        budget.spend(1)
        value, *args = _check_arguments((value, *args), kwargs)
        budget.walk((value, *args, *kwargs.values()), walk)
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
        return checked(result, f"the result of {kind} `{name}`")

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
            raise too_large("a formatted field")
        self._count(size_of(value) + sum(int(width) for width in widths))
        return super().format_field(value, format_spec)

    def _count(self, size: int) -> None:
        self._written += size
        within(self._written, "the formatted string")


class _BoundedEscapeFormatter(_BoundedFormatter, EscapeFormatter):
    pass


# The rewritten template -------------------------------------------------------------------

# Filter names with a space: the template syntax cannot spell them, so only the rewrite below
# reaches these counters. Each needs the context, so Jinja never runs one while compiling.
LOOP, CONCAT, OUTPUT, SPEND = "bounded loop", "bounded concat", "bounded output", "bounded spend"
SCAN = "bounded scan"


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

    def visit_Compare(self, node: nodes.Compare) -> nodes.Compare:
        """`a in b`, `a == b`, `a < b` read their operands: each is charged by its size."""
        self.generic_visit(node)
        node.expr = _hook(SCAN, node.expr)
        for operand in node.ops:
            operand.expr = _hook(SCAN, operand.expr)
        return node

    def visit_Getitem(self, node: nodes.Getitem) -> nodes.Getitem:
        """`s[1:]` is compiled to Python's own slicing, not the sandbox's getitem: the copy
        is charged by the size of what it is cut from."""
        self.generic_visit(node)
        if isinstance(node.arg, nodes.Slice):
            node.node = _hook(SCAN, node.node)
        return node

    def visit_Concat(self, node: nodes.Concat) -> nodes.Filter:
        self.generic_visit(node)
        return _hook(CONCAT, nodes.List(node.nodes).set_lineno(node.lineno))

    def visit_Output(self, node: nodes.Output) -> nodes.Output:
        self.generic_visit(node)
        node.nodes = [_hook(OUTPUT, child) for child in node.nodes]
        return node


def bounded_loop(iterable):
    budget = current_budget()
    for item in iterable:
        budget.spend(1)
        yield item


@pass_context
def _loop_filter(context, iterable):
    return bounded_loop(iterable)


@pass_context
def _spend_filter(context, steps: int) -> str:
    current_budget().spend(steps)
    return ""


@pass_context
def _scan_filter(context, value):
    current_budget().walk((value,), WALK_SCAN)
    return value


@pass_context
def _concat_filter(context, parts: list) -> str:
    within(sum(size_of(part) for part in parts), "a `~` concatenation")
    return checked("".join(map(str, parts)))


def printed(value) -> str:
    """`value` as a render prints it, once its size is known to be within bounds."""
    size_of(value)
    return value if isinstance(value, str) else str(value)


def written_check(written: int) -> None:
    """Refuse a render that has written more than MAX_WRITTEN characters."""
    if written > MAX_WRITTEN:
        raise TemplateLimitError(
            f"Template wrote too much: over {MAX_WRITTEN:,} characters in one render."
        )


@pass_context
def _output_filter(context, value) -> str:
    text = printed(value)
    budget = current_budget()
    budget.written += len(text)
    written_check(budget.written)
    return text


HOOKS = {
    LOOP: _loop_filter,
    SPEND: _spend_filter,
    CONCAT: _concat_filter,
    OUTPUT: _output_filter,
    SCAN: _scan_filter,
}


_JINJA_KWARGS = frozenset({"_loop_vars", "_block_vars"})


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
        # `x is in s`, `s is sameas t`: the few that read a whole value walk it in C.
        self.tests = {
            name: _bounded_filter(name, f, walk=WALK_SCAN, kind="test")
            for name, f in self.tests.items()
        }

    def _parse(self, source, name, filename):
        # Rewritten before code generation, so Jinja compiles (and never folds) the counters.
        return _BoundingTransformer().visit(super()._parse(source, name, filename))

    def call_binop(self, context, operator, left, right):
        current_budget().spend(1)
        check_binop(operator, left, right)
        return checked(super().call_binop(context, operator, left, right))

    def getattr(self, obj, attribute):
        current_budget().spend(1)  # the sandbox's attribute check is among its slowest operations
        return super().getattr(obj, attribute)

    def getitem(self, obj, argument):
        current_budget().spend(1)
        return super().getitem(obj, argument)

    def call_unop(self, context, operator, arg):
        current_budget().spend(1)
        return super().call_unop(context, operator, arg)

    def call(__self, __context, __obj, *args, **kwargs):
        current_budget().spend(1)
        # Jinja passes the variables set in the enclosing loop or block along; they are the
        # context's, not the call's arguments.
        arguments = {key: value for key, value in kwargs.items() if key not in _JINJA_KWARGS}
        args = _check_arguments(args, arguments)
        if isinstance(__obj, LoopContext) and args:  # `loop(children)` in a recursive loop
            args = (bounded_loop(args[0]), *args[1:])
        if isinstance(__obj, BuiltinMethodType):
            owner = __obj.__self__
            current_budget().walk((owner, *args, *arguments.values()), method_walk(owner))
            check = STR_METHOD_CHECKS.get(__obj.__name__) if isinstance(owner, str) else None
            if check is not None:
                check(owner, *args, **arguments)
        return checked(super().call(__context, __obj, *args, **kwargs))

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
