"""What a step sees and returns when it runs: the entity's working copy, the step outputs so
far, and the run it belongs to."""

import json
from dataclasses import dataclass, field
from typing import Any


class StepError(Exception):
    """A step failed for one entity; the message says why (errors from outside, such as a
    provider or a webhook, were already retried as far as their policy goes)."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


MISSING = object()


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
    outcome: str = "running"  # running | completed | skipped | failed | cancelled | waiting
    error: str = ""
    step_id: str = ""
    usage: dict = field(default_factory=dict)
    log: list[tuple[str, str, str]] = field(default_factory=list)  # (level, step_id, message)
    trace: list[dict] = field(default_factory=list)  # each step's outcome, for the test endpoint
    publish_status: str | None = None  # a publish left for the entity's final commit
    committed_json: str | None = None

    @property
    def alive(self) -> bool:
        return self.outcome == "running"

    def base(self) -> dict:
        if self.committed is None:
            self.committed = json.loads(self.committed_json)
        return self.committed

    @property
    def dirty(self) -> bool:
        return self.data != self.base()

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
        self.outcome, self.step_id, self.error = "failed", step_id, message
        self.log.append(("error", step_id, message))
        self.trace.append({"stepId": step_id, "outcome": "failed", "error": message})

    def add_usage(self, usage: dict) -> None:
        for key, value in usage.items():
            self.usage[key] = self.usage.get(key, 0) + value


@dataclass
class StepContext:
    """The run-level facts a step needs. `dry_run` (the test endpoint) commits and sends
    nothing: side-effecting steps report what they would have done."""

    run_id: str
    workflow_id: str
    step_id: str
    step_index: int
    is_last_step: bool = False
    dry_run: bool = False
    # Publishes working copies, claims side effects, parks entities that wait (`wait`):
    # jobs.execution.ChunkCommitter.
    committer: Any = None
    cancelled: Any = None  # a callable: True once the run was cancelled

    def is_cancelled(self) -> bool:
        return bool(self.cancelled and self.cancelled())


@dataclass
class Flow:
    """How an entity goes on after a step: to the next one, or `skip` more, or `stop`."""

    output: Any = None
    skip: int = 0
    stop: bool = False
