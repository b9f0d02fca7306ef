"""`wait_for_event`: the entity waits, holding no worker, for an event from outside
(`POST /api/v1/events` with the step's `event` name and the `key` rendered for the entity),
then goes on with the event's `data` as the step's output. The engine parks it through the
step context's port (`ctx.engine.wait`, an `EventRequest`: the `event` kind of wait,
`jobs/waits/event/`)."""

from dataclasses import dataclass
from typing import ClassVar

from workflows.steps.base import StepType, advance, template_string
from workflows.steps.fields import field_path
from workflows.steps.registry import register
from workflows.steps.runtime import EntityState, Flow, StepContext, StepError
from workflows.steps.waits import WaitRequest

EVENT_NAME_PATTERN = r"^[a-z0-9_.-]{1,100}$"
MAX_KEY_LENGTH = 500
MAX_TIMEOUT_MINUTES = 366 * 24 * 60


@dataclass(frozen=True)
class EventRequest(WaitRequest):
    """What a `wait_for_event` step asks of its wait: the event's name and the key rendered
    for the entity, how long to wait and what then, and where the event's data goes."""

    kind: ClassVar[str] = "event"

    event: str
    key: str
    timeout_minutes: float | None
    on_timeout: str
    output_field: str


@register
class WaitForEvent(StepType):
    type = "wait_for_event"
    name = "Wait for event"
    description = (
        "Waits, holding no worker, for an event sent to `POST /api/v1/events` with this "
        "`event` name and the `key` rendered for the entity (e.g. `{{ entity.sku }}`); the "
        "event's `data` is the step's output (`steps.<id>.data`) and, with `outputField`, is "
        "written into the working copy. An event sent up to EVENT_KEEP_MINUTES before the "
        "entity reaches the step still wakes it. After `timeoutMinutes` without one, "
        "`onTimeout` fails the entity (default), stops it, or lets it go on without data. "
        "The test endpoint reports what it would wait for and goes on."
    )
    config_schema = {
        "type": "object",
        "additionalProperties": False,
        "required": ["event", "key"],
        "properties": {
            "event": {
                "type": "string",
                "pattern": EVENT_NAME_PATTERN,
                "description": "The event's name: lower-case letters, digits, `_`, `.`, `-`.",
            },
            "key": template_string("What an event must carry to wake this entity", minLength=1),
            "timeoutMinutes": {
                "type": "number",
                "minimum": 0.01,
                "maximum": MAX_TIMEOUT_MINUTES,
                "description": "Minutes to wait for the event before `onTimeout`.",
            },
            "onTimeout": {
                "type": "string",
                "enum": ["fail", "stop", "continue"],
                "default": "fail",
                "description": "Without an event in time the entity fails, stops (its item "
                "`skipped`) or goes on with `data` null.",
            },
            "outputField": field_path("Where the event's data is written in the working copy."),
        },
    }
    example = {
        "event": "translation.done",
        "key": "{{ entity.sku }}",
        "timeoutMinutes": 1440,
        "onTimeout": "fail",
        "outputField": "translation",
    }

    def run_batch(self, states: list[EntityState], config: dict, ctx: StepContext) -> None:
        for state in states:
            try:
                key = self.render(config["key"], state, ctx).strip()
                if not key or len(key) > MAX_KEY_LENGTH:
                    raise StepError(
                        f"`key` rendered {len(key)} characters: it must be 1 to {MAX_KEY_LENGTH}."
                    )
            except StepError as exc:
                state.fail(ctx.step_id, exc.message)
                continue
            request = EventRequest(
                event=config["event"],
                key=key,
                timeout_minutes=config.get("timeoutMinutes"),
                on_timeout=config["onTimeout"],
                output_field=config.get("outputField", ""),
            )
            if not ctx.engine.wait(state, ctx, request):
                # An engine that does not wait (the test endpoint's): say what for, go on.
                output = {"event": request.event, "key": key, "data": None, "waited": False}
                advance(state, Flow(output=output), ctx)
