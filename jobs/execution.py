"""Executing one chunk of a run: claim its items, take the entities through the steps with
batched reads and writes, record the outcome. Safe to run again for the same chunk.

Items are leased by bumping `attempts`: every later write for an item (a checkpoint, the final
status) is conditional on the item still carrying this delivery's attempt, so when a chunk is
delivered twice (a worker died, a visibility timeout passed) only one delivery acts on each
entity, and no entity is published or notified twice.
"""

import copy
import time

from django.db import transaction
from django.db.models import F
from django.db.models.functions import Coalesce
from django.utils import timezone

from entities.models import Entity
from entities.services import WorkingCopy, entities_commit
from jobs.models import ItemStatus, Run, RunItem, RunLog, RunStatus
from jobs.services import run_finalize_if_done, run_mark_running
from workflows.pipeline import steps_run
from workflows.steps.runtime import EntityState, StepContext

CANCEL_CHECK_INTERVAL_S = 0.5
HANDED_OFF = "handed_off"  # another delivery of the chunk owns the entity now
ITEM_OUTCOMES = {
    "completed": ItemStatus.COMPLETED,
    "skipped": ItemStatus.SKIPPED,
    "failed": ItemStatus.FAILED,
    "cancelled": ItemStatus.CANCELLED,
}


def _checkpoint(state: EntityState) -> dict:
    return {
        "data": state.data,
        "committed": state.committed,
        "outputs": state.outputs,
        "status": state.status,
        "version": state.version,
        "usage": state.usage,
    }


class ChunkCommitter:
    """Persists what the steps of one chunk do, each write conditional on the lease."""

    def __init__(self, run_id: str, leases: dict[str, tuple[int, int]]):
        self.run_id = run_id
        self.leases = leases  # entity id -> (item pk, attempts)

    def _owned(self, states: list[EntityState], step_index: int) -> tuple[list, dict]:
        """Lock the items of `states`; those still leased to us at this step, by entity."""
        items = {
            item.entity_id: item
            for item in RunItem.objects.select_for_update()
            .filter(pk__in=[self.leases[state.entity_id][0] for state in states])
            .order_by("pk")
        }
        owned = []
        for state in states:
            item = items.get(state.entity_id)
            if (
                item is not None
                and item.status == ItemStatus.RUNNING
                and item.attempts == self.leases[state.entity_id][1]
                and item.next_step <= step_index
            ):
                owned.append(state)
            else:
                state.outcome = HANDED_OFF
        return owned, items

    def _save_checkpoints(self, states: list[EntityState], items: dict, next_step: int) -> None:
        for state in states:
            item = items[state.entity_id]
            item.next_step, item.state, item.step_id = next_step, _checkpoint(state), ""
        RunItem.objects.bulk_update(
            [items[s.entity_id] for s in states], ["next_step", "state", "step_id"]
        )

    @transaction.atomic
    def claim(self, states: list[EntityState], ctx: StepContext) -> list[EntityState]:
        """Before a side effect (a notification): move the checkpoint past the step, so a
        redelivered chunk does not repeat it. Returns the states this delivery may act on."""
        owned, items = self._owned(states, ctx.step_index)
        self._save_checkpoints(owned, items, ctx.step_index + 1)
        return owned

    @transaction.atomic
    def publish(self, states: list[EntityState], status: str, ctx: StepContext) -> dict:
        """Commit working copies with `status`, and the checkpoint past this step, at once.
        Returns the new version per published entity; the others have failed."""
        owned, items = self._owned(states, ctx.step_index)
        results = entities_commit(
            copies=[WorkingCopy(s.entity_id, s.committed, s.data) for s in owned], status=status
        )
        published = []
        for state in owned:
            result = results[state.entity_id]
            if isinstance(result, str):
                state.fail(ctx.step_id, result)
                continue
            state.committed, state.version, state.status = copy.deepcopy(state.data), result, status
            state.log.append(("info", ctx.step_id, f"Published as {status} (version {result})."))
            published.append(state)
        self._save_checkpoints(published, items, ctx.step_index + 1)
        return {state.entity_id: state.version for state in published}

    @transaction.atomic
    def finish(self, states: list[EntityState]) -> None:
        """Commit finished entities' remaining changes and record every outcome, with the
        run's counters moved in the same transaction (F() expressions: no lost updates)."""
        states = [state for state in states if state.outcome != HANDED_OFF]
        items = {
            item.entity_id: item
            for item in RunItem.objects.select_for_update()
            .filter(pk__in=[self.leases[state.entity_id][0] for state in states])
            .order_by("pk")
        }
        states = [
            state
            for state in states
            if items[state.entity_id].status == ItemStatus.RUNNING
            and items[state.entity_id].attempts == self.leases[state.entity_id][1]
        ]
        to_commit = [s for s in states if s.outcome in ("completed", "skipped") and s.dirty]
        results = entities_commit(
            copies=[WorkingCopy(s.entity_id, s.committed, s.data) for s in to_commit]
        )
        for state in to_commit:
            if isinstance(results[state.entity_id], str):
                state.fail(state.step_id, results[state.entity_id])
        now = timezone.now()
        counts = {"completed": 0, "failed": 0, "cancelled": 0}
        logs = []
        for state in states:
            item = items[state.entity_id]
            item.status = ITEM_OUTCOMES[state.outcome]
            item.step_id, item.error, item.usage = state.step_id, state.error, state.usage
            item.completed_at, item.state = now, None
            counts["completed" if state.outcome in ("completed", "skipped") else state.outcome] += 1
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
            if state.outcome == "failed":
                continue
        RunItem.objects.bulk_update(
            [items[s.entity_id] for s in states],
            ["status", "step_id", "error", "usage", "completed_at", "state"],
        )
        tokens = _sum_usage(states)
        Run.objects.filter(pk=self.run_id).update(
            completed=F("completed") + counts["completed"],
            failed=F("failed") + counts["failed"],
            cancelled=F("cancelled") + counts["cancelled"],
            input_tokens=F("input_tokens") + tokens["inputTokens"],
            output_tokens=F("output_tokens") + tokens["outputTokens"],
        )
        RunLog.objects.bulk_create(logs, batch_size=1000)


def _sum_usage(states: list[EntityState]) -> dict:
    total = {"inputTokens": 0, "outputTokens": 0}
    for state in states:
        for key in total:
            total[key] += state.usage.get(key, 0)
    return total


def _claim_items(run_id: str, chunk: int) -> list[RunItem]:
    """Lease the chunk's unfinished items to this delivery (attempts + 1)."""
    with transaction.atomic():
        items = list(
            RunItem.objects.select_for_update()
            .filter(run_id=run_id, chunk=chunk, status__in=[ItemStatus.PENDING, ItemStatus.RUNNING])
            .order_by("pk")
        )
        if not items:
            return []
        RunItem.objects.filter(pk__in=[item.pk for item in items]).update(
            status=ItemStatus.RUNNING,
            attempts=F("attempts") + 1,
            started_at=Coalesce(F("started_at"), timezone.now()),
        )
    for item in items:
        item.attempts += 1
    return items


def _states(items: list[RunItem], entities: dict[str, Entity]) -> list[EntityState]:
    states = []
    for item in items:
        entity = entities.get(item.entity_id)
        saved = item.state or {}
        if entity is None:
            state = EntityState(entity_id=item.entity_id, status="", data={}, committed={})
            state.fail("", "The entity no longer exists.")
        else:
            state = EntityState(
                entity_id=entity.pk,
                status=saved.get("status", entity.status),
                data=copy.deepcopy(saved.get("data", entity.data)),
                committed=saved.get("committed", entity.data),
                entity_type_schema=entity.entity_type.schema,
                version=saved.get("version", entity.version),
                outputs=saved.get("outputs", {}),
                usage=saved.get("usage", {}),
                next_step=item.next_step,
            )
        if item.attempts > 1:
            state.log.append(
                ("warning", "", f"Resumed at step {item.next_step + 1} (attempt {item.attempts}).")
            )
        states.append(state)
    return states


def _cancel_probe(run_id: str):
    """A cheap `cancelled()` for the pipeline: asks the database at most twice a second."""
    checked = {"at": 0.0, "cancelled": False}

    def cancelled() -> bool:
        now = time.monotonic()
        if not checked["cancelled"] and now - checked["at"] >= CANCEL_CHECK_INTERVAL_S:
            checked["at"] = now
            checked["cancelled"] = Run.objects.filter(
                pk=run_id, status=RunStatus.CANCELLED
            ).exists()
        return checked["cancelled"]

    return cancelled


def chunk_execute(*, run_id: str, chunk: int) -> None:
    run = Run.objects.select_related("workflow_version").get(pk=run_id)
    if run.is_ended:
        return
    run_mark_running(run_id=run_id)
    items = _claim_items(run_id, chunk)
    if items:
        entities = Entity.objects.select_related("entity_type").in_bulk(
            [item.entity_id for item in items]
        )
        states = _states(items, entities)
        committer = ChunkCommitter(run_id, {i.entity_id: (i.pk, i.attempts) for i in items})
        steps_run(
            states=[state for state in states if state.alive],
            steps=run.workflow_version.steps,
            run_id=run_id,
            workflow_id=run.workflow_id,
            committer=committer,
            cancelled=_cancel_probe(run_id),
        )
        committer.finish(states)
    run_finalize_if_done(run_id=run_id)
