"""The `delay` kind of wait: an entity waits until a time, holding no worker, and goes on
within about a second of it (the issue's promise: 2 s), also when a worker dies meanwhile.

Two paths, either enough:
- A tick queued for its time. Each delay due within `SOON` gets a tick of this kind queued
  for the second after its time (one per distinct second, `jobs.engine.waits.waits_tick_at`);
  a delay due later gets its tick when a beat tick finds it due within `SOON` (a queued tick
  is kept by the broker well within its visibility timeout). This path needs no beat.
- Beat's tick, every WAITS_TICK_S (1 s), the safety net. A queued tick is a countdown
  message, held unacknowledged by the worker that will run it: SIGKILLed, that worker takes
  it out of play until the broker's visibility timeout (an hour). Beat's next tick resolves
  the delay instead, within WAITS_TICK_S of its time.
Either tick resolves what is due, in batches, and then resumes those runs at once itself:
the tick already gathered everything due, so the resume needs no debounce
(WAIT_RESUME_DELAY_S), and the entities are queued in the same task. (The debounced resume
every resolution asks for stays the safety net for a tick that dies between the two; it
then finds nothing to do.) Two ticks at once do no harm: a wait is resolved and resumed once.
"""

from datetime import datetime, timedelta

from django.db import transaction
from django.utils import timezone
from rest_framework.serializers import Field

from config.api.fields import TimestampField
from jobs.engine.waits import run_waits_resume, runs_lock, waits_resolve_each, waits_tick_at
from jobs.waits.base import Parked, WaitKind
from jobs.waits.delay.models import Delay
from workflows.steps.delay import DelayRequest
from workflows.steps.waits import Resolution
from workflows.usage import Usage

SOON = timedelta(minutes=5)
BATCH = 1000
TICKS_ASKED_MAX = 100  # distinct seconds queued at once; the rest wait for the next tick


class DelayWait(WaitKind):
    """Goes on at its time."""

    request_type = DelayRequest

    def create(self, parked: list[Parked]) -> None:
        now = timezone.now()
        delays = [
            Delay(
                wait_id=entry.wait.pk,
                run_id=entry.wait.run_id,
                until=datetime.fromisoformat(entry.request.until),
            )
            for entry in parked
        ]
        _ticks_ask(delays, now)
        Delay.objects.bulk_create(delays, batch_size=BATCH)

    def tick(self, *, now: datetime) -> int:
        resolved, run_ids = 0, set()
        while True:
            due = list(
                Delay.objects.filter(until__lte=now)
                .order_by("until")
                .values_list("wait_id", "run_id", "until")[:BATCH]
            )
            if not due:
                break
            with transaction.atomic():
                batch_runs = sorted({run_id for _, run_id, _ in due})
                runs_lock(run_ids=batch_runs)
                resolved += waits_resolve_each(
                    resolutions={
                        wait_id: Resolution("continue", output={"until": _shown(until)})
                        for wait_id, _, until in due
                    },
                    run_ids=batch_runs,
                    now=now,
                )
                Delay.objects.filter(pk__in=[wait_id for wait_id, _, _ in due]).delete()
            run_ids.update(batch_runs)
            if len(due) < BATCH:
                break
        for run_id in sorted(run_ids):  # everything due is resolved: on at once, together
            run_waits_resume(run_id=run_id)
        soon = list(
            Delay.objects.filter(until__lte=now + SOON, tick_asked=False)
            .order_by("until")
            .values_list("pk", "until")[: BATCH * 10]
        )
        if soon:
            with transaction.atomic():
                asked = _ticks_ask([Delay(pk=pk, until=until) for pk, until in soon], now)
                Delay.objects.filter(pk__in=asked).update(tick_asked=True)
        return resolved

    def described_fields(self) -> dict[str, Field]:
        return {"until": TimestampField(help_text="When the delay ends (ms).")}

    def describe(self, wait_ids: list[str]) -> dict[str, dict]:
        return {
            pk: {"until": until}
            for pk, until in Delay.objects.filter(pk__in=wait_ids).values_list("pk", "until")
        }

    def cancel(self, *, run_id: str, wait_ids: list[str]) -> dict[str, Usage]:
        Delay.objects.filter(pk__in=wait_ids).delete()
        return {}  # waiting costs nothing


def _ticks_ask(delays: list[Delay], now: datetime) -> list[str]:
    """Queue a tick at each distinct second the delays due soon are due (after COMMIT), and
    mark those delays; returns their wait ids."""
    seconds: set[datetime] = set()
    asked = []
    for delay in delays:
        if delay.until > now + SOON:
            continue
        second = delay.until.replace(microsecond=0) + timedelta(seconds=1)
        if second not in seconds and len(seconds) >= TICKS_ASKED_MAX:
            continue
        seconds.add(second)
        delay.tick_asked = True
        asked.append(delay.pk)
    for second in sorted(seconds):
        waits_tick_at(kind=DelayRequest.kind, when=second)
    return asked


def _shown(until: datetime) -> str:
    return until.isoformat().replace("+00:00", "Z")
