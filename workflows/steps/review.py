"""`review`: a person reads what the run made of the entity before it goes on. The entity
waits, holding no worker, until its review is approved (with edits, or not), rejected, or
expires; the engine parks it through the step context's port (`ctx.engine.wait`) and
resumes it after."""

from dataclasses import dataclass
from typing import ClassVar

from django.contrib.auth.models import Group

from config.api.errors import FieldError
from entities.json_values import json_equal
from workflows.steps.base import StepType, advance, template_string
from workflows.steps.fields import field_path
from workflows.steps.registry import register
from workflows.steps.runtime import MISSING, EntityState, Flow, StepContext, StepError, get_path
from workflows.steps.waits import WaitRequest
from workflows.templating import names_read

MAX_TIMEOUT_MINUTES = 366 * 24 * 60


@register
class Review(StepType):
    type = "review"
    name = "Review"
    description = (
        "Waits for a person to approve or reject the working copy, shown beside the entity as "
        "stored (`fields`, by default those the run changed), before the entity goes on. "
        "Approving may edit the values; rejecting `stop`s the entity (its item is `skipped`) "
        "or `fail`s it, and the run's changes to it are discarded. Unanswered reviews are "
        "decided by `onTimeout` after `timeoutMinutes`. The test endpoint reports what the "
        "review would ask and goes on as if approved."
    )
    config_schema = {
        "type": "object",
        "additionalProperties": False,
        "required": ["instructions"],
        "properties": {
            "instructions": template_string("What the reviewer should check", minLength=1),
            "fields": {
                "type": "array",
                "minItems": 1,
                "maxItems": 100,
                "items": field_path("A field shown side by side and editable."),
                "description": "The fields shown (default: the fields the run changed).",
            },
            "group": {
                "type": "string",
                "minLength": 1,
                "maxLength": 150,
                "description": "The Django group whose members may decide (superusers always may).",
            },
            "timeoutMinutes": {
                "type": "integer",
                "minimum": 1,
                "maximum": MAX_TIMEOUT_MINUTES,
                "description": "Minutes after which an unanswered review is decided by "
                "`onTimeout`.",
            },
            "onTimeout": {
                "type": "string",
                "enum": ["approve", "reject"],
                "default": "reject",
                "description": "What an expired review decides.",
            },
            "onReject": {
                "type": "string",
                "enum": ["stop", "fail"],
                "default": "stop",
                "description": "A rejected entity stops (its item `skipped`) or fails, the "
                "error naming who rejected it and their comment.",
            },
        },
    }
    example = {
        "instructions": "Check the description of {{ entity.title }} reads well.",
        "fields": ["description"],
        "timeoutMinutes": 1440,
        "onTimeout": "reject",
        "onReject": "stop",
    }

    def extra_problems(self, config: dict, *, path: str) -> list[FieldError]:
        if "group" in config and not Group.objects.filter(name=config["group"]).exists():
            return [FieldError(f"{path}.group", f"No group named {config['group']!r} exists.")]
        return []

    def run_batch(self, states: list[EntityState], config: dict, ctx: StepContext) -> None:
        # Instructions read from the entity (or its outputs, or a function) may differ per
        # entity; ones that read nothing, or only the run, are the same for all of them.
        own = bool(names_read(config["instructions"]) - {"run"})
        for state in states:
            try:
                instructions = self.render(config["instructions"], state, ctx)
            except StepError as exc:
                state.fail(ctx.step_id, exc.message)
                continue
            request = ReviewRequest(
                instructions=instructions,
                instructions_own=own,
                fields=config.get("fields") or changed_fields(state),
                group=config.get("group", ""),
                timeout_minutes=config.get("timeoutMinutes"),
                on_timeout=config["onTimeout"],
                on_reject=config["onReject"],
            )
            if not ctx.engine.wait(state, ctx, request):
                # An engine that does not wait (the test endpoint's): report what the review
                # would ask and go on as if approved.
                output = {
                    "approved": True,
                    "review": {**request.shown(), "changes": changes(state, request.fields)},
                }
                advance(state, Flow(output=output), ctx)


@dataclass(frozen=True)
class ReviewRequest(WaitRequest):
    """What a `review` step asks of its wait: the instructions as rendered for the entity,
    the fields shown and editable, who may decide, and what an expiry or a rejection does."""

    kind: ClassVar[str] = "review"

    instructions: str
    # Whether the instructions were rendered from the entity (so may be its own text), not
    # the same for every entity of the run.
    instructions_own: bool
    fields: list[str]
    group: str
    timeout_minutes: float | None
    on_timeout: str
    on_reject: str

    def shown(self) -> dict:
        """As the test endpoint reports it (the step's config names)."""
        return {
            "instructions": self.instructions,
            "fields": self.fields,
            "group": self.group,
            "timeoutMinutes": self.timeout_minutes,
            "onTimeout": self.on_timeout,
            "onReject": self.on_reject,
        }


def changed_fields(state: EntityState) -> list[str]:
    """The top-level fields the run changed (set, changed or removed) since it last
    committed the entity."""
    base = state.base()
    keys = set(state.data) | set(base)
    return sorted(
        key for key in keys if not json_equal(state.data.get(key, MISSING), base.get(key, MISSING))
    )


def changes(state: EntityState, fields: list[str] | None = None) -> list[dict]:
    """`{field, before, after}` for each field: as last committed, and in the working copy."""
    return [
        {"field": path, "before": get_path(state.base(), path), "after": get_path(state.data, path)}
        for path in fields or changed_fields(state)
    ]
