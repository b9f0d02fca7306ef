"""Templates in step configs, rendered with a bounded Jinja2 sandbox over plain data only.

The context is built from JSON values (dicts, lists, strings, numbers), never model instances,
so a template can read values but has nothing to reach Python internals, files or the network
through; the sandbox additionally blocks attribute tricks (`__class__`, `mro`, ...), the
immutable variant forbids mutating the context (`list.append` and friends), and
`workflows.sandbox` bounds the time and memory one render may take.
"""

from functools import lru_cache

from django.conf import settings
from jinja2 import TemplateSyntaxError, meta, nodes
from jinja2.sandbox import SecurityError

from workflows.sandbox import OUTPUT, BoundedSandbox, printed, written_check
from workflows.template_bounds import (
    TemplateLimitError,
    allowance_spent,
    render_budget,
    time_allowance,
)

MAX_TEMPLATE_LENGTH = 20_000
MAX_OUTPUT_LENGTH = 200_000


class TemplateError(Exception):
    """A template failed to compile or render; the message says why."""


_environment = BoundedSandbox()


@lru_cache(maxsize=512)
def _compile(source: str):
    template = _environment.from_string(source)
    # Jinja keeps a template's globals as a ChainMap over the environment's and copies them
    # into a new dict on every render. Ours never change once loaded: a plain dict (a copy,
    # the environment's own is untouched) makes that copy several times cheaper.
    template.globals = dict(template.globals)
    return template


# Jinja parses and transforms a template recursively, and Python compiles the code it
# generates with limits of its own: a template nested about a hundred deep (brackets, unary
# operators) exhausts the stack, and a couple of hundred chained filters, `+`s or attributes,
# or twenty nested `{% for %}`s, generate code Python refuses to compile.
TOO_DEEP = (RecursionError, SyntaxError)
TOO_DEEP_PROBLEM = (
    "Invalid template: nested too deeply (brackets, operators, filters, attributes or blocks)."
)


def template_problem(source: str) -> str | None:
    """Why `source` is not a valid template, or None."""
    try:
        _compile(source)
    except TemplateSyntaxError as exc:
        return f"Invalid template (line {exc.lineno}): {exc.message}"
    except TOO_DEEP:
        return TOO_DEEP_PROBLEM
    return None


@lru_cache(maxsize=512)
def _tree(source: str) -> nodes.Template | None:
    """The syntax tree of a template, or None for an invalid one: parsed once for the
    readers below (`steps_read`, `names_read`, `_reads`), which only walk it."""
    try:
        return _environment.parse(source)
    except (TemplateSyntaxError, *TOO_DEEP):
        return None


def steps_read(source: str) -> set[str]:
    """The ids of the steps whose outputs a (valid) template reads by name: `steps.<id>` and
    `steps["<id>"]`, read from its syntax tree. A name computed at render time
    (`steps[name]`), a dict method (`steps.items()`) and a template that assigns `steps`
    itself (`{% set steps = ... %}`, a loop or macro variable) name no step."""
    tree = _tree(source) if "steps" in source else None
    if tree is None:
        return set()
    if any(name.name == "steps" and name.ctx != "load" for name in tree.find_all(nodes.Name)):
        return set()
    found = set()
    for node in tree.find_all((nodes.Getattr, nodes.Getitem)):
        if not (isinstance(node.node, nodes.Name) and node.node.name == "steps"):
            continue
        if isinstance(node, nodes.Getattr) and not hasattr(dict, node.attr):
            found.add(node.attr)
        elif (
            isinstance(node, nodes.Getitem)
            and isinstance(node.arg, nodes.Const)
            and isinstance(node.arg.value, str)
        ):
            found.add(node.arg.value)
    return found


@lru_cache(maxsize=512)
def names_read(source: str) -> frozenset[str]:
    """The names a (valid) template reads from its context or the sandbox's globals
    (`entity`, `steps`, `run`, a function): none for plain text. Jinja's own analysis
    (`jinja2.meta.find_undeclared_variables`) of the syntax tree.

    Of a tree of its own: that analysis runs Jinja's code generator over the tree, whose
    optimizer rewrites it in place (its text becomes constants), and the shared tree (`_tree`)
    so rewritten no longer read as one of reads only (`_reads`): every render of the
    template then went through the engine."""
    if "{" not in source or _tree(source) is None:
        return frozenset()
    return frozenset(meta.find_undeclared_variables(_environment.parse(source)))


def rendering_time_limit() -> time_allowance:
    """The renders inside share one render's time (TEMPLATE_RENDER_TIMEOUT_S): an entity's
    step, or an estimate's sample, is held by its templates no longer than one render."""
    return time_allowance(settings.TEMPLATE_RENDER_TIMEOUT_S)


# -- templates that only read values ----------------------------------------------------------
# Most templates print text and values read by name (`{{ entity.brand }} {{ entity.title }}`).
# Those are rendered here without the engine (a run renders one per entity and step, and the
# sandbox's context, attribute checks and output calls were most of a transform step's time),
# with the bounds the sandbox gives them: each value printed and the characters written are
# checked by the same functions. Such a render takes no time to speak of and a few steps at
# most (one per read: a template of MAX_TEMPLATE_LENGTH holds fewer reads than MAX_STEPS), so
# no budget is kept for it. Any read this cannot answer exactly as the sandbox would (a
# missing key, a value that is not a JSON object, a dict method's name) goes to the engine,
# which says what it always said; so does any render once its step's time is spent.


@lru_cache(maxsize=512)
def _reads(source: str) -> tuple | None:
    """A template that only prints text and values read by name (`entity.title`,
    `steps["draft"].text`), as its parts: text, or a read's (name, key, ...); None for any
    other template (a filter, a test, an operator, a literal, a statement)."""
    tree = _tree(source)
    if tree is None:
        return None
    parts = []
    for node in tree.body:
        if not isinstance(node, nodes.Output):
            return None
        for child in node.nodes:
            # The sandbox wraps every piece of output in its output hook, and nothing else.
            if not (isinstance(child, nodes.Filter) and child.name == OUTPUT):
                return None
            if isinstance(child.node, nodes.TemplateData):
                parts.append(child.node.data)
            elif (path := _read_path(child.node)) is not None:
                parts.append(path)
            else:
                return None
    return tuple(parts)


def _read_path(node) -> tuple[str, ...] | None:
    keys = []
    while isinstance(node, nodes.Getattr | nodes.Getitem):
        if isinstance(node, nodes.Getattr):
            if hasattr(dict, node.attr):  # `entity.items` is the method, for the sandbox
                return None
            keys.append(node.attr)
        elif isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, str):
            keys.append(node.arg.value)
        else:
            return None
        node = node.node
    if not (isinstance(node, nodes.Name) and node.ctx == "load"):
        return None
    return (node.name, *reversed(keys))


def _render_reads(source: str, context: dict) -> str | None:
    """The template rendered without the engine, or None when it is not one of reads only
    or a read is not one of a present key of a JSON object (the engine renders it)."""
    parts = _reads(source)
    if parts is None or allowance_spent():
        return None
    texts, written = [], 0
    for part in parts:
        if isinstance(part, str):
            text = part
        else:
            value = context.get(part[0], _ABSENT)
            for key in part[1:]:
                if type(value) is not dict or key not in value:
                    return None
                value = value[key]
            if value is _ABSENT:
                return None
            text = printed(value)
        written += len(text)
        written_check(written)
        texts.append(text)
    return "".join(texts)


_ABSENT = object()


def render(source: str, context: dict) -> str:
    if "{" not in source:
        return source  # most values are plain text; skip the engine
    try:
        output = _render_reads(source, context)
        if output is None:
            with render_budget(settings.TEMPLATE_RENDER_TIMEOUT_S):
                output = _compile(source).render(context)
    except TemplateSyntaxError as exc:
        raise TemplateError(f"Invalid template (line {exc.lineno}): {exc.message}") from exc
    except SecurityError as exc:
        raise TemplateError(f"Template refused by the sandbox: {exc}") from exc
    except TemplateLimitError as exc:
        raise TemplateError(str(exc)) from exc
    except RecursionError as exc:
        raise TemplateError("Template failed: macros or data nested too deeply.") from exc
    except Exception as exc:  # a template's own runtime error (1/0, bad filter argument)
        raise TemplateError(f"Template failed: {exc.__class__.__name__}: {exc}") from exc
    if len(output) > MAX_OUTPUT_LENGTH:
        raise TemplateError(f"Template output is longer than {MAX_OUTPUT_LENGTH} characters.")
    return output
