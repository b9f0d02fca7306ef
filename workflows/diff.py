"""What changed between two versions of a workflow's steps, step by step.

Steps are matched by their id. A step is `added` or `removed` when only one side has it,
`changed` when its type or a config value differs, and `moved` when only its place among the
steps both sides have differs (inserting a step before it does not move it: the order kept is
the longest one common to both sides). Config values are compared by path (`config.prompt`,
`config.model.temperature`); a list is one value. A write-only value (a secret) is compared
like any other, but shown as `HIDDEN`.
"""

from dataclasses import asdict, dataclass, field
from difflib import SequenceMatcher
from typing import Any, Literal

from entities.json_values import json_equal
from workflows.steps import registry

Change = Literal["added", "removed", "moved", "changed"]
HIDDEN = "(hidden)"


@dataclass(frozen=True)
class FieldChange:
    path: str
    before: Any
    after: Any


@dataclass(frozen=True)
class StepChange:
    step_id: str
    change: Change
    before: dict | None
    after: dict | None
    fields: list[FieldChange] = field(default_factory=list)

    def as_json(self) -> dict:
        return {
            "stepId": self.step_id,
            "change": self.change,
            "before": self.before,
            "after": self.after,
            "fields": [asdict(change) for change in self.fields],
        }


_MISSING = object()


def _flatten(value: Any, prefix: str) -> dict[str, Any]:
    """`{"a": {"b": 1}}` under `config` -> `{"config.a.b": 1}`; an empty object is a value."""
    if isinstance(value, dict) and value:
        flat = {}
        for key, inner in value.items():
            flat.update(_flatten(inner, f"{prefix}.{key}"))
        return flat
    return {prefix: value}


def _shown(step: dict) -> dict:
    if step["type"] not in registry:  # a type this deployment no longer has
        return step
    return {**step, "config": registry.get(step["type"]).shown_config(step["config"])}


def _secret_paths(step: dict) -> set[str]:
    if step["type"] not in registry:
        return set()
    return {f"config.{key}" for key in registry.get(step["type"]).write_only}


def _field_changes(before: dict, after: dict) -> list[FieldChange]:
    old = {"type": before["type"], **_flatten(before["config"], "config")}
    new = {"type": after["type"], **_flatten(after["config"], "config")}
    secret = _secret_paths(before) | _secret_paths(after)
    changes = []
    for path in [*old, *(path for path in new if path not in old)]:
        was, now = old.get(path, _MISSING), new.get(path, _MISSING)
        if not json_equal(was, now):  # `true` to `1` is a change of a step's config
            hide = any(path == key or path.startswith(f"{key}.") for key in secret)
            changes.append(
                FieldChange(
                    path,
                    None if was is _MISSING else HIDDEN if hide else was,
                    None if now is _MISSING else HIDDEN if hide else now,
                )
            )
    return changes


def steps_diff(before: list[dict], after: list[dict]) -> list[StepChange]:
    """The changes that turn `before` into `after` (each `[{id, type, config}]` as stored),
    in the order of `after`, removed steps last; steps are shown as the API shows them."""
    old = {step["id"]: (index, step) for index, step in enumerate(before)}
    new = {step["id"]: (index, step) for index, step in enumerate(after)}
    kept_old = [step["id"] for step in before if step["id"] in new]
    kept_new = [step["id"] for step in after if step["id"] in old]
    in_order = set()
    matcher = SequenceMatcher(a=kept_old, b=kept_new, autojunk=False)
    for block in matcher.get_matching_blocks():
        in_order.update(kept_old[block.a : block.a + block.size])
    changes = []
    for step_id, (index, step) in new.items():
        if step_id not in old:
            changes.append(StepChange(step_id, "added", None, _shown(step)))
            continue
        was_index, was = old[step_id]
        edits = _field_changes(was, step)
        moves = [] if step_id in in_order else [FieldChange("position", was_index, index)]
        if edits or moves:
            change: Change = "changed" if edits else "moved"
            changes.append(StepChange(step_id, change, _shown(was), _shown(step), moves + edits))
    changes.extend(
        StepChange(step_id, "removed", _shown(step), None)
        for step_id, (_, step) in old.items()
        if step_id not in new
    )
    return changes
