"""What the `ai_batch` kind of wait asks of an experiment that owns a provider batch
(`jobs.waits.ai_batch.owners`): whose requests still wait (its parked sides), where the
answers go (the sides, resumed by `batches.sides_resume`), where usage is counted and which
budget settles it (the experiment's row). Registered when the app loads (`jobs.apps`)."""

from datetime import datetime
from functools import partial

from django.db import transaction
from django.db.models import F, QuerySet

from config.bulk import rows_update
from jobs import queue
from jobs.engine.budget import RunBudget
from jobs.experiments.log import budget_reached, experiment_log_lines
from jobs.experiments.models import Experiment, ExperimentSide, ExperimentStatus, SideStatus
from jobs.waits.ai_batch.models import AiBatchRequest
from jobs.waits.ai_batch.owners import BatchOwner, LogLine, owners
from workflows.steps.waits import Resolution
from workflows.usage import Usage


class ExperimentBudget(RunBudget):
    """An experiment's budget, in its row (the same columns as a run's)."""

    model = Experiment

    def _log_once(self) -> None:
        budget_reached(self.run_id, self.message)


class ExperimentOwner(BatchOwner):
    """An experiment's batch: its requests are the experiment's parked sides; its lines go
    to the experiment's log."""

    def lock(self) -> bool:
        return (
            Experiment.objects.select_for_update()
            .filter(
                pk=self.batch.experiment_id,
                status__in=ExperimentStatus.open(),
                cancel_requested_at=None,
            )
            .exists()
        )

    def waiting(self) -> QuerySet:
        waiting = ExperimentSide.objects.filter(
            experiment_id=self.batch.experiment_id, status=SideStatus.WAITING
        )
        return AiBatchRequest.objects.filter(
            batch=self.batch, id__in=waiting.values("pk")
        ).order_by("id")

    def count(self, usage: Usage, now: datetime) -> None:
        columns = {name: F(name) + value for name, value in usage.columns().items() if value}
        if self.budget() is None:  # else the budget's settling replaces the reservations
            columns.update(
                spent_tokens=F("spent_tokens") + usage.tokens,
                spent_cost_nano_usd=F("spent_cost_nano_usd") + usage.cost_nano_usd,
            )
        Experiment.objects.filter(pk=self.batch.experiment_id).update(heartbeat_at=now, **columns)

    def budget(self) -> RunBudget | None:
        budget = ExperimentBudget.of(Experiment.objects.get(pk=self.batch.experiment_id))
        return budget if budget.limited else None

    def resolve(self, resolutions: dict[str, Resolution], now: datetime) -> None:
        rows_update(
            ExperimentSide,
            ({"id": pk, "resolution": each.stored()} for pk, each in resolutions.items()),
            match=["id"],
            copy=["resolution"],
            assign={"status": SideStatus.RESOLVED, "task_key": self.batch.pk},
            where={"status": SideStatus.WAITING},
        )
        transaction.on_commit(
            partial(queue.experiment_sides_resume_enqueue, self.batch.experiment_id, self.batch.pk)
        )

    def log(self, lines: list[LogLine], now: datetime) -> None:
        # A request is a side: its id is the side's (the entity's, with the side's arm).
        sides = dict(
            ExperimentSide.objects.filter(
                pk__in=[line.request.pk for line in lines if line.request is not None]
            ).values_list("pk", "entity_id")
        )
        experiment_log_lines(
            self.batch.experiment_id,
            [
                (line.level, line.message, sides.get(line.request.pk, "") if line.request else "")
                for line in lines
            ],
            step_id=self.batch.step_id,
            now=now,
        )


owners.register("experiment", ExperimentOwner)
