"""Batch mode in an experiment: an `ai_generate` step in `mode: batch` sends a side's request
in a provider batch, as a run would, and the side waits for it holding no worker.

The batch is the `ai_batch` kind's (`jobs.waits.ai_batch`): an `AiBatch` owned by the
experiment instead of a run, submitted, polled, retried, settled against the budget and
cancelled by the same services; `ExperimentOwner` (`jobs.experiments.batch_owner`) says what
differs (whose requests still wait, where the answers, usage and budget go). Its requests
are `ExperimentSide` rows: the side parked (`waiting`, its working copy in `checkpoint`, the
row's id its `custom_id`), answered (`resolved`), then continued from the next step, still
in shadow mode, by the resume task of the batch that answered it (`sides_resume`); it may
park again at a later batch step, as a new row. A side that ended while the entity's other
side waits is kept `ended`; once both ended the entity is scored and its result row written,
its sides deleted (`entities_finish`), by the task that ended its last side.

Which task acts on a side is its `task_key` (the batch that answered it, or the chunk that
parked it), and each write is conditional, under the experiment's row lock, as a run's
chunk is under its leases: a chunk parks only entities that have neither a result nor a
side yet; a resume claims its sides (`attempts` + 1, taking them over from a dead delivery
at once) and replaces only those still `resolved` with the attempts it claimed; so a
delivery repeated or racing another writes nothing twice. A side claimed more than
RUN_MAX_ATTEMPTS times (every resume of it died) ends failed instead, as a run's item
does, calling no model again. A request's estimate is reserved against the budget in the
transaction that parks it (so a dead delivery reserves nothing), and replaced by what its
answer spent when the batch is collected. A cancel ends the experiment's open batches
(their providers are told) and deletes its sides in one transaction.
"""

import time
from dataclasses import dataclass, field, replace
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Count, F, Q
from django.utils import timezone

from config.api.ids import new_id
from entities.models import Entity
from jobs.engine.outcomes import given_up_error
from jobs.engine.parking import resolution_apply
from jobs.engine.steps import steps_run
from jobs.experiments.log import Level, budget_reached, experiment_log_lines
from jobs.experiments.models import (
    Experiment,
    ExperimentResult,
    ExperimentSide,
    ExperimentStatus,
    SideStatus,
)
from jobs.experiments.shadow import ShadowEngine
from jobs.experiments.sides import ARMS, Scoring, results_of, side_of
from jobs.waits.ai_batch.models import AiBatch
from jobs.waits.ai_batch.services import ai_batches_cancel, ai_batches_record
from workflows.steps.ai_generate import AiBatchWaitRequest
from workflows.steps.runtime import EntityState, Outcome
from workflows.steps.waits import Resolution


@dataclass
class Parked:
    """A side an arm left waiting for a provider batch: its working copy, where it waits,
    and what its side will need (the entity before, the waits it recorded, its seconds)."""

    arm: str
    position: int
    state: EntityState
    step_index: int
    request: AiBatchWaitRequest
    before: dict
    waits: list[dict]
    seconds: float

    def checkpoint(self) -> dict:
        state = self.state
        return {
            "before": self.before,
            "data": state.data,
            "status": state.status,
            "version": state.version,
            "outputs": state.outputs,
            "usage": state.usage,
            "trace": state.trace,
            "log": state.log,
            "stepId": state.step_id,
            "nextStep": self.step_index + 1,
            "waits": [*self.waits, {"stepId": state.step_id, "kind": self.request.kind}],
            "seconds": self.seconds,
        }


@dataclass
class Left:
    """What one delivery (a chunk, or a resume) leaves for later: sides parked, and sides
    ended whose entity's other side did not end with them, by (entity id, arm)."""

    parked: dict[tuple[str, str], Parked] = field(default_factory=dict)
    ended: dict[tuple[str, str], tuple[int, dict]] = field(default_factory=dict)
    given_up: list[tuple[str, str, str]] = field(default_factory=list)  # entity, arm, step

    def entity_ids(self) -> set[str]:
        return {pk for pk, _ in [*self.parked, *self.ended]}


def sides_store(
    experiment: Experiment,
    engine: ShadowEngine,
    left: Left,
    *,
    key: str,
    claimed: dict | None = None,
) -> set[tuple[str, str]]:
    """Store what the task `key` left: its parked sides (their estimates reserved against
    the budget; past it, a side fails now instead, unsent) and their provider batches, and
    its ended sides. A chunk's (`claimed` None) only for entities with no result or side yet;
    a resume's only in place of the sides it claimed (id -> attempts) still `resolved`. The
    entities whose sides have all ended now are left to `entities_finish(key)`. Returns the
    (entity id, arm) of the sides it stored."""
    with transaction.atomic():
        row = (
            Experiment.objects.select_for_update()
            .filter(pk=experiment.pk, status__in=ExperimentStatus.open(), cancel_requested_at=None)
            .values("spent_tokens", "spent_cost_nano_usd")
            .first()
        )
        if row is None:  # cancelled (or ended) meanwhile: nothing more is written
            return set()
        sides = ExperimentSide.objects.filter(experiment=experiment)
        if claimed is None:
            ids = left.entity_ids()
            taken = set(sides.filter(entity_id__in=ids).values_list("entity_id", flat=True))
            taken |= set(
                ExperimentResult.objects.filter(
                    experiment=experiment, entity_id__in=ids
                ).values_list("entity_id", flat=True)
            )
            kept = {side for side in [*left.parked, *left.ended] if side[0] not in taken}
        else:
            still = Q(pk__in=[])
            for pk, attempts in claimed.items():
                still |= Q(pk=pk, attempts=attempts)
            mine = list(
                sides.filter(still, status=SideStatus.RESOLVED).values_list("entity_id", "arm")
            )
            sides.filter(still, status=SideStatus.RESOLVED).delete()
            kept = set(mine)
        rows, requests = [], []
        tokens, cost = row["spent_tokens"], row["spent_cost_nano_usd"]
        reached = None
        for side_key, parked in sorted(left.parked.items(), key=lambda item: item[1].position):
            if side_key not in kept:
                continue
            if engine.limited:
                reached = engine.over(tokens, cost)
                if reached is not None:
                    parked.state.fail(parked.state.step_id, reached)
                    side = side_of(parked.state, parked.before, parked.waits, parked.seconds)
                    left.ended[side_key] = (parked.position, side)
                    continue
                tokens += parked.request.reserved.get("inputTokens", 0)
                tokens += parked.request.reserved.get("outputTokens", 0)
                cost += parked.request.reserved.get("costNanoUsd", 0)
            side = ExperimentSide(
                id=new_id("exs"),
                experiment=experiment,
                entity_id=side_key[0],
                arm=side_key[1],
                position=parked.position,
                status=SideStatus.WAITING,
                checkpoint=parked.checkpoint(),
                task_key=key,
            )
            rows.append(side)
            requests.append((side.pk, None, parked.state.step_id, parked.request))
        rows += [
            ExperimentSide(
                experiment=experiment,
                entity_id=entity_id,
                arm=arm,
                position=position,
                status=SideStatus.ENDED,
                side=side,
                task_key=key,
            )
            for (entity_id, arm), (position, side) in left.ended.items()
            if (entity_id, arm) in kept
        ]
        ExperimentSide.objects.bulk_create(rows, batch_size=1000)
        # The entities this ended the last side of are this task's to finish.
        ended = sides.filter(entity_id__in={pk for pk, _ in kept}, status=SideStatus.ENDED)
        whole = [
            pk
            for pk, count in ended.values("entity_id")
            .annotate(count=Count("pk"))
            .values_list("entity_id", "count")
            if count == len(ARMS)
        ]
        ended.filter(entity_id__in=whole).update(task_key=key)
        if engine.limited and requests:
            Experiment.objects.filter(pk=experiment.pk).update(
                spent_tokens=tokens, spent_cost_nano_usd=cost
            )
        if reached is not None:
            budget_reached(experiment.pk, reached)
        if requests:
            ai_batches_record(experiment_id=experiment.pk, requests=requests)
    engine.reserving = (0, 0)
    return kept


def sides_resume(*, experiment_id: str, key: str) -> None:
    """The resume task of the batch `key`: continue the experiment's sides it answered from
    their next step (in shadow mode), store what they left, and finish the entities whose
    sides all ended. Delivered again, it takes them over from the delivery before."""
    experiment = (
        Experiment.objects.select_related("baseline", "candidate", "workflow__entity_type")
        .filter(pk=experiment_id)
        .first()
    )
    if experiment is None or experiment.is_ended or experiment.cancel_requested_at:
        return
    claimed = _claim(experiment_id, key)
    engine = ShadowEngine(experiment)
    if claimed:
        left = Left()
        for arm in ARMS:
            _arm_continue(experiment, engine, arm, [s for s in claimed if s.arm == arm], left)
        if engine.cancelled():
            engine.flush()
            return
        with transaction.atomic():  # the calls' usage counted with the sides that show it
            kept = sides_store(
                experiment, engine, left, key=key, claimed={s.pk: s.attempts for s in claimed}
            )
            engine.flush()
            error = given_up_error("this side's resume")
            experiment_log_lines(
                experiment.pk,
                [
                    (Level.ERROR, f"The {arm}'s side, at step {step_id}: {error}", entity_id)
                    for entity_id, arm, step_id in left.given_up
                    if (entity_id, arm) in kept
                ],
            )
    entities_finish(experiment, engine, key=key)


def _claim(experiment_id: str, key: str) -> list[ExperimentSide]:
    """Take the sides the batch `key` answered, from any delivery before (its writes are
    conditional on the attempts it claimed, so it writes nothing once taken over). Sides
    claimed RUN_MAX_ATTEMPTS times already are taken (to be given up) only once their last
    claim is RUN_STALL_AFTER_S old: until then its delivery may still be continuing them."""
    now = timezone.now()
    claimed = ExperimentSide.objects.filter(
        experiment_id=experiment_id, status=SideStatus.RESOLVED, task_key=key
    ).exclude(
        attempts__gte=settings.RUN_MAX_ATTEMPTS,
        claimed_at__gt=now - timedelta(seconds=settings.RUN_STALL_AFTER_S),
    )
    ids = list(claimed.values_list("pk", flat=True))
    ExperimentSide.objects.filter(pk__in=ids).update(attempts=F("attempts") + 1, claimed_at=now)
    return list(ExperimentSide.objects.filter(pk__in=ids).order_by("position", "arm"))


def _arm_continue(experiment, engine: ShadowEngine, arm: str, sides: list, left: Left) -> None:
    """One arm's answered sides: each given its answer, then on through the arm's steps."""
    if not sides:
        return
    schema = experiment.workflow.entity_type.schema
    states = []
    engine.waits, engine.parked = {}, {}
    for side in sides:
        saved = side.checkpoint
        state = EntityState(
            entity_id=side.entity_id,
            status=saved["status"],
            data=saved["data"],
            committed=saved["before"]["data"],
            entity_type_schema=schema,
            version=saved["version"],
            outputs=saved["outputs"],
            usage=saved["usage"],
            trace=saved["trace"],
            log=[tuple(line) for line in saved["log"]],
            next_step=saved["nextStep"],
        )
        step_id = saved["stepId"]
        resolution = Resolution.of(side.resolution or {"outcome": "fail"})
        if side.attempts > settings.RUN_MAX_ATTEMPTS:  # every resume of it before died
            # Failed at its batch step, with what the batch's answer used (paid for).
            error = given_up_error("this side's resume")
            resolution = replace(resolution, outcome="fail", error=error)
            left.given_up.append((side.entity_id, arm, step_id))
        resolution_apply(state, step_id, resolution)
        if state.alive:
            output = state.outputs.get(step_id)
            state.trace.append({"stepId": step_id, "outcome": Outcome.COMPLETED, "output": output})
        engine.waits[side.entity_id] = saved["waits"]
        states.append(state)
    started = time.monotonic()
    steps_run(
        states=states,
        steps=getattr(experiment, arm).steps,
        run_id=experiment.pk,
        workflow_id=experiment.workflow_id,
        engine=engine,
        dry_run=True,
    )
    seconds = (time.monotonic() - started) / len(states)
    for state, side in zip(states, sides, strict=True):
        saved = side.checkpoint
        total = saved["seconds"] + seconds
        waits = engine.waits.get(state.entity_id, [])
        key = (side.entity_id, arm)
        if state.outcome == Outcome.WAITING:
            step_index, request = engine.parked[state.entity_id]
            left.parked[key] = Parked(
                arm, side.position, state, step_index, request, saved["before"], waits, total
            )
        else:
            left.ended[key] = (side.position, side_of(state, saved["before"], waits, total))


def entities_finish(experiment: Experiment, engine: ShadowEngine, *, key: str) -> int:
    """Score and write the result row of each entity whose sides all ended in the task
    `key` (`sides_store` gave them its key), and delete its sides; returns how many. A
    crash between the two leaves them to that task's next delivery (or the stall check)."""
    done: dict[str, dict[str, ExperimentSide]] = {}
    for side in ExperimentSide.objects.filter(
        experiment=experiment, status=SideStatus.ENDED, task_key=key
    ):
        done.setdefault(side.entity_id, {})[side.arm] = side
    done = {pk: sides for pk, sides in done.items() if set(sides) == set(ARMS)}
    if not done:
        return 0
    entities = {entity.pk: entity for entity in Entity.objects.filter(pk__in=list(done))}
    entries = []
    for pk, sides in done.items():
        entity = entities.get(pk)
        shown = None if entity is None else {**entity.data, "id": pk, "status": entity.status}
        entries.append(
            Scoring(
                pk,
                sides["baseline"].position,
                shown,
                {arm: side.side for arm, side in sides.items()},
            )
        )
    rows = results_of(experiment, engine, entries)
    with transaction.atomic():
        goes_on = experiment_goes_on(experiment.pk)
        if goes_on:
            ExperimentResult.objects.bulk_create(rows, ignore_conflicts=True)
            ExperimentSide.objects.filter(
                experiment=experiment, entity_id__in=list(done), status=SideStatus.ENDED
            ).delete()
        engine.flush()  # the judges' calls, counted with the rows that show them
    return len(rows) if goes_on else 0


def experiment_goes_on(experiment_id: str) -> bool:
    """Lock the experiment's row (call inside a transaction): whether it is open and no
    cancel was asked, so that results and sides may still be written."""
    return (
        Experiment.objects.select_for_update()
        .filter(pk=experiment_id, status__in=ExperimentStatus.open(), cancel_requested_at=None)
        .exists()
    )


def experiment_batches_cancel(*, experiment_id: str) -> None:
    """A cancelled experiment's open batches are no longer wanted (their providers are told
    after COMMIT) and its sides are dropped; call in the cancel's transaction."""
    ai_batches_cancel(batch_ids=AiBatch.objects.filter(experiment_id=experiment_id).values("pk"))
    ExperimentSide.objects.filter(experiment_id=experiment_id).delete()
