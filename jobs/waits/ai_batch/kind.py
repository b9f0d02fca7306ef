"""The `ai_batch` kind of wait: the entities of one chunk at an `ai_generate` step in batch
mode become one provider batch (`services` submits, polls and cancels it, `results` collects
its answers, `tasks` submits and cancels it after COMMIT)."""

from datetime import datetime, timedelta
from functools import partial

from django.conf import settings
from django.db import transaction
from django.db.models import QuerySet

from jobs.waits.ai_batch.models import AiBatch, AiBatchRequest, AiBatchStatus
from jobs.waits.ai_batch.queue import ai_batch_cancel_enqueue, ai_batch_submit_enqueue
from jobs.waits.ai_batch.services import ai_batches_poll
from jobs.waits.base import Parked, WaitKind
from workflows.steps.ai_generate import AiBatchWaitRequest
from workflows.usage import Usage


class AiBatchWait(WaitKind):
    """A provider's batch job answers the waits one chunk parked at one `ai_generate` step."""

    request_type = AiBatchWaitRequest
    tasks = "jobs.waits.ai_batch.tasks"

    def create(self, parked: list[Parked]) -> None:
        groups: dict[tuple[str, str, str], list[Parked]] = {}
        for entry in parked:
            key = (entry.wait.step_id, entry.request.provider, entry.request.request["model"])
            groups.setdefault(key, []).append(entry)
        for (step_id, provider, model), entries in groups.items():
            batch = AiBatch.objects.create(
                run_id=entries[0].wait.run_id,
                step_id=step_id,
                provider=provider,
                model=model,
                total=len(entries),
            )
            AiBatchRequest.objects.bulk_create(
                [
                    AiBatchRequest(wait_id=e.wait.pk, batch=batch, request=e.request.stored())
                    for e in entries
                ],
                batch_size=1000,
            )
            transaction.on_commit(partial(ai_batch_submit_enqueue, batch.pk))

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
        cancelling = list(
            AiBatch.objects.filter(
                pk__in=requests.values("batch_id"),
                status__in=[AiBatchStatus.PENDING, AiBatchStatus.IN_PROGRESS],
            ).values_list("pk", flat=True)
        )
        AiBatch.objects.filter(pk__in=cancelling).update(status=AiBatchStatus.CANCELLING)
        for batch_id in cancelling:
            transaction.on_commit(partial(ai_batch_cancel_enqueue, batch_id))
        # What earlier attempts of these requests used was spent (and counted in the run's
        # usage when their results were collected): their items keep it.
        return {
            wait_id: Usage.of(usage)
            for wait_id, usage in requests.exclude(usage={}).values_list("pk", "usage")
        }
