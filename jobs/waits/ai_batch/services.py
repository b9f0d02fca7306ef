"""Provider batches: the kind of wait an `ai_generate` step in `mode: batch` asks for. The
entities of one chunk at the step become one provider batch job (`AiBatch`, one
`AiBatchRequest` per wait, the wait's id its `custom_id`; or, for an experiment's batch, per
parked side, `jobs.experiments.batches`); this module records, submits and polls it and tells
the provider when its run (experiment) is cancelled; once it ended, `results` resolves each wait
with its answer, so the entity resumes after the step. What the answers used counts in the
run's usage (and budget) when they are collected.

Crash safety: the batch row is recorded in the chunk's finishing transaction and submitted
after COMMIT by a task (`jobs.waits.ai_batch.tasks`), or by the kind's tick once a dead
submitter's lease passed, always with the batch's id as the provider's idempotency key: a
resubmission finds the same job. Every step that talks to the provider holds the batch's
lease (`lease_until`), taken by a conditional UPDATE, so two workers never poll or submit
the same batch at once.
"""

from datetime import datetime, timedelta
from functools import partial

from django.conf import settings
from django.db import transaction
from django.db.models import Exists, F, OuterRef, Q
from django.utils import timezone

from jobs.models import RunLog
from jobs.waits.ai_batch.conf import ai_batch_poll_s
from jobs.waits.ai_batch.models import AiBatch, AiBatchRequest, AiBatchStatus
from jobs.waits.ai_batch.owners import LogLine, owners
from jobs.waits.ai_batch.queue import ai_batch_cancel_enqueue, ai_batch_submit_enqueue
from jobs.waits.ai_batch.results import (
    LIVE_RETRY_MAX,
    batch_collect,
    batch_requests,
    status_counts,
)
from workflows.models import LocalBatch
from workflows.providers import GenerationRequest, provider_get
from workflows.providers.base import BatchCallFailed, BatchItem, BatchResult, BatchStatus
from workflows.steps.ai_generate import (
    AiBatchWaitRequest,
    CallsFailed,
    answer_generate,
    priced,
)
from workflows.steps.runtime import StepError

# Polls of this many open batches per beat task (the next beat takes the rest).
POLL_MAX = 500


def lease_length() -> timedelta:
    """How long one worker may take to submit, poll or answer a batch live before another
    may (every call of the few live ones with all of its retries fits)."""
    per_call = settings.AI_TIMEOUT_S * settings.AI_MAX_ATTEMPTS + settings.AI_MAX_RETRY_WAIT_S
    return timedelta(seconds=max(120.0, LIVE_RETRY_MAX * per_call))


def _claim(batch_id: str, status: str, now: datetime) -> AiBatch | None:
    """Take the batch's lease if it is in `status` and no other worker holds it."""
    free = Q(lease_until__isnull=True) | Q(lease_until__lt=now)
    claimed = AiBatch.objects.filter(free, pk=batch_id, status=status).update(
        lease_until=now + lease_length()
    )
    return AiBatch.objects.get(pk=batch_id) if claimed else None


def ai_batches_record(
    *,
    run_id: str | None = None,
    experiment_id: str | None = None,
    requests: list[tuple[str, str | None, str, AiBatchWaitRequest]],
) -> list[AiBatch]:
    """Record the batches of a run's or an experiment's requests just parked, one per step,
    provider and model, and submit each after COMMIT. `requests` are (request id, the run's
    wait id or None, step id, what the step asked); a request's id is its `custom_id`."""
    groups: dict[tuple[str, str, str], list] = {}
    for entry in requests:
        key = (entry[2], entry[3].provider, entry[3].request["model"])
        groups.setdefault(key, []).append(entry)
    batches = []
    for (step_id, provider, model), entries in groups.items():
        batch = AiBatch.objects.create(
            run_id=run_id,
            experiment_id=experiment_id,
            step_id=step_id,
            provider=provider,
            model=model,
            total=len(entries),
        )
        AiBatchRequest.objects.bulk_create(
            [
                AiBatchRequest(id=pk, wait_id=wait_id, batch=batch, request=request.stored())
                for pk, wait_id, _, request in entries
            ],
            batch_size=1000,
        )
        transaction.on_commit(partial(ai_batch_submit_enqueue, batch.pk))
        batches.append(batch)
    return batches


def ai_batches_cancel(*, batch_ids) -> None:
    """The open batches of these (a subquery may name them) are no longer wanted: mark them
    cancelling and tell their providers after COMMIT. Call under their owner's lock."""
    cancelling = list(
        AiBatch.objects.filter(
            pk__in=batch_ids, status__in=[AiBatchStatus.PENDING, AiBatchStatus.IN_PROGRESS]
        ).values_list("pk", flat=True)
    )
    AiBatch.objects.filter(pk__in=cancelling).update(status=AiBatchStatus.CANCELLING)
    for batch_id in cancelling:
        transaction.on_commit(partial(ai_batch_cancel_enqueue, batch_id))


def ai_batch_submit(*, batch_id: str) -> bool:
    """Send a recorded batch to its provider (or answer a `live` one); returns whether this
    call did. Safe to call twice: the lease and the idempotency key make one submission."""
    now = timezone.now()
    batch = _claim(batch_id, AiBatchStatus.PENDING, now)
    if batch is None:
        return False
    if batch.live:
        _answer_live(batch)
        return True
    provider = provider_get(batch.provider)
    items = [
        BatchItem(entry.pk, GenerationRequest(**entry.request["request"]))
        for entry in batch_requests(batch)
    ]
    if not items:  # no entity waits for it any more: nothing to send
        batch_collect(batch, BatchStatus("ended"), {}, AiBatchStatus.PENDING)
        return True
    try:
        provider_batch_id = provider.batch_submit(items, idempotency_key=batch.pk)
    except StepError as exc:
        if isinstance(exc, BatchCallFailed) and exc.retryable:
            # Says nothing of the requests (a 5xx, a 429, a timeout): sent again after
            # AI_BATCH_POLL_S with the same key, which finds a batch the provider made.
            wait = ai_batch_poll_s()
            log = f"Submitting the batch failed: {exc.message}; sent again in {wait:g} s."
            _release(batch, log=log, until=now + timedelta(seconds=wait))
            return True
        batch_collect(batch, BatchStatus("failed", error=exc.message), {}, AiBatchStatus.PENDING)
        return True
    submitted = {"provider_batch_id": provider_batch_id, "submitted_at": timezone.now()}
    moved = AiBatch.objects.filter(pk=batch.pk, status=AiBatchStatus.PENDING).update(
        status=AiBatchStatus.IN_PROGRESS, lease_until=None, error="", **submitted
    )
    if not moved:  # the run was cancelled while the provider took it
        AiBatch.objects.filter(pk=batch.pk).update(**submitted)
        ai_batch_cancel(batch_id=batch.pk)
    return True


def ai_batch_poll(*, batch_id: str) -> str | None:
    """Ask the provider about a submitted batch; once it ended, resolve its waits. Returns
    the provider's state (None when another worker holds the batch)."""
    batch = _claim(batch_id, AiBatchStatus.IN_PROGRESS, timezone.now())
    if batch is None:
        return None
    provider = provider_get(batch.provider)
    try:
        status = provider.batch_status(batch.provider_batch_id)
        results = {}
        if status.state not in ("in_progress", "failed"):
            # The requests let each answer be read as its sync call's would be (a schema's
            # wrapper or forced tool unwrapped).
            requests = {
                entry.pk: GenerationRequest(**entry.request["request"])
                for entry in batch_requests(batch)
            }
            results = _by_request(provider.batch_results(batch.provider_batch_id, requests))
    except StepError as exc:  # the provider did not answer: the next poll asks again
        _release(batch, log=f"Polling batch {batch.provider_batch_id} failed: {exc.message}")
        return None
    if status.state == "in_progress":
        AiBatch.objects.filter(pk=batch.pk).update(
            polled_at=timezone.now(), lease_until=None, error="", **status_counts(status)
        )
        return status.state
    batch_collect(batch, status, results, AiBatchStatus.IN_PROGRESS)
    return status.state


def _by_request(results: list[BatchResult]) -> dict[str, BatchResult]:
    """Each request's result by its `custom_id`. A request with two lines (a provider's
    repeat) keeps its first answer: an error line after it does not send it again (paid
    for twice), nor does a second answer count twice."""
    chosen: dict[str, BatchResult] = {}
    for result in results:
        kept = chosen.get(result.custom_id)
        if kept is None or (kept.generation is None and result.generation is not None):
            chosen[result.custom_id] = result
    return chosen


def ai_batch_cancel(*, batch_id: str) -> None:
    """Tell the provider the batch of a cancelled run is no longer wanted (idempotent)."""
    batch = AiBatch.objects.filter(pk=batch_id, status=AiBatchStatus.CANCELLING).first()
    if batch is None:
        return
    now = timezone.now()
    if batch.provider_batch_id:
        try:
            provider_get(batch.provider).batch_cancel(batch.provider_batch_id)
        except StepError as exc:  # asked again by the next beat poll
            _release(batch, log=f"Cancelling batch {batch.provider_batch_id} failed: {exc.message}")
            return
    elif batch.lease_until is not None and batch.lease_until > now:
        return  # a submission in flight: it cancels the provider's batch once it has its id
    AiBatch.objects.filter(pk=batch_id, status=AiBatchStatus.CANCELLING).update(
        status=AiBatchStatus.CANCELLED, ended_at=now, lease_until=None
    )


def ai_batches_poll(*, polled_before: datetime | None = None) -> int:
    """Submit the batches a dead worker left unsent, tell providers about the batches of
    cancelled runs, and poll the submitted ones (only those last polled before
    `polled_before`, when given: the kind's tick polls each batch every AI_BATCH_POLL_S).
    Returns how many it handled."""
    now = timezone.now()
    due = AiBatch.objects.filter(status__in=AiBatchStatus.open()).filter(
        Q(lease_until__isnull=True) | Q(lease_until__lt=now)
    )
    if polled_before is not None:
        due = due.exclude(status=AiBatchStatus.IN_PROGRESS, polled_at__gte=polled_before)
    due = list(
        due.order_by(F("polled_at").asc(nulls_first=True)).values_list("pk", "status")[:POLL_MAX]
    )
    handlers = {
        AiBatchStatus.PENDING: ai_batch_submit,
        AiBatchStatus.IN_PROGRESS: ai_batch_poll,
        AiBatchStatus.CANCELLING: ai_batch_cancel,
    }
    for batch_id, status in due:
        handlers[status](batch_id=batch_id)
    return len(due)


def _answer_live(batch: AiBatch) -> None:
    """A few retries: answered now by live calls (at the live price)."""
    provider = provider_get(batch.provider)
    results = {}
    for entry in batch_requests(batch):
        request = GenerationRequest(**entry.request["request"])
        try:
            value, usage = answer_generate(provider, request, on_retry=lambda message: None)
        except CallsFailed as exc:  # answered, invalid: paid for, counted with the failure
            results[entry.pk] = CallsFailed(exc.message, priced(exc.usage, provider, request.model))
            continue
        except StepError as exc:
            results[entry.pk] = BatchResult(entry.pk, error=exc.message)
            continue
        results[entry.pk] = (value, priced(usage, provider, request.model))
    batch_collect(batch, BatchStatus("ended"), results, AiBatchStatus.PENDING)


def _release(batch: AiBatch, *, log: str, until: datetime | None = None) -> None:
    """The provider did not answer: free the batch for the next poll (or from `until`),
    keep the problem on it (shown with the batch) and log it once, not at every poll while
    it lasts."""
    AiBatch.objects.filter(pk=batch.pk).update(
        lease_until=until, polled_at=timezone.now(), error=log
    )
    if batch.error != log:
        owners.of(batch).log([LogLine(RunLog.Level.WARNING, log)], timezone.now())


def local_batches_prune(*, now: datetime, limit: int) -> int:
    """Delete up to `limit` of the local stand-in provider's batches (`LocalBatch`: what it
    was sent, kept for its polls) submitted before `now` whose batch of ours, named by its
    idempotency key, is gone (pruned with its run, deleted with its experiment): nothing
    polls them again. Returns how many (retention's pruner)."""
    ours = AiBatch.objects.filter(pk=OuterRef("idempotency_key"))
    ids = list(
        LocalBatch.objects.filter(submitted_at__lt=now)
        .exclude(Exists(ours))
        .order_by()
        .values_list("pk", flat=True)[:limit]
    )
    return LocalBatch.objects.filter(pk__in=ids).delete()[0] if ids else 0
