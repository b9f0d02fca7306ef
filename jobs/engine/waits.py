"""Waiting, inside a chunk: park the entities a step asked to wait (`StepEngine.wait`) when
the chunk finishes, and apply a wait's resolution when a later delivery resumes one. (What
resolves, expires and cancels waits, and queues resolved entities again, is `jobs.waits`.)

A parked item is `waiting` with its checkpoint (the run's changes to the entity, outputs,
usage, the id of its wait and the attempt that parked it) and `next_step` past the step
that parked it; no task holds it. Parking is conditional on the chunk's lease, like every
write of a chunk, so a chunk delivered twice parks each entity once.
"""

import copy
from typing import NamedTuple

from config.api.ids import new_id
from config.api.storable import unstorable
from config.bulk import rows_update
from jobs.engine.states import checkpoint_of
from jobs.models import ItemStatus, RunItem, Wait
from jobs.waits.base import Parked, kinds
from jobs.waits.services import runs_lock
from workflows.steps.runtime import EntityState, Outcome, set_path
from workflows.usage import Usage


class WaitRequest(NamedTuple):
    """What a step asked through the port: park the entity at `step_index` for `kind`."""

    kind: str
    step_id: str
    step_index: int
    request: dict


def waits_park(
    *, run_id: str, leases: dict, states: list[EntityState], requests: dict[str, WaitRequest]
) -> int:
    """Park `states` (outcome WAITING); call inside the chunk's finishing transaction.
    Returns how many were parked; the others end as their new outcome says: handed off (the
    lease is gone), failed (a working copy the database cannot store) or cancelled (the run
    was cancelled meanwhile).

    The run's row is locked first, so a cancel either comes before (and these entities end
    cancelled) or after (and its batches find them waiting): none is left waiting in a
    cancelled run.
    """
    if not runs_lock(run_ids=[run_id]).get(run_id):
        for state in states:
            state.outcome = Outcome.CANCELLED
        return 0
    parking: dict[int, Parked] = {}
    rows = []
    for state in states:
        pk, attempts = leases[state.entity_id]
        asked = requests[state.entity_id]
        saved = checkpoint_of(state, with_data=True)
        problem = unstorable(saved["changes"], "data")  # the rest came from the database
        if problem:
            state.fail(asked.step_id, f"{problem.field}: {problem.message}")
            continue
        wait = Wait(
            id=new_id("wait"),
            run_id=run_id,
            item_id=pk,
            entity_id=state.entity_id,
            step_id=asked.step_id,
            kind=asked.kind,
        )
        parking[pk] = Parked(wait, state, asked.request)
        # The chunk's finish counts the entity's usage in the run, in this transaction.
        saved.update(wait=wait.pk, attempt=attempts, counted=Usage.of(state.usage).stored())
        rows.append(
            {
                "id": pk,
                "attempts": attempts,
                "step_id": asked.step_id,
                "next_step": asked.step_index + 1,
                "state": saved,
            }
        )
    written = rows_update(
        RunItem,
        rows,
        match=["id", "attempts"],
        copy=["step_id", "next_step", "state"],
        assign={"status": ItemStatus.WAITING},
        where={"status": ItemStatus.RUNNING},
        returning=["id"],
    )
    parked = [parking[row[0]] for row in written]
    for pk, entry in parking.items():
        if pk not in {row[0] for row in written}:
            entry.state.outcome = Outcome.HANDED_OFF
    Wait.objects.bulk_create([entry.wait for entry in parked], batch_size=1000)
    for name in {entry.wait.kind for entry in parked}:
        kinds.get(name).create([entry for entry in parked if entry.wait.kind == name])
    return len(parked)


def waits_apply(*, checkpoints: list[dict | None], states: list[EntityState]) -> None:
    """Apply the resolution of the wait each resumed entity comes back from (`checkpoints`
    are the items' saved states, in the order of `states`). A checkpoint keeps its wait's
    id until a later step moves it, so a redelivered chunk applies it again, alike."""
    wait_ids = [saved["wait"] for saved in checkpoints if saved and "wait" in saved]
    if not wait_ids:
        return
    resolutions = {
        pk: (step_id, resolution)
        for pk, step_id, resolution in Wait.objects.filter(pk__any=wait_ids).values_list(
            "pk", "step_id", "resolution"
        )
    }
    for saved, state in zip(checkpoints, states, strict=True):
        if not saved or "wait" not in saved or not state.alive:
            continue
        step_id, resolution = resolutions.get(saved["wait"], (state.step_id, None))
        _apply(state, step_id, resolution)


def _apply(state: EntityState, step_id: str, resolution: dict | None) -> None:
    state.step_id = step_id
    if resolution is None:
        state.fail(step_id, "The entity's wait was not resolved.")
        return
    if resolution.get("log"):
        state.log.append(("info", step_id, resolution["log"]))
    if resolution.get("usage"):  # what the wait's model calls used (a provider batch)
        state.add_usage(resolution["usage"], step_id)
        # Counted in the run's usage when the batch's results were collected.
        state.usage_counted += Usage.of(resolution["usage"])
    outcome = resolution["outcome"]
    if resolution.get("decidedBy"):
        state.decided_by = {"stepId": step_id, "userId": resolution["decidedBy"]}
    if outcome == "continue":
        state.data.update(copy.deepcopy(resolution.get("data") or {}))
        for path, value in (resolution.get("set") or {}).items():
            set_path(state.data, path, copy.deepcopy(value))
        if "output" in resolution:
            state.outputs[step_id] = resolution["output"]
        return
    # Stopped or failed: the run's changes since the last commit are discarded.
    state.data = copy.deepcopy(state.base())
    if outcome == "stop":
        state.outcome = Outcome.STOPPED
    else:
        state.fail(step_id, resolution.get("error") or "The wait ended the entity.")
