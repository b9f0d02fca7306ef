"""`delay`: the entity waits for a time, holding no worker, then goes on: `minutes` after it
reached the step, or `until` a time its template renders. The engine parks it through the
step context's port (`ctx.engine.wait`, a `DelayRequest`: the `delay` kind of wait,
`jobs/waits/delay/`), which resumes it at that time."""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import ClassVar

from django.utils import timezone

from config.api.errors import FieldError
from workflows.steps.base import StepType, advance, template_string
from workflows.steps.registry import register
from workflows.steps.runtime import EntityState, Flow, StepContext, StepError
from workflows.steps.waits import WaitRequest

MAX_MINUTES = 366 * 24 * 60  # a year (a leap year's)


@dataclass(frozen=True)
class DelayRequest(WaitRequest):
    """What a `delay` step asks of its wait: go on at `until` (ISO 8601, UTC)."""

    kind: ClassVar[str] = "delay"

    until: str


@register
class Delay(StepType):
    type = "delay"
    name = "Delay"
    description = (
        "Waits, holding no worker, until a time: `minutes` after the entity reached the step "
        "(fractions allowed, up to a year), or `until` a time its template renders (ISO 8601 "
        "with a zone, or epoch milliseconds); exactly one of the two. A time already past goes "
        "on at once. The output is `{until}`. The test endpoint reports the time it would wait "
        "until and goes on."
    )
    config_schema = {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "minutes": {
                "type": "number",
                "exclusiveMinimum": 0,
                "maximum": MAX_MINUTES,
                "description": "How long to wait, in minutes (more than 0, up to a year).",
            },
            "until": template_string(
                "The time to wait until: ISO 8601 with a zone (`2026-03-02T09:00:00+01:00`) "
                "or epoch milliseconds",
                minLength=1,
            ),
        },
    }
    example = {"minutes": 60}

    def extra_problems(self, config: dict, *, path: str) -> list[FieldError]:
        if ("minutes" in config) == ("until" in config):
            return [FieldError(path, "Give exactly one of `minutes` and `until`.")]
        return []

    def run_batch(self, states: list[EntityState], config: dict, ctx: StepContext) -> None:
        now = timezone.now()
        for state in states:
            try:
                until = self._until(config, state, ctx, now)
            except StepError as exc:
                state.fail(ctx.step_id, exc.message)
                continue
            shown = until.isoformat().replace("+00:00", "Z")
            if until <= now:
                advance(state, Flow(output={"until": shown}), ctx)  # already past: on at once
            elif not ctx.engine.wait(state, ctx, DelayRequest(until=shown)):
                # An engine that does not wait (the test endpoint's): say until when, go on.
                advance(state, Flow(output={"until": shown, "waited": False}), ctx)

    def _until(self, config: dict, state: EntityState, ctx: StepContext, now: datetime):
        if "minutes" in config:
            return now + timedelta(minutes=config["minutes"])
        return time_parse(self.render(config["until"], state, ctx).strip())


def _size(text: str) -> str:
    """What `until` rendered, as an error names it: its length, never the text, which is the
    entity's data (an item's error and the run's log are read by whoever may view runs)."""
    return f"{len(text)} character{'' if len(text) == 1 else 's'}"


def time_parse(text: str) -> datetime:
    """An ISO 8601 time with a zone, or epoch milliseconds, as an aware UTC datetime."""
    if text.lstrip("-").isdigit():
        try:
            return datetime.fromtimestamp(int(text) / 1000, tz=UTC)
        except (OverflowError, OSError, ValueError):
            raise StepError(
                f"`until` rendered {_size(text)}: epoch milliseconds out of range."
            ) from None
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise StepError(
            f"`until` rendered {_size(text)}: not an ISO 8601 time nor epoch milliseconds."
        ) from None
    if parsed.tzinfo is None:
        raise StepError(f"`until` rendered {_size(text)}: the time has no zone (add Z or +01:00).")
    try:
        return parsed.astimezone(UTC)
    except OverflowError:  # a time of year 1 or 9999 whose UTC falls outside them
        raise StepError(f"`until` rendered {_size(text)}: a time out of range.") from None
