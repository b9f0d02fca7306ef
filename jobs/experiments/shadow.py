"""The engine both sides of an experiment run with: `DryRun` (nothing committed or sent, a
review counts as approved and says so, no wait held) that also stops when the experiment is
cancelled, and counts every model call against the experiment's budget as it finishes, in
the experiment's row (so every worker's next check sees it).

A wait is recorded as the entity would have waited (its kind, in the side's `waits`) and the
step goes on as if it had been resolved to go on; but an `ai_generate` step in batch mode
parks the side (`parked`) for a provider batch the experiment owns, as a run would
(`jobs.experiments.batches`). Its request's estimate is checked against the budget here
and reserved when the side is parked, in the transaction that parks it."""

import threading
import time

from django.db.models import F
from django.utils import timezone

from jobs.experiments.log import budget_reached
from jobs.experiments.models import Experiment
from workflows.pricing import NANOS_PER_USD
from workflows.steps.ai_generate import AiBatchWaitRequest
from workflows.steps.runtime import DryRun, EntityState, Outcome, StepContext
from workflows.steps.waits import WaitRequest
from workflows.usage import ZERO, Usage

# How old the cancel and spending seen by a check may be.
CHECK_INTERVAL_S = 0.2
# How often a chunk shows that it still moves (the stall check reads it).
HEARTBEAT_INTERVAL_S = 5.0


class ShadowEngine(DryRun):
    def __init__(self, experiment: Experiment):
        self.experiment_id = experiment.pk
        self.max_tokens = experiment.budget_max_tokens
        self.max_cost_nanos = experiment.budget_max_cost_nano_usd
        self.spent = (experiment.spent_tokens, experiment.spent_cost_nano_usd)
        self.cancel_seen = experiment.cancel_requested_at is not None
        self.read_at = time.monotonic()
        self.waits: dict[str, list[dict]] = {}  # entity id -> the waits it would have held
        # Entity id -> (step index, request) of the sides parked for a provider batch.
        self.parked: dict[str, tuple[int, AiBatchWaitRequest]] = {}
        self.reserving = (0, 0)  # tokens and cost checked by `budget_reserve`, not yet parked
        self.beat_at = float("-inf")
        self.lock = threading.Lock()  # a step's calls finish on several threads
        self.unflushed = ZERO

    def _refresh(self) -> None:
        if time.monotonic() - self.read_at < CHECK_INTERVAL_S:
            return
        row = (
            Experiment.objects.filter(pk=self.experiment_id)
            .values("spent_tokens", "spent_cost_nano_usd", "cancel_requested_at")
            .first()
        )
        self.read_at = time.monotonic()
        if row is None:  # deleted: stop
            self.cancel_seen = True
            return
        self.spent = (row["spent_tokens"], row["spent_cost_nano_usd"])
        self.cancel_seen = row["cancel_requested_at"] is not None

    def heartbeat(self) -> None:
        now = time.monotonic()
        if now - self.beat_at >= HEARTBEAT_INTERVAL_S:
            self.beat_at = now
            Experiment.objects.filter(pk=self.experiment_id).update(heartbeat_at=timezone.now())

    def cancelled(self) -> bool:
        if not self.cancel_seen:
            self._refresh()
        return self.cancel_seen

    def budget_reached(self) -> str | None:
        if self.max_tokens is None and self.max_cost_nanos is None:
            return None
        self._refresh()
        message = self.over(*self.spent)
        if message is not None:
            budget_reached(self.experiment_id, message)
        return message

    def over(self, tokens: int, cost: int) -> str | None:
        """The budget's message once `tokens` and `cost` (nano-dollars) reached it."""
        if self.max_tokens is not None and tokens >= self.max_tokens:
            return f"Budget reached: {tokens} tokens of the experiment's {self.max_tokens}."
        if self.max_cost_nanos is not None and cost >= self.max_cost_nanos:
            return (
                f"Budget reached: ${cost / NANOS_PER_USD:g} of the experiment's "
                f"${self.max_cost_nanos / NANOS_PER_USD:g}."
            )
        return None

    def budget_reserve(self, usages: list[dict]) -> int:
        """How many of these batch requests the budget allows now, in order, counting those
        this chunk has checked already. Only a check: the sides parked are reserved in the
        transaction that parks them (`batches.sides_store`), which may refuse some still."""
        if not self.limited:
            return len(usages)
        self._refresh()
        tokens, cost = self.reserving
        admitted = 0
        for usage in usages:
            if self.over(self.spent[0] + tokens, self.spent[1] + cost):
                break
            tokens += usage.get("inputTokens", 0) + usage.get("outputTokens", 0)
            cost += usage.get("costNanoUsd", 0)
            admitted += 1
        self.reserving = (tokens, cost)
        return admitted

    @property
    def limited(self) -> bool:
        return self.max_tokens is not None or self.max_cost_nanos is not None

    def usage_record(self, usage: dict) -> None:
        """With a budget, the call is counted in the experiment's row now (every worker's
        next check sees it); without one, it is added up here and counted by `flush` at the
        chunk's end (one UPDATE, not one per call on the same row)."""
        with self.lock:
            self.unflushed += Usage.of(usage)
        if self.limited:
            self.flush()
            self.read_at = float("-inf")  # see our own spending at the next check

    def flush(self) -> None:
        with self.lock:
            spent, self.unflushed = self.unflushed, ZERO
        if not spent:
            return
        Experiment.objects.filter(pk=self.experiment_id).update(
            spent_tokens=F("spent_tokens") + spent.tokens,
            spent_cost_nano_usd=F("spent_cost_nano_usd") + spent.cost_nano_usd,
            **{name: F(name) + value for name, value in spent.columns().items() if value},
        )

    def wait(self, state: EntityState, ctx: StepContext, request: WaitRequest) -> bool:
        """A provider batch's request parks the side (its batch is the experiment's own);
        any other wait is only recorded, and the step goes on."""
        if isinstance(request, AiBatchWaitRequest):
            self.parked[state.entity_id] = (ctx.step_index, request)
            state.outcome, state.step_id = Outcome.WAITING, ctx.step_id
            return True
        self.waits.setdefault(state.entity_id, []).append(
            {"stepId": ctx.step_id, "kind": request.kind}
        )
        return False
