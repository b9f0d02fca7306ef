"""The base class of step types. A step type is one module in `workflows/steps/` that declares
its config schema once; validation, `/api/v1/step-types`, the OpenAPI schema and the admin's
step-type reference all come from that declaration.
"""

import logging
from collections import defaultdict
from collections.abc import Iterator
from typing import Any, ClassVar

from django.db import DatabaseError

from config.api.errors import FieldError, json_path
from entities.patterns import PatternError, pattern_search
from entities.schemas import schema_validator
from workflows.steps.runtime import EntityState, Flow, Outcome, StepContext, StepError
from workflows.templating import (
    MAX_TEMPLATE_LENGTH,
    TemplateError,
    render,
    rendering_time_limit,
    template_problem,
)

TEMPLATE = "x-template"
# Marks an option whose value is itself a JSON Schema (the admin offers a form of its fields).
JSON_SCHEMA = "x-jsonSchema"
logger = logging.getLogger(__name__)


def template_string(description: str, **extra) -> dict:
    """A config property holding a template (rendered against the entity, step outputs, run)."""
    return {
        "type": "string",
        "maxLength": MAX_TEMPLATE_LENGTH,
        "description": description + " (template)",
        TEMPLATE: True,
        **extra,
    }


def regex_search(pattern: str, text: str) -> bool:
    """Whether a user's `pattern` matches in `text`, on RE2 (linear time). A pattern saved
    before RE2 that it cannot run fails the entity."""
    try:
        return pattern_search(pattern, text)
    except PatternError as exc:
        raise StepError(f"{exc}: {pattern!r}") from exc


class StepType:
    """One kind of workflow step: one module in `workflows/steps/`, registered with
    `@register`, depending on nothing but `workflows/steps/` (and the layers below).

    Declaring: set `type`, `name`, `description`, `config_schema` (a JSON Schema object, the
    OpenAPI 3.0 subset: `$defs` allowed, no `const`) and `example`; checks the schema cannot
    express go in `extra_problems`. Validation, `/api/v1/step-types`, the OpenAPI schema and
    the admin's reference all come from this declaration.

    Running: implement `run` (one entity: return a `Flow`, or raise `StepError(message)` to
    fail that entity) or override `run_batch` (every entity of a chunk at this step, to batch
    writes or overlap I/O; finish each state with `advance` or `state.fail`). What a step may
    ask of the engine is `ctx.engine` (a `StepEngine`): `publish` working copies (commit them
    with a status), `checkpoint` around a side effect (before an at-most-once one, after an
    at-least-once one) so a redelivered chunk does not repeat it, `cancelled()` before
    starting more work, `heartbeat()` in long batches.
    Concurrent calls go through `bounded_calls` (workflows/steps/inflight.py).

    A run and the test endpoint take the same path: the test gets a `DryRun` engine, and
    with `ctx.dry_run` a step sends nothing (it returns what it would have sent).

    The engine guards every step: any other exception fails the entities the step had not
    finished (logged, with the error), and an entity a step left at its step ends cancelled
    when the run was cancelled, failed otherwise: none ends `completed` by accident. A
    database error is not caught: the chunk is retried from its checkpoints.
    """

    type: ClassVar[str]
    name: ClassVar[str]
    description: ClassVar[str]
    config_schema: ClassVar[dict[str, Any]]
    example: ClassVar[dict[str, Any]]
    # Config keys never shown in responses (a signing secret): a response carries
    # `<key>Set: true` instead (declare it in the schema, `readOnly`), and an update that
    # leaves the key out keeps the step's current value.
    write_only: ClassVar[tuple[str, ...]] = ()

    def __init__(self):
        # Patterns on RE2, as JSON Schema means them: Python's `re` lets `$` match before a
        # final newline, so "translation.done\n" passed an event name's `^...$`.
        self._validator = schema_validator(self.config_schema)

    def problems(self, config: Any, *, path: str = "config") -> list[FieldError]:
        """Every way `config` breaks this type's rules, located under `path`."""
        if not isinstance(config, dict):
            return [FieldError(path, "Must be a JSON object.")]
        found = [
            problem
            for error in self._validator.iter_errors(config)
            for problem in _explain(error, path, self.config_schema.get("$defs", {}))
        ]
        if not found:
            found = self._template_problems(config, self.config_schema, path)
            found += self.extra_problems(config, path=path)
        return sorted(found, key=lambda problem: problem.field)

    def extra_problems(self, config: dict, *, path: str) -> list[FieldError]:
        """Checks beyond the JSON Schema (a regex that compiles, a schema that is valid)."""
        return []

    def shown_config(self, config: dict) -> dict:
        """The config as responses show it: no write-only value, only whether it is set."""
        if not any(key in config for key in self.write_only):
            return config
        shown = {key: value for key, value in config.items() if key not in self.write_only}
        shown.update({f"{key}Set": True for key in self.write_only if key in config})
        return shown

    def stored_config(self, config: dict, current: dict | None) -> dict:
        """The config to store for `config` as sent, `current` being the same step's config
        now (None for a new step): write-only values left out are kept, `<key>Set` flags
        (what a response said) are dropped."""
        stored = {
            key: value
            for key, value in config.items()
            if key not in {f"{name}Set" for name in self.write_only}
        }
        for key in self.write_only:
            if key not in stored and current is not None and key in current:
                stored[key] = current[key]
        return stored

    def chunk_size_limit(self, config: dict) -> int | None:
        """The most entities a chunk should hold when a workflow has this step, or None for
        no limit beyond the run's (RUN_CHUNK_SIZE, grown for large runs up to
        RUN_CHUNK_SIZE_MAX: workflows/steps/chunking.py). A step whose entities wait on slow
        calls sets one, so that a run is spread over every worker process instead of queued
        behind one, and no chunk takes long enough to be handed to a second worker."""
        return None

    def run(self, state: EntityState, config: dict, ctx: StepContext) -> Flow:
        raise NotImplementedError(f"Step type {self.type!r} does not implement run().")

    def run_batch(self, states: list[EntityState], config: dict, ctx: StepContext) -> None:
        """Run the step for every entity in `states` (all alive, all at this step)."""
        for state in states:
            self.run_guarded(state, config, ctx)

    def run_guarded(self, state: EntityState, config: dict, ctx: StepContext) -> None:
        """`run` for one entity, with its outcome applied to the entity's state."""
        try:
            with rendering_time_limit():
                flow = self.run(state, config, ctx)
        except StepError as exc:
            state.fail(ctx.step_id, exc.message)
        except DatabaseError:
            raise  # the chunk is retried from its checkpoints
        except Exception as exc:
            # A defect must fail the entity with a message, whatever thread runs it: an
            # exception left in a pool's future would leave the entity looking unharmed.
            logger.exception("Step %s (%s) crashed", ctx.step_id, self.type)
            state.fail(ctx.step_id, internal_error(ctx.step_id, exc))
        else:
            advance(state, flow, ctx)

    @staticmethod
    def render(source: str, state: EntityState, ctx: StepContext) -> str:
        try:
            return render(source, state.template_context(ctx.run_id))
        except TemplateError as exc:
            raise StepError(str(exc)) from exc

    def with_defaults(self, config: dict) -> dict:
        """The config with every top-level default from the schema filled in."""
        defaults = {
            key: spec["default"]
            for key, spec in self.config_schema.get("properties", {}).items()
            if "default" in spec
        }
        return {**defaults, **config}

    def _template_problems(self, value, schema: dict, path: str) -> list[FieldError]:
        return [
            FieldError(where, problem, "template")
            for where, source in self._templates(value, schema, path)
            if (problem := template_problem(source))
        ]

    def templates(self, config: dict, *, path: str = "config") -> Iterator[tuple[str, str]]:
        """Each template of a valid `config`, with its path (`config.operations[1].value`)."""
        return self._templates(config, self.config_schema, path)

    def _templates(self, value, schema: dict, path: str) -> Iterator[tuple[str, str]]:
        if "$ref" in schema:
            schema = self.config_schema["$defs"][schema["$ref"].rsplit("/", 1)[1]]
        if schema.get(TEMPLATE) and isinstance(value, str):
            yield path, value
            return
        if isinstance(value, dict):
            for key, spec in schema.get("properties", {}).items():
                if key in value:
                    yield from self._templates(value[key], spec, f"{path}.{key}")
        elif isinstance(value, list) and isinstance(schema.get("items"), dict):
            for index, item in enumerate(value):
                yield from self._templates(item, schema["items"], f"{path}[{index}]")
        for option in schema.get("oneOf", []):
            if schema_validator({**option, "$defs": self.config_schema.get("$defs", {})}).is_valid(
                value
            ):
                yield from self._templates(value, option, path)


def internal_error(step_id: str, exc: Exception) -> str:
    return f"Internal error in step {step_id}: {exc.__class__.__name__}: {exc}"


def advance(state: EntityState, flow: Flow, ctx: StepContext) -> None:
    """Record a step's output and move the entity on (or stop it: its item is `skipped`)."""
    if flow.output is not None:
        state.outputs[ctx.step_id] = flow.output
    state.step_id = ctx.step_id
    if flow.stop:
        state.outcome = Outcome.STOPPED  # logged once per chunk and step, with the count
    else:
        state.next_step = ctx.step_index + 1 + flow.jump
    if not ctx.dry_run:
        return  # the trace is the test endpoint's answer; a run records items and logs
    state.trace.append(
        {
            "stepId": ctx.step_id,
            "outcome": Outcome.STOPPED if flow.stop else Outcome.COMPLETED,
            "output": flow.output,
            "jumped": flow.jump,
        }
    )


def _explain(error, path: str, defs: dict) -> list[FieldError]:
    """A jsonschema error as precise field errors: a missing property is named in the path."""
    where = json_path([path, *error.absolute_path])
    if error.validator == "required":
        missing = [name for name in error.validator_value if name not in error.instance]
        return [
            FieldError(f"{where}.{name}", "This field is required.", "required") for name in missing
        ]
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        known = set(error.schema.get("properties", {}))
        return [
            FieldError(f"{where}.{name}", "Unknown field.", "unknown_field")
            for name in error.instance
            if name not in known
        ]
    if error.validator == "oneOf" and error.context:
        return _explain_one_of(error, path, where, defs)
    return [FieldError(where, error.message, error.validator)]


def _explain_one_of(error, path: str, where: str, defs: dict) -> list[FieldError]:
    """Explain the alternative the value was meant to be, not "is not valid under any"."""
    by_option = defaultdict(list)
    for sub in error.context:
        by_option[sub.relative_schema_path[0]].append(sub)
    discriminator = error.schema.get("x-discriminator")
    if discriminator and isinstance(error.instance, dict):
        chosen = error.instance.get(discriminator)
        allowed = []
        for index, option in enumerate(error.validator_value):
            if "$ref" in option:
                option = defs[option["$ref"].rsplit("/", 1)[1]]
            values = option["properties"][discriminator]["enum"]
            if chosen in values:
                return [p for sub in by_option[index] for p in _explain(sub, path, defs)]
            allowed += values
        return [
            FieldError(f"{where}.{discriminator}", "Must be one of: " + ", ".join(allowed), "enum")
        ]

    # The alternative whose shape the value has: fewest errors about the value's own keys.
    def distance(index):
        errors = by_option[index]
        at_top = sum(1 for sub in errors if sub.absolute_path == error.absolute_path)
        return (at_top, len(errors))

    best = min(by_option, key=distance)
    return [p for sub in by_option[best] for p in _explain(sub, path, defs)]
