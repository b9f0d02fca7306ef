"""Templates in step configs, rendered with a bounded Jinja2 sandbox over plain data only.

The context is built from JSON values (dicts, lists, strings, numbers), never model instances,
so a template can read values but has nothing to reach Python internals, files or the network
through; the sandbox additionally blocks attribute tricks (`__class__`, `mro`, ...), the
immutable variant forbids mutating the context (`list.append` and friends), and
`workflows.sandbox` bounds the time and memory one render may take.
"""

from functools import lru_cache

from django.conf import settings
from jinja2 import TemplateSyntaxError, nodes
from jinja2.sandbox import SecurityError

from workflows.sandbox import BoundedSandbox
from workflows.template_bounds import TemplateLimitError, render_budget, time_allowance

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


def template_problem(source: str) -> str | None:
    """Why `source` is not a valid template, or None."""
    try:
        _compile(source)
    except TemplateSyntaxError as exc:
        return f"Invalid template (line {exc.lineno}): {exc.message}"
    return None


def steps_read(source: str) -> set[str]:
    """The ids of the steps whose outputs a (valid) template reads by name: `steps.<id>` and
    `steps["<id>"]`, read from its syntax tree. A name computed at render time
    (`steps[name]`), a dict method (`steps.items()`) and a template that assigns `steps`
    itself (`{% set steps = ... %}`, a loop or macro variable) name no step."""
    if "steps" not in source:
        return set()
    try:
        tree = _environment.parse(source)
    except TemplateSyntaxError:
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


def rendering_time_limit() -> time_allowance:
    """The renders inside share one render's time (TEMPLATE_RENDER_TIMEOUT_S): an entity's
    step, or an estimate's sample, is held by its templates no longer than one render."""
    return time_allowance(settings.TEMPLATE_RENDER_TIMEOUT_S)


def render(source: str, context: dict) -> str:
    if "{" not in source:
        return source  # most values are plain text; skip the engine
    try:
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
