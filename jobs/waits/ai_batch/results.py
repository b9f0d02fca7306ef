"""Collecting a provider batch's results: what each request's result means for its wait
(an answer checked as in sync mode, a retry, a failure), the run's usage and budget settled
with what the answers spent, the waits resolved, and the retries recorded in a new batch.
`services` calls it once a batch ended (or a live one was answered). What differs between
a run's batch and an experiment's (whose requests wait, where answers, usage, budget and
log lines go) is asked of the batch's owner (`owners`).

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
from functools import partial

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from jobs.engine.budget import RunBudget
from jobs.models import RunLog
from jobs.waits.ai_batch.models import AiBatch, AiBatchRequest, AiBatchStatus
from jobs.waits.ai_batch.owners import LogLine, owners
from jobs.waits.ai_batch.queue import ai_batch_submit_enqueue
from workflows.pricing import request_estimate
from workflows.providers import GenerationRequest, provider_get
from workflows.providers.base import BatchStatus
from workflows.steps.ai_generate import (
    CallsFailed,
    answer_of,
    corrective,
    invalid_after_retry,
    priced,
    usage_add,
)
from workflows.steps.waits import Resolution
from workflows.usage import Usage

# Retries this few are answered live at once rather than waiting hours for a new batch.
LIVE_RETRY_MAX = 5


def batch_requests(batch: AiBatch) -> list[AiBatchRequest]:
    """The batch's requests still waited for (its owner's)."""
    return list(owners.of(batch).waiting())


def batch_collect(batch: AiBatch, status: BatchStatus, results: dict, expected: str) -> None:
    """Resolve the batch's waits from its results (a live batch's: answers already checked
    and priced), and send what must be retried again; in one transaction, under its owner's
    lock (the run's), if the batch is still in the `expected` status (no cancel came first)."""
    provider = provider_get(batch.provider)
    owner = owners.of(batch)
    now = timezone.now()
    with transaction.atomic():
        goes_on = owner.lock()
        current = (
            AiBatch.objects.select_for_update()
            .filter(pk=batch.pk)
            .values_list("status", flat=True)[0]
        )
        if current != expected:
            return  # cancelled meanwhile (the cancel ended its waits)
        resolutions, retries = {}, []
        logs: list[LogLine] = []
        entries = batch_requests(batch) if goes_on else []
        outcomes = [
            (entry, _outcome(batch, provider, status, results.get(entry.pk), entry))
            for entry in entries
        ]
        for entry, outcome in outcomes:
            if outcome.retry is not None:
                retries.append((entry, outcome))
            else:
                resolutions[entry.pk] = outcome.resolution
            if outcome.log:
                logs.append(LogLine(RunLog.Level.WARNING, outcome.log, entry))
        spent = Usage.total(Usage.of(outcome.usage) for _, outcome in outcomes)
        if spent:  # counted in the owner's usage now, as a chunk counts its calls
            owner.count(spent, now)
        budget = owner.budget()
        if budget is not None:
            retries = _settle(budget, provider, entries, spent, retries, resolutions)
        if resolutions:
            owner.resolve(resolutions, now)
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
                status_counts(status)
                if status.counts
                else {"completed": len(resolutions) - failed, "failed": failed + len(retries)}
            ),
        )
        logs.append(
            LogLine(
                RunLog.Level.ERROR if status.state == "failed" else RunLog.Level.INFO,
                _summary(batch, status, len(resolutions) - failed, failed, len(retries)),
            )
        )
        owner.log(logs, now)


def _settle(budget: RunBudget, provider, entries, spent: Usage, retries: list, resolutions):
    """The run's budget: what the answers spent replaces what was reserved for their
    requests; each retry is reserved in turn, and those past the budget fail instead of
    going again (into `resolutions`). Returns the retries that go."""
    reserved = Usage.total(Usage.of(entry.request.get("reserved")) for entry in entries)
    budget.adjust(spent.tokens - reserved.tokens, spent.cost_nano_usd - reserved.cost_nano_usd)
    if not retries:
        return retries
    # Priced live (the dearer way a retry may go); corrected once answered.
    estimates = [request_estimate(provider, outcome.retry) for _, outcome in retries]
    admitted = budget.reserve(estimates)
    reached = budget.reached() if admitted < len(retries) else None
    for entry, outcome in retries[admitted:]:  # keeping what this attempt used
        used = usage_add(entry.usage or {}, outcome.usage)
        resolutions[entry.pk] = _failed(reached or "Budget reached.", used)
    for (_, outcome), estimate in zip(retries, estimates, strict=False):
        outcome.reserved = estimate
    return retries[:admitted]


class _Outcome:
    """What one request's result means: a resolution for its wait, or a retry (`retry`:
    the request to send again, `corrected` when it carries the corrective prompt). `usage`
    is what this attempt's answer used, in the stored shape (with its `calls`)."""

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
    if isinstance(result, CallsFailed):  # answered live, invalid: priced already
        total = usage_add(earlier, result.usage)
        return _Outcome(resolution=_failed(result.message, total), usage=result.usage)
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
        error += " (it expired, was cancelled, or its result line could not be read)"
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
        "continue", set={entry.request["outputField"]: value}, output=value, **_used(usage)
    )


def _failed(error: str, usage: dict) -> Resolution:
    return Resolution("fail", error=error, **_used(usage))


def _used(usage: dict) -> dict:
    """A request's usage over its attempts (stored shape) as a resolution carries it."""
    return {"usage": Usage.of(usage), "calls": usage.get("calls", 0)}


def _retry(batch: AiBatch, retries: list) -> None:
    """The requests to send again, in one new batch (live when few), after COMMIT."""
    again = AiBatch.objects.create(
        run_id=batch.run_id,
        experiment_id=batch.experiment_id,
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
    transaction.on_commit(partial(ai_batch_submit_enqueue, again.pk))


def status_counts(status: BatchStatus) -> dict:
    """The provider's counts of a batch, as its row keeps them."""
    counts = status.counts or {}
    return {key: counts[key] for key in ("total", "completed", "failed") if key in counts}


def _summary(batch: AiBatch, status: BatchStatus, answered: int, failed: int, retried: int):
    what = "Live retries" if batch.live else f"Batch {batch.provider_batch_id}"
    if status.state == "failed":
        return f"{what} was rejected by {batch.provider}: {status.error}; {failed} entities failed."
    return f"{what} ended: {answered} answered, {failed} failed, {retried} sent again."
