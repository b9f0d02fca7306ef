"""The engine's side of waiting, for the items: park the entities a step asked to wait
(`StepEngine.wait`) when their chunk finishes, apply a wait's resolution when a later
delivery resumes one, queue resolved entities again together in chunks, and cancel a
cancelled run's waits. (Resolving waits and ticking the kinds is `jobs.engine.waits`, the
module kinds of wait call.)

A parked item is `waiting` with its checkpoint (the run's changes to the entity, outputs,
usage, the id of its wait and the attempt that parked it) and `next_step` past the step
that parked it; no task holds it. Parking is conditional on the chunk's lease, like every
write of a chunk, so a chunk delivered twice parks each entity once. Kinds of wait
(`jobs.waits.<kind>`) say only how a wait is created, resolved and cancelled.
"""

import json
from dataclasses import dataclass
from datetime import datetime
from functools import partial

from django.db import connection, transaction
from django.db.models import F, Max, TextField
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Cast
from django.utils import timezone

from config.api.ids import new_id
from config.api.storable import unstorable
from config.bulk import NotBefore, pks_update, rows_insert, rows_update
from jobs import queue
from jobs.engine.states import checkpoint_of
from jobs.item_rows import run_chunk_size
from jobs.models import ItemStatus, Run, RunItem, RunStatus, Wait, WaitStatus
from jobs.waits.base import Parked, ParkedWait, kinds
from workflows.steps.runtime import EntityState, Outcome, StepError, json_copy, set_path
from workflows.steps.waits import NO_OUTPUT, Resolution, WaitRequest
from workflows.usage import ZERO, Usage


@dataclass(frozen=True)
class Asked:
    """What a step asked through the port: park the entity at `step_index` with `request`."""

    step_id: str
    step_index: int
    request: WaitRequest


def wait_asked(request: WaitRequest, *, step_id: str, step_index: int) -> Asked:
    """Check a step's request when the step asks (inside its guard): its kind must be one
    the engine has, or the entity fails at that step."""
    if request.kind not in kinds:
        raise StepError(f"This deployment has no kind of wait {request.kind!r}.")
    return Asked(step_id, step_index, request)


def waits_park(
    *, run_id: str, leases: dict, states: list[EntityState], requests: dict[str, Asked]
) -> list[Parked]:
    """Park `states` (outcome WAITING); call inside the chunk's finishing transaction, then
    `waits_confirm` at its end. Returns the entries parked; the other states end as their
    new outcome says: handed off (the lease is gone) or failed (a working copy the database
    cannot store).

    Set-based: one UPDATE of the items (their checkpoints, under the lease), one INSERT of
    the waits, and each kind's own rows in one INSERT or so, whatever the number of
    entities. The run's row is not locked here but by `waits_confirm`, just before the
    chunk's counters (which lock it anyway), so chunks parking at once do not take turns
    on it for their whole finish."""
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
        wait = ParkedWait(
            new_id("wait"), run_id, pk, state.entity_id, asked.step_id, asked.request.kind
        )
        changes = (saved["changes"], saved["removed"])
        parking[pk] = Parked(wait, state, asked.request, changes)
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
    written = {
        row[0]
        for row in rows_update(
            RunItem,
            rows,
            match=["id", "attempts"],
            copy=["step_id", "next_step", "state"],
            assign={"status": ItemStatus.WAITING},
            where={"status": ItemStatus.RUNNING},
            returning=["id"],
        )
    }
    parked = [entry for pk, entry in parking.items() if pk in written]
    for pk, entry in parking.items():
        if pk not in written:
            entry.state.outcome = Outcome.HANDED_OFF
    now = timezone.now()
    rows_insert(
        Wait,
        (
            {
                "id": entry.wait.pk,
                "run": run_id,
                "item": entry.wait.item_id,
                "entity_id": entry.wait.entity_id,
                "step_id": entry.wait.step_id,
                "kind": entry.wait.kind,
                "status": WaitStatus.WAITING,
                "created_at": now,
            }
            for entry in parked
        ),
        fields=["id", "run", "item", "entity_id", "step_id", "kind", "status", "created_at"],
    )
    for name in sorted({entry.wait.kind for entry in parked}):
        kinds.get(name).create([entry for entry in parked if entry.wait.kind == name])
    return parked


def waits_confirm(*, run_id: str, parked: list[Parked], now: datetime) -> int:
    """Lock the run's row at the end of a chunk's finish that parked entities, and end them
    `cancelled` (with their waits and their kinds' records, as a cancel's batch would) if a
    cancel was asked or the run ended meanwhile: a cancel's batches, which lock the row
    first, either came after this and find them waiting, or came before and missed them
    (they were the chunk's, `running`), which is when they are ended here. Returns how many
    were cancelled."""
    if not parked or runs_lock(run_ids=[run_id]).get(run_id):
        return 0
    return waits_cancel(run_id=run_id, item_ids=[entry.wait.item_id for entry in parked], now=now)


def waits_apply(*, checkpoints: list[dict | None], states: list[EntityState]) -> None:
    """Apply the resolution of the wait each resumed entity comes back from (`checkpoints`
    are the items' saved states, in the order of `states`). A checkpoint keeps its wait's
    id until a later step moves it, so a redelivered chunk applies it again, alike."""
    wait_ids = [saved["wait"] for saved in checkpoints if saved and "wait" in saved]
    if not wait_ids:
        return
    # Read as text and parsed once per distinct text: waits decided together (a bulk
    # decision) share one resolution, stored once per wait.
    parsed: dict[str, Resolution] = {}
    resolutions = {}
    for pk, step_id, text in Wait.objects.filter(pk__any=wait_ids).values_list(
        "pk", "step_id", Cast("resolution", TextField())
    ):
        if text is not None and text not in parsed:
            value = json.loads(text)
            parsed[text] = Resolution.of(value) if value else None
        resolutions[pk] = (step_id, parsed[text] if text is not None else None)
    for saved, state in zip(checkpoints, states, strict=True):
        if not saved or "wait" not in saved or not state.alive:
            continue
        step_id, resolution = resolutions.get(saved["wait"], (state.step_id, None))
        resolution_apply(state, step_id, resolution)


def resolution_apply(state: EntityState, step_id: str, resolution: Resolution | None) -> None:
    """How the entity goes on from its wait at `step_id`: its answer set, stopped or failed
    (an experiment's shadow sides resume from their provider batch through this too)."""
    state.step_id = step_id
    if resolution is None:
        state.fail(step_id, "The entity's wait was not resolved.")
        return
    if resolution.log:
        state.log.append(("info", step_id, resolution.log))
    if resolution.usage or resolution.calls:  # what the wait's model calls used (a batch)
        calls = {"calls": resolution.calls} if resolution.calls else {}
        state.add_usage({**resolution.usage.stored(), **calls}, step_id)
        # Counted in the run's usage when the batch's results were collected.
        state.usage_counted += resolution.usage
    outcome = resolution.outcome
    if resolution.decided_by:
        state.decided_by = {"stepId": step_id, "userId": resolution.decided_by}
    if outcome == "continue":
        # Copies: the entities resumed together share one resolution.
        if resolution.data:
            state.data.update(json_copy(resolution.data))
        for path, value in resolution.set.items():
            set_path(state.data, path, json_copy(value))
        for path, key in resolution.set_from_output.items():
            set_path(state.data, path, json_copy(resolution.output[key]))
        if resolution.output is not NO_OUTPUT:
            state.outputs[step_id] = json_copy(resolution.output)
        return
    # Stopped or failed: the run's changes since the last commit are discarded.
    state.data = json_copy(state.base())
    if outcome == "stop":
        state.outcome = Outcome.STOPPED
    else:
        state.fail(step_id, resolution.error or "The wait ended the entity.")


def runs_lock(*, run_ids, exclusive: bool = False) -> dict[str, bool]:
    """Lock runs' rows (in id order) and say, for each, whether it goes on: open, and no
    cancel asked. `run_ids` may be a subquery.

    Everything that changes waits locks their runs (a decision, a resume, a kind's
    resolution, a chunk parking entities) with a `FOR KEY SHARE` lock: they do not exclude
    one another, nor the chunks' counter UPDATEs (a bulk decision must not stop the chunks
    it resumed from counting); a cancel takes the `exclusive` lock (`FOR UPDATE`), which
    waits for all of them and holds them off, so a cancel is seen by all or none. Resolving
    waits then locks the runs whose entities it queues or whose resume it asks for `FOR NO
    KEY UPDATE`, once and in id order (`jobs.engine.waits._resume`), to the end of the
    transaction: the chunks' counters of those runs wait for its COMMIT. (SQLite runs one
    writer at a time: no lock clause there.)"""
    if isinstance(run_ids, set | frozenset | list | tuple) and not run_ids:
        return {}
    query = (
        Run.objects.filter(pk__in=run_ids)
        .order_by("pk")
        .values_list("pk", "status", "cancel_requested_at")
    )
    if exclusive:
        rows = list(query.select_for_update())
    elif connection.vendor == "postgresql":
        sql, params = query.query.get_compiler(using=query.db).as_sql()
        with connection.cursor() as cursor:
            cursor.execute(f"{sql} FOR KEY SHARE", params)
            rows = cursor.fetchall()
    else:
        rows = list(query)
    return {
        pk: status in RunStatus.open() and cancel_requested_at is None
        for pk, status, cancel_requested_at in rows
    }


def run_turn_take(run_id: str, work: str) -> None:
    """Take this run's turn at `work` to the end of the transaction: transactions doing the
    same work on the same run wait for one another (an advisory lock), nothing else does.
    (SQLite runs one writer at a time.)"""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [f"{work}:{run_id}"])


def waits_requeue(*, run_id: str, item_ids: list[int], size: int, now: datetime) -> int:
    """Queue the run's `waiting` items named again (their waits resolved), in new chunks of
    about `size` (as even as the count allows: 1,000 at 400 are 3 chunks of 333-334), each
    item `pending` at the step after its wait; call under the run's lock. One UPDATE per
    new chunk and one of the run's `waiting` counter, the chunks' tasks sent after COMMIT.
    Returns how many were queued."""
    count = -(-len(item_ids) // size)
    # Requeues of one run (two decisions, a decision and the resume task) take turns here,
    # so that no two number new chunks alike.
    run_turn_take(run_id, "requeue")
    first = (RunItem.objects.filter(run_id=run_id).aggregate(last=Max("chunk"))["last"] or 0) + 1
    item_ids = sorted(item_ids)
    moved = []
    for index in range(count):  # one UPDATE per new chunk, by the items' primary keys
        moved += pks_update(
            RunItem,
            item_ids[index * len(item_ids) // count : (index + 1) * len(item_ids) // count],
            assign={"status": ItemStatus.PENDING, "chunk": first + index},
            where={"status": ItemStatus.WAITING},
            returning=["chunk"],
        )
    if not moved:
        return 0
    Run.objects.filter(pk=run_id).update(waiting=F("waiting") - len(moved), heartbeat_at=now)
    chunks = sorted({chunk for (chunk,) in moved})
    transaction.on_commit(partial(queue.chunks_enqueue, run_id, chunks))
    return len(moved)


@transaction.atomic
def run_waits_resume(*, run_id: str) -> int:
    """Queue again every resolved wait's entity of the run, in new chunks of the run's chunk size
    (items `pending`, resuming at the step after their wait under a fresh lease); returns
    how many. Safe to run twice: a wait is resumed once."""
    goes_on = runs_lock(run_ids=[run_id]).get(run_id)
    if goes_on is None:
        return 0
    Run.objects.filter(pk=run_id).update(resume_requested_at=None)
    if not goes_on:
        return 0  # a cancel ends the run's waiting items
    item_ids = list(
        _parked_on(run_id).filter(status=WaitStatus.RESOLVED).values_list("item_id", flat=True)
    )
    if not item_ids:
        return 0
    size = run_chunk_size(Run.objects.select_related("workflow_version").get(pk=run_id))
    return waits_requeue(run_id=run_id, item_ids=item_ids, size=size, now=timezone.now())


def _parked_on(run_id: str):
    """The waits the run's items are parked on now: a wait whose item is `waiting` with this
    wait's id in its checkpoint. (A resolved wait is not written again when its item is
    resumed: the item's status says so, and a later wait of the same item replaces the id.)"""
    return (
        Wait.objects.filter(run_id=run_id, item__status=ItemStatus.WAITING)
        .alias(current=KeyTextTransform("wait", "item__state"))
        .filter(current=F("pk"))
    )


def waits_cancel(*, run_id: str, item_ids: list[int], now: datetime) -> int:
    """End these waiting items of a run being cancelled `cancelled`, with the waits they are
    parked on and the kinds' records of those (a pending review becomes `cancelled`, a provider
    batch is told); call under the run's lock, the items locked. Returns how many ended.

    Each item keeps the usage its entity had, with what its wait's model calls used (a
    resolved wait's answer not applied yet, a provider batch's earlier attempts). The run's
    totals counted all of that already, when the entity was parked and when the batch's
    answers were collected, so nothing is added to them here."""
    items = list(
        RunItem.objects.filter(pk__any=item_ids, status=ItemStatus.WAITING).values_list(
            "pk", "state__usage", "state__wait"
        )
    )
    wait_ids = [wait_id for _, _, wait_id in items if wait_id]
    waits = {
        pk: (kind, status, Usage.of(usage))
        for pk, kind, status, usage in Wait.objects.filter(pk__any=wait_ids).values_list(
            "pk", "kind", "status", "resolution__usage"
        )
    }
    spent: dict[str, Usage] = {}
    for name in sorted({kind for kind, _, _ in waits.values()}):
        unresolved = [
            pk
            for pk, (kind, status, _) in waits.items()
            if kind == name and status == WaitStatus.WAITING
        ]
        if unresolved:
            spent.update(kinds.get(name).cancel(run_id=run_id, wait_ids=unresolved))
    Wait.objects.filter(pk__any=wait_ids).update(status=WaitStatus.CANCELLED)
    rows = []
    for pk, usage, wait_id in items:
        _, status, resolved = waits.get(wait_id, ("", "", ZERO))
        more = resolved if status == WaitStatus.RESOLVED else spent.get(wait_id, ZERO)
        usage = usage or {}
        rows.append({"id": pk, "usage": {**usage, **(Usage.of(usage) + more).stored()}})
    rows_update(
        RunItem,
        rows,
        match=["id"],
        copy=["usage"],
        assign={
            "status": ItemStatus.CANCELLED,
            "completed_at": NotBefore("started_at", now),
            "state": None,
        },
    )
    return len(rows)
