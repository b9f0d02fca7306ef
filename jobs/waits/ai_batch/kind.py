"""The `ai_batch` kind of wait: the entities of one chunk at an `ai_generate` step in batch
mode become one provider batch (`services` submits, polls and cancels it, `results` collects
its answers, `tasks` submits and cancels it after COMMIT)."""

from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import QuerySet

from jobs.waits.ai_batch.models import AiBatch, AiBatchRequest
from jobs.waits.ai_batch.services import ai_batches_cancel, ai_batches_poll, ai_batches_record
from jobs.waits.base import Parked, WaitKind
from workflows.steps.ai_generate import AiBatchWaitRequest
from workflows.usage import Usage


class AiBatchWait(WaitKind):
    """A provider's batch job answers the waits one chunk parked at one `ai_generate` step."""

    request_type = AiBatchWaitRequest
    tasks = "jobs.waits.ai_batch.tasks"

    def create(self, parked: list[Parked]) -> None:
        ai_batches_record(
            run_id=parked[0].wait.run_id,
            requests=[(e.wait.pk, e.wait.pk, e.wait.step_id, e.request) for e in parked],
        )

    def tick(self, *, now: datetime) -> int:
        """Submit what a dead worker left unsent, tell providers about the batches of
        cancelled runs, poll the submitted ones. (A provider's batch ends by itself, within
        its window; requests it let expire come back missing from the results, and are
        retried then.)"""
        return ai_batches_poll(polled_before=now - timedelta(seconds=settings.AI_BATCH_POLL_S))

    def run_records(self, run_id: str) -> list[QuerySet]:
        return [
            AiBatchRequest.objects.filter(batch__run_id=run_id),
            AiBatch.objects.filter(run_id=run_id),
        ]

    def cancel(self, *, run_id: str, wait_ids: list[str]) -> dict[str, Usage]:
        requests = AiBatchRequest.objects.filter(pk__in=wait_ids)
        ai_batches_cancel(batch_ids=requests.values("batch_id"))
        # What earlier attempts of these requests used was spent (and counted in the run's
        # usage when their results were collected): their items keep it.
        return {
            wait_id: Usage.of(usage)
            for wait_id, usage in requests.exclude(usage={}).values_list("pk", "usage")
        }
