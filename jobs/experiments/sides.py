"""One entity's two sides in an experiment (each arm starts from the entity's working copy,
`jobs.engine.states.state_of_entity`): a side as recorded once its arm ended (`side_of`), and
the entity's result row once both ended, with every scorer's verdict and whether the two
differ or the candidate regressed (`result_of`)."""

from entities.json_values import json_equal
from jobs.experiments.models import Experiment, ExperimentResult
from jobs.experiments.scorers import verdicts_of
from jobs.experiments.shadow import ShadowEngine
from workflows.steps.runtime import MISSING, EntityState, Outcome
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


def result_of(
    experiment: Experiment,
    engine: ShadowEngine,
    *,
    entity_id: str,
    position: int,
    shown: dict | None,
    sides: dict,
) -> ExperimentResult:
    """The entity's result row: both sides scored (the judges' calls counted on `engine`).
    `shown` is the entity as the judges' templates see it (None: deleted, not scored)."""
    verdicts = []
    if shown is not None:
        verdicts = verdicts_of(
            scorers=experiment.scorers,
            experiment_id=experiment.pk,
            entity=shown,
            sides=sides,
            engine=engine,
        )
    judged = engine.judged_take()
    baseline, candidate = sides["baseline"], sides["candidate"]
    return ExperimentResult(
        experiment=experiment,
        entity_id=entity_id,
        position=position,
        baseline=baseline,
        candidate=candidate,
        verdicts=verdicts,
        judge_usage=judged.stored(),
        changed=differ(baseline, candidate),
        regressed=regressed(baseline, candidate, verdicts),
    )


def unrun_results(
    experiment: Experiment, engine: ShadowEngine, *, entity_ids, position: dict, side: dict
) -> list[ExperimentResult]:
    """The result rows of entities neither side ran for: both sides `side` (failed, saying
    why), no verdict. `position`: each entity's place in the sample."""
    return [
        result_of(
            experiment,
            engine,
            entity_id=pk,
            position=position.get(pk, 0),
            shown=None,
            sides={"baseline": side, "candidate": side},
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
