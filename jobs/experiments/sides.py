"""One entity's two sides in an experiment (each arm starts from the entity's working copy,
`jobs.engine.states.state_of_entity`): a side as recorded once its arm ended (`side_of`), and
the entity's result row once both ended, with every scorer's verdict and whether the two
differ or the candidate regressed (`results_of`)."""

from typing import NamedTuple

from django.conf import settings

from entities.json_values import json_equal
from jobs.experiments.models import Experiment, ExperimentResult
from jobs.experiments.scorers import Judged, verdicts_of
from jobs.experiments.shadow import ShadowEngine
from workflows.steps.inflight import bounded_calls
from workflows.steps.runtime import MISSING, EntityState, Outcome, StepContext
from workflows.usage import Usage

ARMS = ("baseline", "candidate")
OUTCOMES = {Outcome.COMPLETED: "completed", Outcome.STOPPED: "stopped"}  # else failed


def side_of(state: EntityState, before: dict, waits: list[dict], seconds: float) -> dict:
    """One side of one entity as recorded: how it ended, what it would have changed (from
    `before`, the entity's `data` and `status` when the side started), each step's output
    and notes, the waits it would have held, its usage and time."""
    data, status = before["data"], before["status"]
    changes = [
        {"field": key, "before": data.get(key), "after": state.data.get(key)}
        for key in sorted({*data, *state.data})
        if not json_equal(data.get(key, MISSING), state.data.get(key, MISSING))
    ]
    if state.status != status:
        changes.append({"field": "status", "before": status, "after": state.status})
    return {
        "outcome": OUTCOMES.get(state.outcome, "failed"),
        "error": state.error or None,
        "changes": changes,
        "data": state.data,
        "steps": [
            {key: entry.get(key) for key in ("stepId", "outcome", "output", "error")}
            for entry in state.trace
        ],
        "notes": [message for level, _, message in state.log if level != "error"],
        "waits": waits,
        "usage": Usage.of(state.usage).stored(),
        "seconds": round(seconds, 3),
    }


def failed_side(error: str) -> dict:
    """A side that never ran, failed with `error`."""
    return {
        "outcome": "failed",
        "error": error,
        "changes": [],
        "data": {},
        "steps": [],
        "notes": [],
        "waits": [],
        "usage": {},
        "seconds": 0,
    }


# An entity deleted before the experiment reached it: both sides failed, saying so.
GONE = failed_side("The entity was deleted before the experiment reached it.")


class Scoring(NamedTuple):
    """An entity whose two sides ended, to be scored: `shown` is the entity as the judges'
    templates see it (None: deleted, not scored)."""

    entity_id: str
    position: int
    shown: dict | None
    sides: dict


def results_of(
    experiment: Experiment, engine: ShadowEngine, entries: list[Scoring]
) -> list[ExperimentResult]:
    """The entities' result rows, each scored. Their judges' calls are in flight together,
    an entity's at a time on each of up to AI_MAX_CONCURRENCY threads (as a step's calls):
    the cancel and the budget are checked here before each entity's judging starts, and
    each call is counted on `engine` as its entity's judging ends. Cancelled, the entities
    not judged yet have no row (nothing is written once cancelled)."""
    rows = [result_of(experiment, entry, None) for entry in entries if entry.shown is None]
    scored = [entry for entry in entries if entry.shown is not None]
    refused: dict[str, str | None] = {}

    def judge(entry: Scoring) -> Judged:
        return verdicts_of(
            scorers=experiment.scorers,
            experiment_id=experiment.pk,
            entity=entry.shown,
            sides=entry.sides,
            refused=refused.get(entry.entity_id),
        )

    if not any(scorer["type"] == "judge" for scorer in experiment.scorers):
        return rows + [result_of(experiment, entry, judge(entry)) for entry in scored]

    def admit(entry: Scoring) -> bool:
        refused[entry.entity_id] = engine.budget_reached()
        return True

    ctx = StepContext(
        run_id=experiment.pk,
        workflow_id=experiment.workflow_id,
        step_id="scorers",
        step_index=0,
        engine=engine,
    )
    calls = bounded_calls(scored, judge, limit=settings.AI_MAX_CONCURRENCY, ctx=ctx, admit=admit)
    for entry, future in calls:
        judged = future.result()
        for usage in judged.usages:
            engine.usage_record(usage)
        rows.append(result_of(experiment, entry, judged))
    return rows


def result_of(experiment: Experiment, entry: Scoring, judged: Judged | None) -> ExperimentResult:
    """The entity's result row: both sides and `judged`'s verdicts (None: no verdict)."""
    verdicts = judged.verdicts if judged is not None else []
    used = Usage.total(Usage.of(usage) for usage in judged.usages) if judged else Usage()
    baseline, candidate = entry.sides["baseline"], entry.sides["candidate"]
    return ExperimentResult(
        experiment=experiment,
        entity_id=entry.entity_id,
        position=entry.position,
        baseline=baseline,
        candidate=candidate,
        verdicts=verdicts,
        judge_usage=used.stored(),
        changed=differ(baseline, candidate),
        regressed=regressed(baseline, candidate, verdicts),
    )


def unrun_results(
    experiment: Experiment, *, entity_ids, position: dict, side: dict
) -> list[ExperimentResult]:
    """The result rows of entities neither side ran for: both sides `side` (failed, saying
    why), no verdict. `position`: each entity's place in the sample."""
    return [
        result_of(
            experiment,
            Scoring(pk, position.get(pk, 0), None, {"baseline": side, "candidate": side}),
            None,
        )
        for pk in entity_ids
    ]


def differ(baseline: dict, candidate: dict) -> bool:
    return any(
        not json_equal(baseline[key], candidate[key]) for key in ("outcome", "error", "changes")
    )


def regressed(baseline: dict, candidate: dict, verdicts: list[dict]) -> bool:
    if candidate["outcome"] == "failed" and baseline["outcome"] != "failed":
        return True
    for verdict in verdicts:
        if verdict.get("winner") == "baseline":
            return True
        rules = verdict["type"] == "rules"
        if rules and verdict["baseline"]["passed"] and not verdict["candidate"]["passed"]:
            return True
        scored = verdict.get("mode") == "score" and "error" not in verdict
        if scored and verdict["candidate"]["score"] < verdict["baseline"]["score"]:
            return True
    return False
