"""What a step sees, returns and may ask when it runs: the entity's working copy and how it
ended (`EntityState`, `Outcome`), the run-level facts (`StepContext`), how the entity goes on
(`Flow`), and the engine's ports (`StepEngine`: implemented by the run engine in
`jobs.engine`, and by `DryRun` for the test endpoint)."""

import datetime
import json
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

from entities.json_values import json_equal
from workflows.steps.waits import WaitRequest
from workflows.usage import ZERO, Usage


class StepError(Exception):
    """A step failed for one entity; the message says why (errors from outside, such as a
    provider or a webhook, were already retried as far as their policy goes)."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


MISSING = object()


def json_copy(value: Any) -> Any:
    """A copy of a JSON value (dicts, lists and scalars, as parsed or built for JSON): the
    containers copied, the scalars shared (immutable). About three times cheaper than
    `copy.deepcopy`, which a resumed chunk paid twice per entity on a shared resolution."""
    if isinstance(value, dict):
        return {key: json_copy(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [json_copy(item) for item in value]
    return value


def changes_apply(data: dict, changes: dict, removed) -> dict:
    """`data` with the top-level keys `removed` dropped and `changes` set, in place (see
    `EntityState.changes`); returns it."""
    for key in removed:
        data.pop(key, None)
    data.update(changes)
    return data


def get_path(data: dict, path: str, default: Any = None) -> Any:
    node: Any = data
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return default
        node = node[part]
    return node


def set_path(data: dict, path: str, value: Any) -> None:
    *parents, last = path.split(".")
    node = data
    for part in parents:
        child = node.get(part)
        if not isinstance(child, dict):
            child = node[part] = {}
        node = child
    node[last] = value


def remove_path(data: dict, path: str) -> Any:
    *parents, last = path.split(".")
    node = data
    for part in parents:
        node = node.get(part)
        if not isinstance(node, dict):
            return MISSING
    return node.pop(last, MISSING)


class Outcome(StrEnum):
    """How an entity's way through the steps ended (RUNNING while it is still on its way).

    The engine turns each into the run item's status; STOPPED (a condition stopped the
    entity, its changes kept) is the item status `skipped`, counted as completed."""

    RUNNING = "running"
    COMPLETED = "completed"
    STOPPED = "stopped"
    FAILED = "failed"
    CANCELLED = "cancelled"
    HANDED_OFF = "handed_off"  # runs only: another delivery of the chunk owns the entity now
    WAITING = "waiting"  # runs only: parked at a step until its wait is resolved


@dataclass(slots=True)
class EntityState:
    """One entity going through the steps of a run (or a test).

    `data` is the working copy; `base()` is the entity's data as last committed, from which
    the changes to write are computed (so edits made meanwhile to other keys survive). A run
    loads it as JSON text (`committed_json`) and parses it only if it is needed: most
    entities are written with a version check that needs no base.
    """

    entity_id: str
    status: str
    data: dict
    committed: dict | None  # None until base() parses committed_json
    entity_type_schema: dict | None = None
    version: int = 1
    outputs: dict = field(default_factory=dict)
    next_step: int = 0
    outcome: Outcome = Outcome.RUNNING
    error: str = ""
    step_id: str = ""
    usage: dict = field(default_factory=dict)
    log: list[tuple[str, str, str]] = field(default_factory=list)  # (level, step_id, message)
    trace: list[dict] = field(default_factory=list)  # each step's outcome, for the test endpoint
    publish_status: str | None = None  # a publish left for the entity's final commit
    committed_json: str | None = None
    # A person's decision since the last commit (a review: {"stepId", "userId"}), which the
    # next commit records as its source.
    decided_by: dict | None = None
    # Of `usage`, what a run's totals hold already: all of it when the entity was parked
    # (the run counts a waiting entity's usage), and a wait's model calls (a provider batch's
    # answers, counted when collected). A chunk adds the rest when it ends or parks the entity.
    usage_counted: Usage = ZERO
    # The entity's status and publishedAt as stored at `version`, when the run read them
    # with it: a commit that sets the status computes its revision's changes from them
    # instead of reading the entity again.
    stored: tuple[str, datetime.datetime | None] | None = None

    @property
    def alive(self) -> bool:
        return self.outcome == Outcome.RUNNING

    def base(self) -> dict:
        if self.committed is None:
            self.committed = json.loads(self.committed_json)
        return self.committed

    @property
    def dirty(self) -> bool:
        return not json_equal(self.data, self.base())

    def changes(self) -> tuple[dict, list[str]]:
        """The top-level keys set (new or changed) and removed since the last commit: what a
        checkpoint or a review stores instead of a copy of the entity."""
        base = self.base()
        changed = {
            key: value
            for key, value in self.data.items()
            if key not in base or not json_equal(base[key], value)
        }
        return changed, [key for key in base if key not in self.data]

    def template_context(self, run_id: str) -> dict:
        # No copies: the immutable sandbox lets a template read these, never change them.
        return {
            "entity": {**self.data, "id": self.entity_id, "status": self.status},
            "steps": self.outputs,
            "run": {"id": run_id},
        }

    def fail(self, step_id: str, message: str) -> None:
        # A message may quote what a model or a template produced: text the database stores
        # whatever it holds (no NUL, no lone surrogate, which PostgreSQL refuses).
        message = message.replace("\x00", "").encode("utf-8", "replace").decode()
        self.outcome, self.step_id, self.error = Outcome.FAILED, step_id, message
        self.log.append(("error", step_id, message))
        self.trace.append({"stepId": step_id, "outcome": Outcome.FAILED, "error": message})

    def add_usage(self, usage: dict, step_id: str | None = None) -> None:
        """Add a call's usage (numbers) to the entity's, and to its step's under `steps`:
        estimates read tokens per entity per step."""
        for key, value in usage.items():
            self.usage[key] = self.usage.get(key, 0) + value
        if step_id:
            step = self.usage.setdefault("steps", {}).setdefault(step_id, {})
            for key, value in usage.items():
                step[key] = step.get(key, 0) + value


class StepEngine(Protocol):
    """What a step may ask of the engine running it; every step reaches it as `ctx.engine`.

    The run engine (`jobs.engine.committer.ChunkCommitter`) persists, each write conditional
    on the chunk's lease; `DryRun` (the test endpoint) persists and sends nothing, so a step
    takes the same code path in both and never asks which one it has."""

    def publish(self, states: list[EntityState], status: str, ctx: "StepContext") -> set[str]:
        """Commit the working copies of `states` into their entities, with `status`; returns
        the ids committed (each other state has failed, saying why)."""
        ...

    def checkpoint(self, states: list[EntityState], ctx: "StepContext") -> list[EntityState]:
        """Record `states` as past this step, so a redelivered chunk does not repeat it: just
        before an at-most-once side effect (an email), just after an at-least-once one (a
        webhook). Returns the states this delivery may go on with; each other one has
        failed, or belongs to another delivery now."""
        ...

    def cancelled(self) -> bool:
        """True once the run was cancelled: start no new work. Cheap: call it often."""
        ...

    def heartbeat(self) -> None:
        """Show that the run still moves during a long batch. Cheap: call it often."""
        ...

    def budget_reached(self) -> str | None:
        """None while the run's budget allows a new model call; once its recorded usage
        reached the budget, the message to fail the entities left with. Cheap: call it
        before each call."""
        ...

    def usage_record(self, usage: dict) -> None:
        """Record a finished call's usage against the run's budget now (not at chunk end),
        so every worker's next `budget_reached` counts it."""
        ...

    def budget_reserve(self, usages: list[dict]) -> int:
        """Reserve the estimated usages of calls to be paid for later (a provider batch's)
        against the run's budget, in order while it allows; returns how many were. The
        others must not be sent: `budget_reached` names the budget then."""
        ...

    def wait(self, state: EntityState, ctx: "StepContext", request: WaitRequest) -> bool:
        """Park the entity at this step until a wait of `request`'s kind (`jobs.waits`) is
        resolved; `request` is what the kind stores for it (a kind the engine does not have
        raises `StepError`). The entity then holds no worker; once resolved it goes on at
        the next step (or stops, or fails). Returns whether it was parked: an engine that
        does not wait (the test endpoint's) returns False, and the step goes on as if the
        wait had resolved to go on."""
        ...


class DryRun:
    """The engine of the test endpoint: nothing is committed or sent, nothing is cancelled.
    `publish` gives the working copies their status, as a run's publish would."""

    def publish(self, states: list[EntityState], status: str, ctx: "StepContext") -> set[str]:
        for state in states:
            state.status = status
        return {state.entity_id for state in states}

    def checkpoint(self, states: list[EntityState], ctx: "StepContext") -> list[EntityState]:
        return states

    def cancelled(self) -> bool:
        return False

    def heartbeat(self) -> None:
        return None

    def budget_reached(self) -> str | None:
        return None  # a test has no budget

    def usage_record(self, usage: dict) -> None:
        return None

    def budget_reserve(self, usages: list[dict]) -> int:
        return len(usages)

    def wait(self, state: EntityState, ctx: "StepContext", request: WaitRequest) -> bool:
        return False


@dataclass
class StepContext:
    """The run-level facts a step needs, and the engine it may ask (`engine`). With `dry_run`
    (the test endpoint) a step sends nothing: it reports what it would have sent."""

    run_id: str
    workflow_id: str
    step_id: str
    step_index: int
    engine: StepEngine
    is_last_step: bool = False
    dry_run: bool = False


@dataclass
class Flow:
    """How an entity goes on after a step: to the next one, or `jump` over that many more,
    or `stop` (its changes are kept; the item ends `skipped`)."""

    output: Any = None
    jump: int = 0
    stop: bool = False
