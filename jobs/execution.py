"""Executing one chunk of a run: claim its items, take the entities through the steps with
batched reads and writes, record the outcome. Safe to run again for the same chunk.

Items are leased by bumping `attempts`: every later write for an item (a checkpoint, the final
status) is conditional on the item still carrying this delivery's attempt, so when a chunk is
delivered twice (a worker died, a visibility timeout passed) only one delivery acts on each
entity, and no entity is published or notified twice.
"""

import copy
import json
import time
from collections import Counter
from datetime import timedelta
from typing import NamedTuple

from django.db import connection, transaction
from django.db.models import TextField
from django.db.models.functions import Cast
from django.utils import timezone

from config.api.storable import unstorable
from config.bulk import bulk_update_rows
from entities.models import Entity
from entities.schemas import data_encode
from entities.services import WorkingCopy, entities_commit
from jobs.models import ItemStatus, Run, RunItem, RunLog, RunStatus
from jobs.services import run_finalize_if_done, run_mark_running
from jobs.waits.parking import HANDED_OFF, WAITING, WaitRequest, waits_apply, waits_park
from workflows.pipeline import steps_run
from workflows.steps.runtime import EntityState, StepContext

CANCEL_CHECK_INTERVAL_S = 0.5
HEARTBEAT_EVERY = timedelta(seconds=5)
ITEM_OUTCOMES = {
    "completed": ItemStatus.COMPLETED,
    "skipped": ItemStatus.SKIPPED,
    "failed": ItemStatus.FAILED,
    "cancelled": ItemStatus.CANCELLED,
}


def _checkpoint(state: EntityState, *, with_data: bool) -> dict:
    """What a redelivered chunk resumes from. Right after a publish the working copy is what
    the entity holds, so it is read back from the entity instead of being written twice."""
    saved = {
        "outputs": state.outputs,
        "status": state.status,
        "version": state.version,
        "usage": state.usage,
    }
    if with_data:
        saved.update(data=state.data, committed=state.base())
    return saved


class ChunkCommitter:
    """Persists what the steps of one chunk do, each write conditional on the lease."""

    def __init__(self, run_id: str, leases: dict[str, tuple[int, int]]):
        self.run_id = run_id
        self.leases = leases  # entity id -> (item pk, attempts)
        self.logs: list[RunLog] = []  # chunk-level lines, written with the outcomes
        self.waits: dict[str, WaitRequest] = {}  # entity id -> what its step waits for

    def _lock(self, states: list[EntityState]) -> dict[str, "LockedItem"]:
        """Lock the items of `states` (in a fixed order) and read their lease fields."""
        return {
            row[1]: LockedItem(*row)
            for row in RunItem.objects.select_for_update()
            .filter(pk__any=[self.leases[state.entity_id][0] for state in states])
            .order_by("pk")
            .values_list("pk", "entity_id", "status", "attempts", "next_step")
        }

    def _leased(self, item: "LockedItem | None", state: EntityState) -> bool:
        return (
            item is not None
            and item.status == ItemStatus.RUNNING
            and item.attempts == self.leases[state.entity_id][1]
        )

    def _owned(self, states: list[EntityState], step_index: int) -> tuple[list, dict]:
        """Lock the items of `states`; those still leased to us at this step, by entity."""
        items = self._lock(states)
        owned = []
        for state in states:
            item = items.get(state.entity_id)
            if self._leased(item, state) and item.next_step <= step_index:
                owned.append(state)
            else:
                state.outcome = HANDED_OFF
        return owned, items

    def _save_checkpoints(
        self, states: list[EntityState], items: dict, next_step: int, *, with_data: bool
    ) -> None:
        bulk_update_rows(
            [
                RunItem(
                    pk=items[state.entity_id].pk,
                    next_step=next_step,
                    step_id="",
                    state=_checkpoint(state, with_data=with_data),
                )
                for state in states
            ],
            ["next_step", "state", "step_id"],
        )

    @transaction.atomic
    def claim(self, states: list[EntityState], ctx: StepContext) -> list[EntityState]:
        """Before a side effect (a notification): move the checkpoint past the step, so a
        redelivered chunk does not repeat it. Returns the states this delivery may act on."""
        owned, items = self._owned(states, ctx.step_index)
        storable = []
        for state in owned:  # the checkpoint holds the working copy: it must be storable
            problem = unstorable(state.data, "data")
            if problem:
                state.fail(ctx.step_id, f"{problem.field}: {problem.message}")
            else:
                storable.append(state)
        self._save_checkpoints(storable, items, ctx.step_index + 1, with_data=True)
        return storable

    def wait(self, state: EntityState, ctx: StepContext, *, kind: str, request: dict) -> None:
        """Park the entity at this step until a wait of `kind` (`jobs.waits`) is resolved;
        it is stored when the chunk finishes and holds no worker meanwhile."""
        state.outcome, state.step_id = WAITING, ctx.step_id
        self.waits[state.entity_id] = WaitRequest(kind, ctx.step_id, ctx.step_index, request)

    def publish(self, states: list[EntityState], status: str, ctx: StepContext) -> set[str]:
        """Publish working copies; returns the ids published, the others have failed.

        A publish that is the workflow's last step joins the entity's final commit (one
        transaction instead of two, same guarantees); any other commits now, together with
        the checkpoint past this step, so a redelivered chunk never publishes twice.
        """
        if ctx.is_last_step:
            for state in states:
                state.publish_status, state.status = status, status
            return {state.entity_id for state in states}
        with transaction.atomic():
            owned, items = self._owned(states, ctx.step_index)
            published = self._commit(owned, status, ctx.step_id)
            self._save_checkpoints(published, items, ctx.step_index + 1, with_data=False)
            RunLog.objects.bulk_create(self.logs)  # the line goes with what it reports
            self.logs = []
        return {state.entity_id for state in published}

    def _commit(
        self, states: list[EntityState], status: str | None, step_id: str | None, *, final=False
    ) -> list:
        """Merge the working copies into the entities (with `status`, for a publish); returns
        the states committed, the others have failed at `step_id` (default: their last).
        After the `final` commit no step reads the committed copy: it is not kept."""
        results = entities_commit(
            copies=[
                WorkingCopy(s.entity_id, s.base, s.data, s.version, s.entity_type_schema)
                for s in states
            ],
            status=status,
        )
        committed = []
        for state in states:
            result = results[state.entity_id]
            where = step_id or state.step_id
            if isinstance(result, str):
                state.fail(where, result)
                continue
            state.version = result
            if not final:
                state.committed = copy.deepcopy(state.data)
            if status is not None:
                state.status = status
            committed.append(state)
        if status is not None and committed:
            # One line per chunk, not per entity: 10,000 "published" lines would bury the
            # failures the log is read for.
            self.logs.append(
                RunLog(
                    run_id=self.run_id,
                    message=f"Published {len(committed)} entities as {status}.",
                    step_id=step_id or committed[0].step_id,
                )
            )
        return committed

    @transaction.atomic
    def finish(self, states: list[EntityState]) -> bool:
        """Record every outcome this delivery still holds the lease for, commit the finished
        entities' remaining changes, and move the run's counters, in one transaction.
        Returns whether the counters now add up to the run's total."""
        now = timezone.now()
        waiting = [state for state in states if state.outcome == WAITING]
        parked = 0
        if waiting:  # first: it locks the run's row, and may end some of them instead
            parked = waits_park(
                run_id=self.run_id, leases=self.leases, states=waiting, requests=self.waits
            )
        states = self._record_outcomes(
            [state for state in states if state.outcome not in (HANDED_OFF, WAITING)], now
        )
        finished = [s for s in states if s.outcome in ("completed", "skipped")]
        unfinished = []  # failed at their final commit (the schema, the size limit)
        for status in {state.publish_status for state in finished}:
            batch = [s for s in finished if s.publish_status == status and (status or s.dirty)]
            committed = {s.entity_id for s in self._commit(batch, status, None, final=True)}
            unfinished += [s for s in batch if s.entity_id not in committed]
        bulk_update_rows([_outcome_row(self.leases, s, now) for s in unfinished], OUTCOME_FIELDS)
        counts = {"completed": 0, "failed": 0, "cancelled": 0}
        logs = self.logs
        # One line per chunk and step for entities a step stopped (a condition, a rejected
        # review), as for publications: the item says which step stopped each one.
        stopped = Counter(state.step_id for state in states if state.outcome == "skipped")
        logs += [
            RunLog(
                run_id=self.run_id,
                timestamp=now,
                message=f"Stopped at this step: {count} entities.",
                step_id=step_id,
            )
            for step_id, count in stopped.items()
        ]
        for state in states:
            counts["completed" if state.outcome in ("completed", "skipped") else state.outcome] += 1
            if not state.log:
                continue
            logs += [
                RunLog(
                    run_id=self.run_id,
                    timestamp=now,
                    level=level,
                    message=message,
                    entity_id=state.entity_id,
                    step_id=step_id,
                )
                for level, step_id, message in state.log
            ]
        RunLog.objects.bulk_create(logs, batch_size=1000)
        # Last: every chunk of the run writes this row, so its lock is held only to COMMIT.
        return _count_outcomes(self.run_id, counts, _sum_usage(states), now, waiting=parked)

    def _record_outcomes(self, states: list[EntityState], now) -> list[EntityState]:
        """Write each item's final status where this delivery still holds its lease; returns
        the states written (another delivery owns the others now).

        One statement for the chunk: the outcomes travel as one JSON array, and the lease is
        in its WHERE, so no lock is taken first and the rows it returns are the ones it ended.

        Its row locks are not taken in one id order, so a redelivery's claim racing this
        finish can deadlock with it. PostgreSQL then aborts one of the two; its task is
        retried and the leases decide which delivery acts (nothing is written twice).
        """
        outcomes = []
        for state in states:
            pk, attempts = self.leases[state.entity_id]
            outcome = {"item": pk, "a": attempts, "s": ITEM_OUTCOMES[state.outcome]}
            if state.step_id:
                outcome["p"] = state.step_id
            if state.error:
                outcome["e"] = state.error
            if state.usage:
                outcome["u"] = state.usage
            outcomes.append(outcome)
        written = _end_items(outcomes, now) if outcomes else set()
        return [state for state in states if self.leases[state.entity_id][0] in written]


# The rows of a JSON array of outcomes ({"item": id, "a": attempts, "s": status, "p": step id,
# "e": error, "u": usage}, the last three optional), as a table. (Its column is not named
# `id`: SQLite's RETURNING takes no table alias, so `id` must name the item's alone.)
_OUTCOME_ROWS = {
    "postgresql": "jsonb_to_recordset(%s::jsonb) "
    "AS r(item bigint, a integer, s varchar, p varchar, e text, u jsonb)",
    "sqlite": "(SELECT json_extract(value, '$.item') AS item, json_extract(value, '$.a') AS a, "
    "json_extract(value, '$.s') AS s, json_extract(value, '$.p') AS p, "
    "json_extract(value, '$.e') AS e, json_extract(value, '$.u') AS u FROM json_each(%s)) AS r",
}


def _end_items(outcomes: list[dict], now) -> set[int]:
    """Give items their outcome where the lease is still the one given; the ids written."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {connection.ops.quote_name(RunItem._meta.db_table)} AS t "  # noqa: S608
            "SET status = r.s, step_id = COALESCE(r.p, ''), error = COALESCE(r.e, ''), "
            "usage = COALESCE(r.u, '{}'), completed_at = %s, state = NULL "
            f"FROM {_OUTCOME_ROWS[connection.vendor]} "
            "WHERE t.id = r.item AND t.attempts = r.a AND t.status = %s RETURNING id",
            [
                connection.ops.adapt_datetimefield_value(now),
                data_encode(outcomes),
                ItemStatus.RUNNING,
            ],
        )
        return {row[0] for row in cursor.fetchall()}  # one call, not one per row


OUTCOME_FIELDS = ["status", "step_id", "error", "usage", "completed_at", "state"]


def _outcome_row(leases: dict, state: EntityState, now) -> RunItem:
    return RunItem(
        pk=leases[state.entity_id][0],
        status=ITEM_OUTCOMES[state.outcome],
        step_id=state.step_id,
        error=state.error,
        usage=state.usage,
        completed_at=now,
        state=None,
    )


def _count_outcomes(run_id: str, counts: dict, tokens: dict, now, *, waiting: int = 0) -> bool:
    """Add a chunk's outcomes, entities parked (`waiting`) and tokens to the run's counters,
    in the database (concurrent chunks lose no update); True when completed + failed +
    cancelled has reached the total (waiting entities are not in that sum)."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {connection.ops.quote_name(Run._meta.db_table)} "  # noqa: S608
            "SET completed = completed + %s, failed = failed + %s, cancelled = cancelled + %s, "
            "waiting = waiting + %s, "
            "input_tokens = input_tokens + %s, output_tokens = output_tokens + %s, "
            "heartbeat_at = %s WHERE id = %s RETURNING completed + failed + cancelled >= total",
            [
                counts["completed"],
                counts["failed"],
                counts["cancelled"],
                waiting,
                tokens["inputTokens"],
                tokens["outputTokens"],
                connection.ops.adapt_datetimefield_value(now),
                run_id,
            ],
        )
        row = cursor.fetchone()
    return bool(row and row[0])


def _sum_usage(states: list[EntityState]) -> dict:
    total = {"inputTokens": 0, "outputTokens": 0}
    for state in states:
        if state.usage:
            for key in total:
                total[key] += state.usage.get(key, 0)
    return total


class LockedItem(NamedTuple):
    """A run item's lease fields, read under a row lock."""

    pk: int
    entity_id: str
    status: str
    attempts: int
    next_step: int


class Lease(NamedTuple):
    """A run item as claimed by this delivery of its chunk, with its entity as stored (JSON
    text, status, version), or None when the entity no longer exists."""

    pk: int
    entity_id: str
    attempts: int
    next_step: int
    state: dict | None
    entity: tuple[str, str, int] | None


def _claim_items(run: Run, chunk: int) -> list[Lease]:
    """Lease the chunk's unfinished items to this delivery (attempts + 1) and read their
    entities; the lease is its own transaction.

    On PostgreSQL one statement does both: the rows are locked in id order (the order every
    lock on items is taken in), updated, and joined to their entities. Such a statement sees
    the entities as they were when it started, while an item it had to wait for is read as
    it is once the other transaction committed: when that was another delivery's publish,
    the item now has a checkpoint without data (it lives in the entity) and the joined
    entity is older. Those entities are read again after the claim. Elsewhere (SQLite,
    which runs one writer at a time) the claim and the read are two statements."""
    now = timezone.now()
    items = connection.ops.quote_name(RunItem._meta.db_table)
    params = [
        ItemStatus.RUNNING,
        connection.ops.adapt_datetimefield_value(now),
        run.pk,
        chunk,
        ItemStatus.PENDING,
        ItemStatus.RUNNING,
    ]
    assignments = "SET status = %s, attempts = attempts + 1, started_at = COALESCE(started_at, %s)"
    unfinished = "run_id = %s AND chunk = %s AND status IN (%s, %s)"
    returning = "RETURNING id, entity_id, attempts, next_step, state"
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                f"WITH claimed AS (UPDATE {items} {assignments} WHERE id IN ("  # noqa: S608
                f"SELECT id FROM {items} WHERE {unfinished} ORDER BY id FOR UPDATE) {returning}) "
                "SELECT c.id, c.entity_id, c.attempts, c.next_step, c.state, "
                "e.data::text, e.status, e.version FROM claimed AS c "
                f"LEFT JOIN {connection.ops.quote_name(Entity._meta.db_table)} AS e "
                "ON e.id = c.entity_id",
                params,
            )
            rows = [
                (*row[:5], row[5:] if row[5] is not None else None) for row in cursor.fetchall()
            ]
        else:
            cursor.execute(f"UPDATE {items} {assignments} WHERE {unfinished} {returning}", params)
            claimed = cursor.fetchall()
            entities = _entity_rows([row[1] for row in claimed])
            rows = [(*row, entities.get(row[1])) for row in claimed]
    leases = sorted(
        Lease(pk, entity_id, attempts, next_step, json.loads(state) if state else None, entity)
        for pk, entity_id, attempts, next_step, state, entity in rows
    )
    # A checkpoint without data: another delivery's publish committed it while this claim
    # waited, after the joined entity was read (see above). Read those entities again.
    reread = {lease.entity_id for lease in leases if lease.state and "data" not in lease.state}
    if reread:
        entities = _entity_rows(list(reread))
        leases = [
            lease._replace(entity=entities.get(lease.entity_id))
            if lease.entity_id in reread
            else lease
            for lease in leases
        ]
    if leases and (run.heartbeat_at is None or now - run.heartbeat_at > HEARTBEAT_EVERY):
        _heartbeat(run.pk, now)  # else other chunks are showing the run moves
    return leases


def _entity_rows(entity_ids: list[str]) -> dict[str, tuple[str, str, int]]:
    """Entities as stored: id -> (data as JSON text, status, version)."""
    return {
        row[0]: row[1:]
        for row in Entity.objects.filter(pk__any=entity_ids).values_list(
            "id", Cast("data", TextField()), "status", "version"
        )
    }


def _heartbeat(run_id: str, now) -> None:
    """Show the run is moving. Skipped while another chunk's transaction holds the run's row:
    that transaction moves the heartbeat itself, and waiting for it would make the workers
    take turns."""
    with transaction.atomic():
        Run.objects.filter(
            pk__in=Run.objects.filter(pk=run_id).select_for_update(skip_locked=True).values("pk")
        ).update(heartbeat_at=now)


def _states(items: list[Lease], schema: dict | None) -> list[EntityState]:
    """Each item's entity as a working copy, or its checkpoint. The entity's JSON text is
    parsed for the working copy, and kept for the committed copy (parsed only if needed:
    several times cheaper than a deep copy)."""
    states = []
    for item in items:
        entity = item.entity
        saved = item.state or {}  # parsed from JSON: its data and committed are apart
        if entity is None:
            state = EntityState(entity_id=item.entity_id, status="", data={}, committed={})
            state.fail("", "The entity no longer exists.")
        else:
            raw, status, version = entity
            state = EntityState(
                entity_id=item.entity_id,
                status=saved.get("status", status),
                data=saved["data"] if "data" in saved else json.loads(raw),
                committed=saved.get("committed"),
                committed_json=None if "committed" in saved else raw,
                entity_type_schema=schema,
                version=saved.get("version", version),
                outputs=saved.get("outputs", {}),
                usage=saved.get("usage", {}),
                next_step=item.next_step,
            )
        # A redelivery; an entity back from a wait is on its first delivery since parking.
        if item.attempts > saved.get("attempt", 0) + 1:
            state.log.append(
                ("warning", "", f"Resumed at step {item.next_step + 1} (attempt {item.attempts}).")
            )
        states.append(state)
    return states


def _cancel_probe(run_id: str, *, checked_at: float):
    """A cheap `cancelled()` for the pipeline: asks the database at most twice a second
    (`checked_at`: when the run was last seen not cancelled, a `time.monotonic()`).

    Steps call it inside long batches too (`ai_generate`, `notify`), so it also moves the
    run's heartbeat every HEARTBEAT_EVERY: a chunk that takes longer than RUN_STALL_AFTER_S
    (400 model calls can) must not look stalled, or it would be queued again and its lease
    taken, throwing its work away."""
    checked = {"at": checked_at, "beat": checked_at, "cancelled": False}

    def cancelled() -> bool:
        now = time.monotonic()
        if not checked["cancelled"] and now - checked["at"] >= CANCEL_CHECK_INTERVAL_S:
            checked["at"] = now
            checked["cancelled"] = Run.objects.filter(
                pk=run_id, status=RunStatus.CANCELLED
            ).exists()
            if now - checked["beat"] >= HEARTBEAT_EVERY.total_seconds():
                checked["beat"] = now
                _heartbeat(run_id, timezone.now())
        return checked["cancelled"]

    return cancelled


def chunk_execute(*, run_id: str, chunk: int) -> None:
    run = Run.objects.select_related("workflow_version", "workflow__entity_type").get(pk=run_id)
    seen_at = time.monotonic()
    if run.is_ended:
        return
    if run.status == RunStatus.PENDING:
        run_mark_running(run_id=run_id)
    items = _claim_items(run, chunk)
    if items:
        # Every entity of a run is of the workflow's entity type (checked at start).
        states = _states(items, run.workflow.entity_type.schema)
        waits_apply(checkpoints=[item.state for item in items], states=states)
        committer = ChunkCommitter(run_id, {i.entity_id: (i.pk, i.attempts) for i in items})
        steps_run(
            states=[state for state in states if state.alive],
            steps=run.workflow_version.steps,
            run_id=run_id,
            workflow_id=run.workflow_id,
            committer=committer,
            cancelled=_cancel_probe(run_id, checked_at=seen_at),
        )
        if not committer.finish(states):
            return  # other chunks are still open: the last one to finish ends the run
    run_finalize_if_done(run_id=run_id)
