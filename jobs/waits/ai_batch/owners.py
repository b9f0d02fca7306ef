"""Who a provider batch answers: its owner. A run's batch answers its entities' waits
(`RunOwner`: resolved through the engine, counted in the run's usage and budget, logged in
the run's log). Another holder of parked requests registers its own owner here, named after
its `AiBatch` foreign key (an experiment's shadow sides: `jobs.experiments.batches`), so the
services submit, poll, retry, settle the budget and cancel every batch alike and ask its
owner only what differs: whose requests still wait, where usage, answers and log lines go.
"""

from dataclasses import dataclass
from datetime import datetime

from django.core.exceptions import ImproperlyConfigured
from django.db.models import QuerySet

from jobs.engine.budget import RunBudget
from jobs.engine.outcomes import run_count
from jobs.engine.waits import runs_lock, waits_resolve_each
from jobs.models import Run, RunLog, WaitStatus
from jobs.waits.ai_batch.models import AiBatch, AiBatchRequest
from workflows.steps.waits import Resolution
from workflows.usage import Usage


@dataclass(frozen=True)
class LogLine:
    """A line about a batch (`request`: about one of its requests), for its owner's log."""

    level: str  # RunLog.Level
    message: str
    request: AiBatchRequest | None = None


class BatchOwner:
    """The holder of one batch's requests. `lock`, `count`, `budget` and `resolve` are
    called in the transaction that collects the batch's results, `lock` first."""

    def __init__(self, batch: AiBatch):
        self.batch = batch

    def lock(self) -> bool:
        """Lock the owner's row (before the batch's: a cancel locks them in that order) and
        say whether it goes on (open, no cancel asked)."""
        raise NotImplementedError(f"{type(self).__name__} does not implement lock().")

    def waiting(self) -> QuerySet:
        """The batch's requests whose answer is still waited for, in id order."""
        raise NotImplementedError(f"{type(self).__name__} does not implement waiting().")

    def count(self, usage: Usage, now: datetime) -> None:
        """Add what the batch's answers used to the owner's usage."""
        raise NotImplementedError(f"{type(self).__name__} does not implement count().")

    def budget(self) -> RunBudget | None:
        """The owner's budget, when it has one (reservations replaced, retries reserved)."""
        raise NotImplementedError(f"{type(self).__name__} does not implement budget().")

    def resolve(self, resolutions: dict[str, Resolution], now: datetime) -> None:
        """Hand each request's answer (by request id) to what waits for it."""
        raise NotImplementedError(f"{type(self).__name__} does not implement resolve().")

    def log(self, lines: list[LogLine], now: datetime) -> None:
        """Keep the lines where the owner's log is (none by default)."""


class RunOwner(BatchOwner):
    """A run's batch: its requests are its entities' waits."""

    def lock(self) -> bool:
        return bool(runs_lock(run_ids=[self.batch.run_id]).get(self.batch.run_id))

    def waiting(self) -> QuerySet:
        return (
            AiBatchRequest.objects.filter(batch=self.batch, wait__status=WaitStatus.WAITING)
            .select_related("wait")
            .order_by("id")
        )

    def count(self, usage: Usage, now: datetime) -> None:
        run_count(self.batch.run_id, {}, usage, now)  # as a chunk counts its calls

    def budget(self) -> RunBudget | None:
        budget = RunBudget.of(Run.objects.get(pk=self.batch.run_id))
        return budget if budget.limited else None

    def resolve(self, resolutions: dict[str, Resolution], now: datetime) -> None:
        waits_resolve_each(resolutions=resolutions, run_ids=[self.batch.run_id], now=now)

    def log(self, lines: list[LogLine], now: datetime) -> None:
        RunLog.objects.bulk_create(
            [
                RunLog(
                    run_id=self.batch.run_id,
                    timestamp=now,
                    level=line.level,
                    message=line.message,
                    entity_id=line.request.wait.entity_id if line.request else "",
                    step_id=self.batch.step_id,
                )
                for line in lines
            ],
            batch_size=1000,
        )


class BatchOwners:
    """The owners of batches, by the `AiBatch` foreign key that names them; refuses
    duplicates and batches without a known owner loudly."""

    def __init__(self):
        self._owners: dict[str, type[BatchOwner]] = {}

    def register(self, field: str, cls: type[BatchOwner]) -> None:
        if field in self._owners:
            raise ImproperlyConfigured(f"A batch owner for {field!r} is registered twice.")
        self._owners[field] = cls

    def of(self, batch: AiBatch) -> BatchOwner:
        for field, cls in self._owners.items():
            if getattr(batch, f"{field}_id") is not None:
                return cls(batch)
        raise ImproperlyConfigured(f"Batch {batch.pk} has no registered owner.")


owners = BatchOwners()
owners.register("run", RunOwner)
