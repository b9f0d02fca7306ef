"""Provider batches: the kind of wait an `ai_generate` step in `mode: batch` asks for. The
entities of one chunk at the step become one provider batch job (`AiBatch`, one
`AiBatchRequest` per wait, the wait's id its `custom_id`); the kind's tick polls it and, once it
ended, resolves each wait with its answer, so the entity resumes after the step. What the answers
used counts in the run's usage (and budget) when they are collected.

Crash safety: the batch row is recorded in the chunk's finishing transaction and submitted
after COMMIT by a task, or by the kind's tick once a dead submitter's lease passed, always
with the batch's id as the provider's idempotency key: a resubmission finds the same job.
Every step that talks to the provider holds the batch's lease (`lease_until`), taken by a
conditional UPDATE, so two workers never poll or submit the same batch at once.

Retries: an answer that fails its JSON schema is asked again once with the corrective
prompt; retryable per-request errors and requests missing from the results go again, up to
AI_MAX_ATTEMPTS submissions, in a new batch, or live when at most `LIVE_RETRY_MAX` are left
(a `live` AiBatch, answered by the poll's worker). Then the entity fails with the
provider's message; a batch the provider rejects fails all of its entities with its reason.

Budget: each request was reserved at its estimate when its chunk parked it (`ai_generate`);
its results replace the reservation with what the answer spent, and a retry is reserved
again or, past the budget, fails with the budget's message (`jobs.engine.budget`).
"""

from dataclasses import asdict
from datetime import datetime, timedelta
from functools import partial

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from jobs import queue
from jobs.engine.budget import RunBudget
from jobs.engine.outcomes import run_count
from jobs.engine.waits import runs_lock, waits_resolve_each
from jobs.models import Run, RunLog, WaitStatus
from jobs.waits.ai_batch.models import AiBatch, AiBatchRequest, AiBatchStatus
from workflows.providers import GenerationRequest, provider_get
from workflows.providers.base import BatchItem, BatchResult, BatchStatus
from workflows.steps.ai_generate import (
    answer_generate,
    answer_of,
    corrective,
    invalid_after_retry,
    priced,
    request_estimate,
    usage_add,
)
from workflows.steps.runtime import StepError
from workflows.steps.waits import Resolution
from workflows.usage import Usage

# Retries this few are answered live at once rather than waiting hours for a new batch.
LIVE_RETRY_MAX = 5
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


def _requests(batch: AiBatch) -> list[AiBatchRequest]:
    return list(
        AiBatchRequest.objects.filter(batch=batch, wait__status=WaitStatus.WAITING)
        .select_related("wait")
        .order_by("wait_id")
    )


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
        BatchItem(entry.wait_id, GenerationRequest(**entry.request["request"]))
        for entry in _requests(batch)
    ]
    if not items:  # no entity waits for it any more: nothing to send
        _collect(batch, BatchStatus("ended"), {}, AiBatchStatus.PENDING)
        return True
    try:
        provider_batch_id = provider.batch_submit(items, idempotency_key=batch.pk)
    except StepError as exc:
        _collect(batch, BatchStatus("failed", error=exc.message), {}, AiBatchStatus.PENDING)
        return True
    submitted = {"provider_batch_id": provider_batch_id, "submitted_at": timezone.now()}
    moved = AiBatch.objects.filter(pk=batch.pk, status=AiBatchStatus.PENDING).update(
        status=AiBatchStatus.IN_PROGRESS, lease_until=None, **submitted
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
                entry.wait_id: GenerationRequest(**entry.request["request"])
                for entry in _requests(batch)
            }
            answers = provider.batch_results(batch.provider_batch_id, requests)
            results = {result.custom_id: result for result in answers}
    except StepError as exc:  # the provider did not answer: the next poll asks again
        _release(batch, log=f"Polling batch {batch.provider_batch_id} failed: {exc.message}")
        return None
    if status.state == "in_progress":
        AiBatch.objects.filter(pk=batch.pk).update(
            polled_at=timezone.now(), lease_until=None, error="", **_counts(status)
        )
        return status.state
    _collect(batch, status, results, AiBatchStatus.IN_PROGRESS)
    return status.state


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
    for entry in _requests(batch):
        request = GenerationRequest(**entry.request["request"])
        try:
            value, usage = answer_generate(provider, request, on_retry=lambda message: None)
        except StepError as exc:
            results[entry.wait_id] = BatchResult(entry.wait_id, error=exc.message)
            continue
        results[entry.wait_id] = (value, priced(usage, provider, request.model))
    _collect(batch, BatchStatus("ended"), results, AiBatchStatus.PENDING)


def _collect(batch: AiBatch, status: BatchStatus, results: dict, expected: str) -> None:
    """Resolve the batch's waits from its results (a live batch's: answers already checked
    and priced), and send what must be retried again; in one transaction, under the run's
    lock, if the batch is still in the `expected` status (no cancel came first)."""
    provider = provider_get(batch.provider)
    now = timezone.now()
    with transaction.atomic():
        goes_on = runs_lock(run_ids=[batch.run_id]).get(batch.run_id)
        current = (
            AiBatch.objects.select_for_update()
            .filter(pk=batch.pk)
            .values_list("status", flat=True)[0]
        )
        if current != expected:
            return  # cancelled meanwhile (the cancel ended its waits)
        resolutions, retries, logs, spent = {}, [], [], {}
        entries = _requests(batch) if goes_on else []
        for entry in entries:
            outcome = _outcome(batch, provider, status, results.get(entry.wait_id), entry)
            if outcome.usage:
                spent = usage_add(spent, outcome.usage)
            if outcome.retry is not None:
                retries.append((entry, outcome))
            else:
                resolutions[entry.wait_id] = outcome.resolution
            if outcome.log:
                logs.append(_log_line(batch, entry, outcome.log, now))
        if spent:  # counted in the run's usage now, as a chunk counts its calls
            run_count(batch.run_id, {}, Usage.of(spent), now)
        budget = _budget(batch.run_id)
        if budget is not None:
            retries = _settle(budget, provider, entries, spent, retries, resolutions)
        if resolutions:
            waits_resolve_each(resolutions=resolutions, run_ids=[batch.run_id], now=now)
        if retries:
            _retry(batch, retries)
        failed = sum(1 for r in resolutions.values() if r.outcome == "fail")
        AiBatch.objects.filter(pk=batch.pk).update(
            status=AiBatchStatus.FAILED if status.state == "failed" else AiBatchStatus.ENDED,
            error=status.error,
            polled_at=now,
            ended_at=now,
            lease_until=None,
            **(
                _counts(status)
                if status.counts
                else {"completed": len(resolutions) - failed, "failed": failed + len(retries)}
            ),
        )
        logs.append(
            RunLog(
                run_id=batch.run_id,
                timestamp=now,
                level=RunLog.Level.ERROR if status.state == "failed" else RunLog.Level.INFO,
                step_id=batch.step_id,
                message=_summary(batch, status, len(resolutions) - failed, failed, len(retries)),
            )
        )
        RunLog.objects.bulk_create(logs, batch_size=1000)


def _budget(run_id: str) -> RunBudget | None:
    budget = RunBudget.of(Run.objects.get(pk=run_id))
    return budget if budget.limited else None


def _settle(budget: RunBudget, provider, entries, spent: dict, retries: list, resolutions):
    """The run's budget: what the answers spent replaces what was reserved for their
    requests; each retry is reserved in turn, and those past the budget fail instead of
    going again (into `resolutions`). Returns the retries that go."""
    reserved = [entry.request.get("reserved") or {} for entry in entries]
    budget.adjust(
        _tokens(spent) - sum(_tokens(r) for r in reserved),
        spent.get("costNanoUsd", 0) - sum(r.get("costNanoUsd", 0) for r in reserved),
    )
    if not retries:
        return retries
    # Priced live (the dearer way a retry may go); corrected once answered.
    estimates = [request_estimate(provider, outcome.retry) for _, outcome in retries]
    admitted = budget.reserve(estimates)
    reached = budget.reached() if admitted < len(retries) else None
    for entry, outcome in retries[admitted:]:  # keeping what this attempt used
        used = usage_add(entry.usage or {}, outcome.usage)
        resolutions[entry.wait_id] = _failed(reached or "Budget reached.", used)
    for (_, outcome), estimate in zip(retries, estimates, strict=False):
        outcome.reserved = estimate
    return retries[:admitted]


def _tokens(usage: dict) -> int:
    return usage.get("inputTokens", 0) + usage.get("outputTokens", 0)


class _Outcome:
    """What one request's result means: a resolution for its wait, or a retry (`retry`:
    the request to send again, `corrected` when it carries the corrective prompt)."""

    def __init__(self, *, resolution=None, retry=None, corrected=False, usage=None, log=""):
        self.resolution, self.retry, self.corrected = resolution, retry, corrected
        self.usage, self.log = usage or {}, log
        self.reserved: dict | None = None  # the retry's reservation against the budget


def _outcome(batch, provider, status, result, entry: AiBatchRequest) -> _Outcome:
    request = GenerationRequest(**entry.request["request"])
    earlier = entry.usage or {}
    if status.state == "failed":
        error = f"{batch.provider}: the batch was rejected: {status.error or 'no reason given'}"
        return _Outcome(resolution=_failed(error, earlier))
    if isinstance(result, tuple):  # answered live: checked and priced already
        value, usage = result
        return _Outcome(resolution=_answered(entry, value, usage_add(earlier, usage)), usage=usage)
    if result is not None and result.generation is not None:
        usage = priced({**result.generation.usage, "calls": 1}, provider, request.model, batch=True)
        total = usage_add(earlier, usage)
        value, problem = answer_of(result.generation.text, request)
        if problem is None:
            return _Outcome(resolution=_answered(entry, value, total), usage=usage)
        if not entry.corrected:
            return _Outcome(
                retry=corrective(request, problem),
                corrected=True,
                usage=usage,
                log=f"{batch.provider}: the answer was not valid ({problem}); asking once more.",
            )
        return _Outcome(
            resolution=_failed(invalid_after_retry(batch.provider, problem), total), usage=usage
        )
    if result is None:
        error = f"{batch.provider}: no result for the request in batch {batch.provider_batch_id}"
        error += " (it expired or was cancelled)"
        retryable = True
    else:
        error, retryable = result.error, result.retryable
    if retryable and entry.attempts < settings.AI_MAX_ATTEMPTS:
        return _Outcome(
            retry=request,
            corrected=entry.corrected,
            log=f"{error}; retrying (attempt {entry.attempts + 1} of {settings.AI_MAX_ATTEMPTS}).",
        )
    return _Outcome(resolution=_failed(error, earlier))


def _answered(entry: AiBatchRequest, value, usage: dict) -> Resolution:
    return Resolution(
        "continue", set={entry.request["outputField"]: value}, output=value, usage=usage
    )


def _failed(error: str, usage: dict) -> Resolution:
    return Resolution("fail", error=error, usage=usage)


def _retry(batch: AiBatch, retries: list) -> None:
    """The requests to send again, in one new batch (live when few), after COMMIT."""
    again = AiBatch.objects.create(
        run_id=batch.run_id,
        step_id=batch.step_id,
        provider=batch.provider,
        model=batch.model,
        attempt=batch.attempt + 1,
        live=len(retries) <= LIVE_RETRY_MAX,
        total=len(retries),
    )
    for entry, outcome in retries:
        entry.batch = again
        entry.request = {**entry.request, "request": asdict(outcome.retry)}
        if outcome.reserved is not None:
            entry.request["reserved"] = outcome.reserved
        entry.attempts += 1
        entry.corrected = outcome.corrected
        entry.usage = usage_add(entry.usage or {}, outcome.usage)
    AiBatchRequest.objects.bulk_update(
        [entry for entry, _ in retries],
        ["batch", "request", "attempts", "corrected", "usage"],
        batch_size=500,
    )
    transaction.on_commit(partial(queue.ai_batch_submit_enqueue, again.pk))


def _counts(status: BatchStatus) -> dict:
    counts = status.counts or {}
    return {key: counts[key] for key in ("total", "completed", "failed") if key in counts}


def _release(batch: AiBatch, *, log: str) -> None:
    """The provider did not answer: free the batch for the next poll, keep the problem on
    it (shown with the batch) and log it once, not at every poll while it lasts."""
    AiBatch.objects.filter(pk=batch.pk).update(
        lease_until=None, polled_at=timezone.now(), error=log
    )
    if batch.error != log:
        RunLog.objects.create(
            run_id=batch.run_id, level=RunLog.Level.WARNING, step_id=batch.step_id, message=log
        )


def _log_line(batch: AiBatch, entry: AiBatchRequest, message: str, now) -> RunLog:
    return RunLog(
        run_id=batch.run_id,
        timestamp=now,
        level=RunLog.Level.WARNING,
        message=message,
        entity_id=entry.wait.entity_id,
        step_id=batch.step_id,
    )


def _summary(batch: AiBatch, status: BatchStatus, answered: int, failed: int, retried: int):
    what = "Live retries" if batch.live else f"Batch {batch.provider_batch_id}"
    if status.state == "failed":
        return f"{what} was rejected by {batch.provider}: {status.error}; {failed} entities failed."
    return f"{what} ended: {answered} answered, {failed} failed, {retried} sent again."
