"""The run engine's ports: what a step may ask while a chunk runs (`StepEngine`, implemented
here by `ChunkCommitter`): publish working copies, checkpoint before a side effect, whether
the run was cancelled, a heartbeat, whether the run's budget allows another model call (and
what a finished one spent: `jobs.engine.budget`), park an entity until a wait is resolved.
Every write is conditional on the chunk's leases.

This is where an item's checkpoint moves (`next_step`, `state`) before its final status.
Entities that wait are parked when the chunk finishes (`jobs.engine.parking`), holding no
worker, and resumed by a delivery that claims them again.
"""

import time
from collections.abc import Callable
from typing import NamedTuple

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from config.api.storable import unstorable
from config.bulk import rows_update
from entities.commits import ChangedSince, PublishedAt, WorkingCopy, entities_commit
from entities.events import ChangeOrigin
from entities.revisions import RevisionSource, Source
from jobs.engine.budget import RunBudget
from jobs.engine.leases import HEARTBEAT_EVERY, run_heartbeat
from jobs.engine.parking import Asked, wait_asked
from jobs.engine.states import checkpoint_of
from jobs.models import ItemStatus, Run, RunItem, RunLog, RunStatus
from workflows.steps.runtime import EntityState, Outcome, StepContext, StepError, json_copy
from workflows.steps.waits import WaitRequest
from workflows.usage import Usage

CANCEL_CHECK_INTERVAL_S = 0.5


class LockedItem(NamedTuple):
    """A run item's lease fields, read under a row lock."""

    pk: int
    entity_id: str
    status: str
    attempts: int
    next_step: int


class ChunkCommitter:
    """Persists what the steps of one chunk do, each write conditional on the lease: the
    run engine's `StepEngine`."""

    def __init__(
        self,
        run_id: str,
        leases: dict[str, tuple[int, int]],
        *,
        seen_at: float,
        origin: ChangeOrigin | None = None,
        entity_type_id: str = "",
        budget: RunBudget | None = None,
        cancelled: bool = False,
        revision_type: str = Source.RUN,
        changed_since: Callable[[int, int], str] | None = None,
    ):
        self.run_id = run_id
        self.revision_type = revision_type  # what the entities' revisions say made them
        # An unforced revert's: commit each entity only at the version its state was read
        # (and checked) at, never merged (`entities.commits.entities_commit`, `at_version`);
        # one changed since is skipped, its error `changed_since(its version, the one read)`.
        self.changed_since = changed_since
        # A revert's: entity id -> the publishedAt its commit writes (the one before the
        # reverted run), in place of the one its status gives.
        self.published: dict[str, PublishedAt] = {}
        # Who the entity outbox says made the changes (the run's workflow, at its depth).
        self.origin = origin
        self.entity_type_id = entity_type_id
        self.leases = leases  # entity id -> (item pk, attempts)
        self.logs: list[RunLog] = []  # chunk-level lines, written with the outcomes
        self.waits: dict[str, Asked] = {}  # entity id -> what its step waits for
        # When the run was last seen not cancelled, and last shown moving (time.monotonic()).
        self._checked_at = self._beat_at = seen_at
        self._cancelled = cancelled  # a cancel asked before the chunk started
        self.budget = budget if budget is not None and budget.limited else None

    # -- the ports -------------------------------------------------------------------------

    def cancelled(self) -> bool:
        """Whether a cancel was asked (or the run ended); asks the database at most every
        CANCEL_CHECK_INTERVAL_S; once true, stays true."""
        now = time.monotonic()
        if not self._cancelled and now - self._checked_at >= CANCEL_CHECK_INTERVAL_S:
            self._checked_at = now
            self._cancelled = (
                Run.objects.filter(pk=self.run_id)
                .filter(Q(cancel_requested_at__isnull=False) | Q(status__in=RunStatus.ended()))
                .exists()
            )
        return self._cancelled

    def heartbeat(self) -> None:
        """Moves the run's heartbeat every HEARTBEAT_EVERY: a chunk that takes longer than
        RUN_STALL_AFTER_S (400 model calls can) must not look stalled, or it would be queued
        again and its leases taken, throwing its work away."""
        now = time.monotonic()
        if now - self._beat_at >= HEARTBEAT_EVERY.total_seconds():
            self._beat_at = now
            run_heartbeat(self.run_id, timezone.now())

    def budget_reached(self) -> str | None:
        return None if self.budget is None else self.budget.reached()

    def usage_record(self, usage: dict) -> None:
        if self.budget is not None:
            self.budget.spend(Usage.of(usage))

    def budget_reserve(self, usages: list[dict]) -> int:
        return len(usages) if self.budget is None else self.budget.reserve(usages)

    def wait(self, state: EntityState, ctx: StepContext, request: WaitRequest) -> bool:
        """Park the entity at this step until its wait is resolved: it is stored when the
        chunk finishes (`jobs.engine.parking.waits_park`) and holds no worker. A request of a
        kind this deployment does not have fails the entity here, at its step."""
        try:
            asked = wait_asked(request, step_id=ctx.step_id, step_index=ctx.step_index)
        except StepError as exc:
            state.fail(ctx.step_id, exc.message)
            return True
        state.outcome, state.step_id = Outcome.WAITING, ctx.step_id
        self.waits[state.entity_id] = asked
        return True

    @transaction.atomic
    def checkpoint(self, states: list[EntityState], ctx: StepContext) -> list[EntityState]:
        """Move the checkpoint past the step, so a redelivered chunk does not repeat it:
        before an at-most-once side effect (an email), after an at-least-once one (a
        webhook). Returns the states this delivery may act on."""
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
            published = self.commit(owned, status, ctx.step_id)
            self._save_checkpoints(published, items, ctx.step_index + 1, with_data=False)
            RunLog.objects.bulk_create(self.logs)  # the line goes with what it reports
            self.logs = []
        return {state.entity_id for state in published}

    # -- for the engine --------------------------------------------------------------------

    def commit(
        self, states: list[EntityState], status: str | None, step_id: str | None, *, final=False
    ) -> list[EntityState]:
        """Merge the working copies into the entities (with `status`, for a publish); returns
        the states committed, the others have failed at `step_id` (default: their last), or
        were skipped as changed since they were read (`changed_since`). After the `final`
        commit no step reads the committed copy: it is not kept."""
        merged: dict[str, dict] = {}
        results = entities_commit(
            copies=[
                WorkingCopy(
                    s.entity_id,
                    s.base,
                    s.data,
                    s.version,
                    s.entity_type_schema,
                    self.entity_type_id,
                    self._decided_by(s),
                    s.stored,
                    self.published.get(s.entity_id),
                )
                for s in states
            ],
            status=status,
            origin=self.origin,
            source=RevisionSource(
                self.revision_type,
                run_id=self.run_id,
                step_id=self._step_of(states, status, step_id),
            ),
            at_version=self.changed_since is not None,
            merged=merged,
        )
        committed = []
        for state in states:
            result = results[state.entity_id]
            where = step_id or state.step_id
            if isinstance(result, ChangedSince) and self.changed_since is not None:
                state.outcome = Outcome.STOPPED
                state.error = self.changed_since(result.version, state.version)
                continue
            if isinstance(result, str):
                state.fail(where, result)
                continue
            state.version = result
            state.decided_by = None  # recorded: later commits are the run's
            if not final:
                # Merged onto an edit made since it was read: the run goes on from what was
                # stored (its next commit, at this version, writes its copy whole).
                state.data = merged.get(state.entity_id, state.data)
                state.committed = json_copy(state.data)
            if status is not None:
                # Its publishedAt is the commit's time, not known here: a later commit that
                # sets the status reads the entity again.
                state.status, state.stored = status, None
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

    @staticmethod
    def _step_of(states: list[EntityState], status: str | None, step_id: str | None) -> str:
        """The step a commit's revisions name: the publish's (a last-step publish joins the
        final commit, where each state is at it); none for the final commit of changes."""
        if step_id:
            return step_id
        return states[0].step_id if status is not None and states else ""

    def _decided_by(self, state: EntityState) -> RevisionSource | None:
        """A review decided since the last commit: the commit is the reviewer's revision."""
        if state.decided_by is None:
            return None
        return RevisionSource(
            Source.REVIEW,
            run_id=self.run_id,
            step_id=state.decided_by.get("stepId", ""),
            user_id=state.decided_by.get("userId", ""),
        )

    def _owned(self, states: list[EntityState], step_index: int) -> tuple[list, dict]:
        """Lock the items of `states`; those still leased to us at this step, by entity. The
        others are handed off: another delivery owns them now."""
        items = {
            row[1]: LockedItem(*row)
            for row in RunItem.objects.select_for_update()
            .filter(pk__any=[self.leases[state.entity_id][0] for state in states])
            .order_by("pk")  # a fixed lock order
            .values_list("pk", "entity_id", "status", "attempts", "next_step")
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
                state.outcome = Outcome.HANDED_OFF
        return owned, items

    def _save_checkpoints(
        self, states: list[EntityState], items: dict, next_step: int, *, with_data: bool
    ) -> None:
        rows_update(
            RunItem,
            (
                {
                    "id": items[state.entity_id].pk,
                    "next_step": next_step,
                    "state": checkpoint_of(state, with_data=with_data),
                }
                for state in states
            ),
            match=["id"],
            copy=["next_step", "state"],
            assign={"step_id": ""},
        )
