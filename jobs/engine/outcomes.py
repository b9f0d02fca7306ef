"""Finishing a chunk: each item's final status (where this delivery still holds its lease),
the finished entities' last commit, the log lines, and the run's counters, in one
transaction. Also giving up on items whose every delivery died.

This is where an item's status becomes final, and where it is counted: the run's counters
move only here (and in a cancel's batches, `jobs.cancel`, for items no delivery holds), in
the transaction that ends the items they count. A waiting entity's usage is counted when it
is parked, a provider batch's when its answers are collected.
"""

from collections import Counter

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from config.bulk import NotBefore, pks_update, rows_update
from jobs.engine.committer import ChunkCommitter
from jobs.engine.parking import waits_confirm, waits_park
from jobs.models import ItemStatus, Run, RunItem, RunLog
from workflows.steps.runtime import EntityState, Outcome
from workflows.usage import ZERO, Usage

ITEM_STATUS = {
    Outcome.COMPLETED: ItemStatus.COMPLETED,
    Outcome.STOPPED: ItemStatus.SKIPPED,
    Outcome.FAILED: ItemStatus.FAILED,
    Outcome.CANCELLED: ItemStatus.CANCELLED,
}
# The run's counter each outcome adds to: an entity a condition stopped has completed (and
# is counted in `skipped` too).
COUNTER = {
    Outcome.COMPLETED: "completed",
    Outcome.STOPPED: "completed",
    Outcome.FAILED: "failed",
    Outcome.CANCELLED: "cancelled",
}


@transaction.atomic
def chunk_finish(committer: ChunkCommitter, states: list[EntityState]) -> bool:
    """Record every outcome this delivery still holds the lease for, commit the finished
    entities' remaining changes, and move the run's counters, in one transaction.
    Returns whether the counters now add up to the run's total."""
    now = timezone.now()
    leases = committer.leases
    waiting = [state for state in states if state.outcome == Outcome.WAITING]
    parked = []
    if waiting:
        parked = waits_park(
            run_id=committer.run_id, leases=leases, states=waiting, requests=committer.waits
        )
    states = _items_end(
        leases,
        [s for s in states if s.outcome not in (Outcome.HANDED_OFF, Outcome.WAITING)],
        now,
    )
    finished = [s for s in states if s.outcome in (Outcome.COMPLETED, Outcome.STOPPED)]
    # Failed at their final commit (the schema, the size limit), or skipped there (a
    # revert's entity changed since it was checked).
    unfinished = []
    for status in {state.publish_status for state in finished}:
        batch = [s for s in finished if s.publish_status == status and (status or s.dirty)]
        committed = {s.entity_id for s in committer.commit(batch, status, None, final=True)}
        unfinished += [s for s in batch if s.entity_id not in committed]
    rows_update(
        RunItem,
        (
            {
                "id": leases[s.entity_id][0],
                "status": ITEM_STATUS[s.outcome],
                "error": s.error,
                "step_id": s.step_id,
            }
            for s in unfinished
        ),
        match=["id"],
        copy=["status", "error", "step_id"],
    )
    logs = committer.logs
    # One line per chunk and step for entities a step stopped (a condition, a rejected
    # review), as for publications: the item says which step stopped each one.
    stopped = Counter(state.step_id for state in states if state.outcome == Outcome.STOPPED)
    logs += [
        RunLog(
            run_id=committer.run_id,
            timestamp=now,
            message=f"Stopped at this step: {count} entities.",
            step_id=step_id,
        )
        for step_id, count in stopped.items()
    ]
    counts = Counter(COUNTER[state.outcome] for state in states)
    # Under the run's lock (taken only now, as the counters' UPDATE would): entities parked
    # after a cancel was asked end cancelled here.
    cancelled = waits_confirm(run_id=committer.run_id, parked=parked, now=now)
    counts["waiting"] = len(parked) - cancelled
    counts["cancelled"] += cancelled
    counts["skipped"] = sum(state.outcome == Outcome.STOPPED for state in states)
    for state in states:
        logs += [
            RunLog(
                run_id=committer.run_id,
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
    # What the entities ended or parked here used that the run has not counted yet: a
    # waiting entity's usage counts at once (a cancelled run keeps it, the API shows it).
    usage = Usage.total(
        Usage.of(s.usage) - s.usage_counted for s in [*states, *(p.state for p in parked)]
    )
    return run_count(committer.run_id, counts, usage, now)


# Items ending alike (the same attempt, status and step, no error and no usage: a chunk's
# entities that went through the same steps) are ended by one UPDATE by primary key per
# kind, up to this many kinds; the others, and every item of a chunk with more kinds, by
# one UPDATE from a row set.
_ALIKE_KINDS = 4


def _items_end(leases: dict, states: list[EntityState], now) -> list[EntityState]:
    """Write each item's final status where this delivery still holds its lease; returns
    the states written (another delivery owns the others now).

    No lock is taken first: the lease is in each statement's WHERE, so the rows they return
    are the ones they ended. Their row locks are not taken in one id order, so a
    redelivery's claim racing this finish can deadlock with it. PostgreSQL then aborts one
    of the two; its task is retried and the leases decide which delivery acts (nothing is
    written twice)."""
    alike: dict[tuple[int, str, str], list[int]] = {}
    rows = []
    for state in states:
        pk, attempts = leases[state.entity_id]
        status = ITEM_STATUS[state.outcome]
        if not state.error and not state.usage:
            alike.setdefault((attempts, status, state.step_id), []).append(pk)
        else:
            rows.append(
                {
                    "id": pk,
                    "attempts": attempts,
                    "status": status,
                    "step_id": state.step_id,
                    "error": state.error,
                    "usage": state.usage,
                }
            )
    if len(alike) > _ALIKE_KINDS:
        rows += (
            {
                "id": pk,
                "attempts": attempts,
                "status": status,
                "step_id": step_id,
                "error": "",
                "usage": {},
            }
            for (attempts, status, step_id), pks in alike.items()
            for pk in pks
        )
        alike = {}
    written = []
    for (attempts, status, step_id), pks in alike.items():
        written += pks_update(
            RunItem,
            pks,
            assign={
                "status": status,
                "step_id": step_id,
                "error": "",
                "usage": {},
                "completed_at": NotBefore("started_at", now),
                "state": None,
            },
            where={"status": ItemStatus.RUNNING, "attempts": attempts},
            returning=["id"],
        )
    written += rows_update(
        RunItem,
        rows,
        match=["id", "attempts"],
        copy=["status", "step_id", "error", "usage"],
        assign={"completed_at": NotBefore("started_at", now), "state": None},
        where={"status": ItemStatus.RUNNING},
        returning=["id"],
    )
    ended = {row[0] for row in written}
    return [state for state in states if leases[state.entity_id][0] in ended]


def given_up_error(delivered: str) -> str:
    """The error of work given up after RUN_MAX_ATTEMPTS deliveries of `delivered` (what
    carries it: "this entity's chunk") that all ended before finishing it."""
    return (
        f"Gave up after {settings.RUN_MAX_ATTEMPTS} attempts: every delivery of {delivered} "
        "ended before finishing it (its worker was killed or lost, or crashed outside the "
        "steps; see the worker's log)."
    )


def items_give_up(run_id: str, chunk: int) -> int:
    """Fail the chunk's unfinished items already claimed RUN_MAX_ATTEMPTS times: every
    delivery of their chunk died before finishing them (a worker killed each time, a crash
    outside the steps), so one more would too. Counted and logged; returns how many."""
    limit = settings.RUN_MAX_ATTEMPTS
    error = given_up_error("this entity's chunk")
    now = timezone.now()
    with transaction.atomic():
        ended = list(
            RunItem.objects.filter(
                run_id=run_id,
                chunk=chunk,
                status__in=[ItemStatus.PENDING, ItemStatus.RUNNING],
                attempts__gte=limit,
            ).values_list("pk", "entity_id", "step_id")
        )
        if not ended:
            return 0
        rows_update(
            RunItem,
            ({"id": pk} for pk, _, _ in ended),
            match=["id"],
            assign={
                "status": ItemStatus.FAILED,
                "error": error,
                "completed_at": NotBefore("started_at", now),
                "state": None,
            },
        )
        RunLog.objects.bulk_create(
            RunLog(
                run_id=run_id,
                timestamp=now,
                level=RunLog.Level.ERROR,
                message=error,
                entity_id=entity_id,
                step_id=step_id,
            )
            for _, entity_id, step_id in ended
        )
        run_count(run_id, {"failed": len(ended)}, ZERO, now)
    return len(ended)


def run_count(run_id: str, counts: dict, usage: Usage, now) -> bool:
    """Add a chunk's outcomes, entities parked (`waiting`) and usage to the run's counters,
    in the database (concurrent chunks lose no update); True when completed + failed +
    cancelled has reached the total (waiting entities are not in that sum)."""
    added = {
        "completed": counts.get("completed", 0),
        "failed": counts.get("failed", 0),
        "cancelled": counts.get("cancelled", 0),
        "skipped": counts.get("skipped", 0),
        "waiting": counts.get("waiting", 0),
        **usage.columns(),
    }
    quote = connection.ops.quote_name
    column = {
        name: quote(Run._meta.get_field(name).column)
        for name in ("id", "total", "heartbeat_at", *added)
    }
    assignments = ", ".join(f"{column[name]} = {column[name]} + %s" for name in added)
    ended = " + ".join(column[name] for name in ("completed", "failed", "cancelled"))
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {quote(Run._meta.db_table)} SET {assignments}, "  # noqa: S608
            f"{column['heartbeat_at']} = %s WHERE {column['id']} = %s "
            f"RETURNING {ended} >= {column['total']}",
            [*added.values(), connection.ops.adapt_datetimefield_value(now), run_id],
        )
        row = cursor.fetchone()
    return bool(row and row[0])
