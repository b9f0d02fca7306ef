"""A run's budget (`maxTokens`, `maxCostUsd`), held across workers and chunks.

What the run's calls spent is counted in the run's row as each call finishes (one UPDATE
adding it, RETURNING the run's total so far), not in a process: every worker's next check
sees every other's spending. Once the total reaches the budget no new call starts: the calls
in flight finish and count, so a run overshoots by at most the calls in flight at that
moment (across all workers) and their cost. The first worker to see it reached writes the
log line, once.

Calls sent in a provider batch are paid for long after they are sent, so they are reserved
before (`reserve`): each request's estimated tokens and cost (`workflows.pricing.request_estimate`)
are added to the run's spending when the chunk parks it, in one short transaction holding
the run's row, one request after another while the spending is below the budget; those
past it are not sent. When the batch's results arrive the reservations are replaced by
what the answers spent (`adjust`). So a batch run overshoots by at most one request's
estimate, plus what answers spent beyond their estimates.
"""

import time
from dataclasses import dataclass
from typing import ClassVar

from django.db import connection, models, transaction
from django.utils import timezone

from jobs.models import Run, RunLog
from workflows.usage import Usage

# How old the spending seen by a check may be. A worker's own finished calls refresh it at
# once; this bounds how long another worker's go unseen.
BUDGET_CHECK_INTERVAL_S = 0.2
NANOS_PER_USD = 1_000_000_000


def usd(nanos: int) -> str:
    return f"{nanos / NANOS_PER_USD:.2f}" if nanos >= 10_000_000 else f"{nanos / NANOS_PER_USD:g}"


@dataclass
class RunBudget:
    """A run's budget, read and spent in its row. Another owner of model calls with the
    same budget and spending columns (an experiment) subclasses it, naming its `model`."""

    model: ClassVar[type[models.Model]] = Run

    run_id: str
    max_tokens: int | None
    max_cost_nanos: int | None
    spent_tokens: int = 0
    spent_cost_nanos: int = 0
    read_at: float = float("-inf")
    message: str | None = None

    @classmethod
    def of(cls, run: Run) -> "RunBudget":
        return cls(run.pk, run.budget_max_tokens, run.budget_max_cost_nano_usd)

    @property
    def limited(self) -> bool:
        return self.max_tokens is not None or self.max_cost_nanos is not None

    def spend(self, usage: Usage) -> None:
        """Add finished calls' tokens (input + output) and cost to the run's spending."""
        self._refresh((usage.tokens, usage.cost_nano_usd))

    def adjust(self, tokens: int, cost_nanos: int) -> None:
        """Add `tokens` and `cost_nanos` (negative: give back) to the run's spending: what
        batch answers spent in place of what was reserved for them."""
        if tokens or cost_nanos:
            self._refresh((tokens, cost_nanos))

    def reserve(self, usages: list[dict]) -> int:
        """Reserve the estimated usages (`inputTokens`, `outputTokens`, `costNanoUsd`) in
        order, each while the run's spending is below the budget; returns how many were.
        Once one is refused `reached()` names the budget."""
        table = self.model._meta.db_table
        with transaction.atomic(), connection.cursor() as cursor:
            # An UPDATE that changes nothing takes the row's lock (PostgreSQL) or the
            # database's write lock (SQLite) before the spending is read.
            cursor.execute(
                f"UPDATE {table} SET spent_tokens = spent_tokens WHERE id = %s "  # noqa: S608
                "RETURNING spent_tokens, spent_cost_nano_usd",
                [self.run_id],
            )
            tokens, cost = cursor.fetchone()
            admitted = 0
            for usage in usages:
                if self._over(tokens, cost):
                    break
                tokens += usage.get("inputTokens", 0) + usage.get("outputTokens", 0)
                cost += usage.get("costNanoUsd", 0)
                admitted += 1
            if admitted:
                cursor.execute(
                    f"UPDATE {table} SET spent_tokens = %s, "  # noqa: S608
                    "spent_cost_nano_usd = %s WHERE id = %s",
                    [tokens, cost, self.run_id],
                )
        self.spent_tokens, self.spent_cost_nanos = tokens, cost
        self.read_at = time.monotonic()
        return admitted

    def _over(self, tokens: int, cost_nanos: int) -> bool:
        return (self.max_cost_nanos is not None and cost_nanos >= self.max_cost_nanos) or (
            self.max_tokens is not None and tokens >= self.max_tokens
        )

    def reached(self) -> str | None:
        """The message naming the budget once the run's spending reached it, else None."""
        if self.message is not None:
            return self.message
        if time.monotonic() - self.read_at >= BUDGET_CHECK_INTERVAL_S:
            self._refresh()
        if self.max_cost_nanos is not None and self.spent_cost_nanos >= self.max_cost_nanos:
            self.message = (
                f"Budget reached: maxCostUsd {usd(self.max_cost_nanos)} "
                f"(spent {usd(self.spent_cost_nanos)})"
            )
        elif self.max_tokens is not None and self.spent_tokens >= self.max_tokens:
            self.message = (
                f"Budget reached: maxTokens {self.max_tokens} (spent {self.spent_tokens})"
            )
        if self.message is not None:
            self._log_once()
        return self.message

    def _refresh(self, added: tuple[int, int] | None = None) -> None:
        """Read the run's spending, after adding `added` (tokens, nano-dollars) to it."""
        table = self.model._meta.db_table
        with connection.cursor() as cursor:
            if added is None:
                cursor.execute(
                    f"SELECT spent_tokens, spent_cost_nano_usd FROM {table} "  # noqa: S608
                    "WHERE id = %s",
                    [self.run_id],
                )
            else:
                cursor.execute(
                    f"UPDATE {table} SET spent_tokens = spent_tokens + %s, "  # noqa: S608
                    "spent_cost_nano_usd = spent_cost_nano_usd + %s "
                    "WHERE id = %s RETURNING spent_tokens, spent_cost_nano_usd",
                    [*added, self.run_id],
                )
            row = cursor.fetchone()
        if row:
            self.spent_tokens, self.spent_cost_nanos = row
        self.read_at = time.monotonic()

    def _log_once(self) -> None:
        now = timezone.now()
        first = Run.objects.filter(pk=self.run_id, budget_reached_at__isnull=True).update(
            budget_reached_at=now
        )
        if first:
            RunLog.objects.create(
                run_id=self.run_id,
                timestamp=now,
                level=RunLog.Level.WARNING,
                message=f"{self.message}: no new model call starts; the entities left fail.",
            )
