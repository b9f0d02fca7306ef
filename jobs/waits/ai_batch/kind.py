"""The `ai_batch` kind of wait: the entities of one chunk at an `ai_generate` step in batch
mode become one provider batch (`services` submits, polls and cancels it, `results` collects
its answers, `tasks` submits and cancels it after COMMIT). A run shows its batches in the API
(`batches`, `serializers`) and on its admin page (`templates/admin/jobs/waits/ai_batch/`)."""

from datetime import datetime, timedelta

from django.db.models import QuerySet

from jobs.waits.ai_batch.conf import ai_batch_poll_s
from jobs.waits.ai_batch.models import AiBatch, AiBatchRequest
from jobs.waits.ai_batch.selectors import run_batches
from jobs.waits.ai_batch.serializers import RunBatchSerializer
from jobs.waits.ai_batch.services import (
    ai_batches_cancel,
    ai_batches_poll,
    ai_batches_record,
    local_batches_prune,
)
from jobs.waits.base import Parked, RunDetail, RunPageLink, RunPagePart, WaitKind
from workflows.steps.ai_generate import AiBatchWaitRequest
from workflows.usage import Usage

BATCHES_SHOWN = 100  # on a run's admin page, newest first


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
        return ai_batches_poll(polled_before=now - timedelta(seconds=ai_batch_poll_s()))

    def run_records(self, run_id: str) -> list[QuerySet]:
        return [
            AiBatchRequest.objects.filter(batch__run_id=run_id),
            AiBatch.objects.filter(run_id=run_id),
        ]

    def prune(self, *, now: datetime, limit: int) -> int:
        """The local stand-in provider's batches (`LocalBatch`) whose batch of ours is gone
        (pruned with its run or experiment)."""
        return local_batches_prune(now=now, limit=limit)

    def run_detail(self) -> RunDetail:
        batches = RunBatchSerializer(
            many=True,
            read_only=True,
            help_text="The run's provider batch jobs (`ai_generate` with `mode: batch`), newest "
            "first; empty for a run without batch steps.",
        )
        return RunDetail(fields={"batches": batches}, prefetch=("batches",))

    def run_page(self, run) -> RunPagePart | None:
        batches = run_batches(run_id=run.pk, limit=BATCHES_SHOWN)
        if not batches:
            return None
        return RunPagePart(
            links=(RunPageLink("AI batches", "#run-batches"),),
            template="admin/jobs/waits/ai_batch/run.html",
            context={"batches": batches},
        )

    def cancel(self, *, run_id: str, wait_ids: list[str]) -> dict[str, Usage]:
        requests = AiBatchRequest.objects.filter(pk__in=wait_ids)
        ai_batches_cancel(batch_ids=requests.values("batch_id"))
        # What earlier attempts of these requests used was spent (and counted in the run's
        # usage when their results were collected): their items keep it.
        return {
            wait_id: Usage.of(usage)
            for wait_id, usage in requests.exclude(usage={}).values_list("pk", "usage")
        }
