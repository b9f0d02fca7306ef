"""An experiment's arms and scores as the API and the admin show them: computed from its
result rows while it runs, stored on it once it ends."""

from django.db import transaction
from django.db.models import Count, Q

from jobs.experiments.models import Experiment, ExperimentResult
from jobs.experiments.sides import ARMS
from workflows.usage import Usage


def arms_summary(experiment: Experiment) -> dict:
    """Per arm: entities by outcome, tokens, cost and mean seconds of the sides that ran
    (from the result rows, in the database)."""
    summary = {}
    for arm in ARMS:
        rows = ExperimentResult.objects.filter(experiment=experiment)
        counts = rows.aggregate(
            completed=Count("pk", filter=Q(**{f"{arm}__outcome": "completed"})),
            stopped=Count("pk", filter=Q(**{f"{arm}__outcome": "stopped"})),
            failed=Count("pk", filter=Q(**{f"{arm}__outcome": "failed"})),
            # A side that never ran (its entity deleted first, its chunk given up) ran no
            # step and took no time: the mean is over the sides that did.
            ran=Count("pk", filter=~Q(**{f"{arm}__steps": []})),
        )
        ran = counts.pop("ran")
        usage, seconds = Usage(), 0.0
        # The two keys read, not the sides (their data and step outputs, kilobytes each):
        # an open experiment's page and every poll of it compute this.
        for side_usage, side_seconds in rows.values_list(
            f"{arm}__usage", f"{arm}__seconds"
        ).iterator():
            usage += Usage.of(side_usage)
            seconds += side_seconds or 0
        summary[arm] = {
            **counts,
            "inputTokens": usage.input_tokens,
            "outputTokens": usage.output_tokens,
            "costUsd": usage.cost_usd,
            "meanSeconds": round(seconds / ran, 3) if ran else None,
        }
    return summary


def scores_summary(experiment: Experiment) -> list[dict]:
    """Per scorer: the pass rate (rules) or mean score (judge in score mode) of each arm, and
    the candidate's wins, losses and ties against the baseline."""
    found = {
        scorer["name"]: {
            "name": scorer["name"],
            "type": scorer["type"],
            "baseline": None,
            "candidate": None,
            "wins": 0,
            "losses": 0,
            "ties": 0,
            "_sums": {"baseline": [0, 0], "candidate": [0, 0]},
        }
        for scorer in experiment.scorers
    }
    rows = ExperimentResult.objects.filter(experiment=experiment).values_list("verdicts", flat=True)
    for verdicts in rows.iterator():
        for verdict in verdicts:
            score = found.get(verdict["name"])
            if score is None or "error" in verdict:
                continue
            winner = verdict.get("winner")
            if verdict["type"] == "rules" or verdict.get("mode") == "score":
                key = "passed" if verdict["type"] == "rules" else "score"
                for arm in ARMS:
                    score["_sums"][arm][0] += int(verdict[arm][key])
                    score["_sums"][arm][1] += 1
                if verdict["type"] == "rules":
                    a, b = verdict["candidate"]["passed"], verdict["baseline"]["passed"]
                else:
                    a, b = verdict["candidate"]["score"], verdict["baseline"]["score"]
                winner = "candidate" if a > b else "baseline" if a < b else "tie"
            if winner == "candidate":
                score["wins"] += 1
            elif winner == "baseline":
                score["losses"] += 1
            elif winner == "tie":
                score["ties"] += 1
    for score in found.values():
        for arm, (total, count) in score.pop("_sums").items():
            if count:
                score[arm] = round(total / count, 4)
    return list(found.values())


def summary_store(experiment: Experiment) -> None:
    """Store the ended experiment's arms and scores, as the API shows them. Computed holding
    the experiment's row: of two stores at once (two human picks), the one that waited
    reads the rows the other's pick committed, so the last one stored counts both."""
    with transaction.atomic():
        Experiment.objects.select_for_update().filter(pk=experiment.pk).values("pk").first()
        Experiment.objects.filter(pk=experiment.pk).update(
            summary={"arms": arms_summary(experiment), "scores": scores_summary(experiment)}
        )


def summary_of(experiment: Experiment) -> dict:
    """Its arms and scores: stored once it ended, computed from its rows while it runs."""
    if experiment.summary is not None:
        return experiment.summary
    if not hasattr(experiment, "live_summary"):  # once per read of the row
        experiment.live_summary = {
            "arms": arms_summary(experiment),
            "scores": scores_summary(experiment),
        }
    return experiment.live_summary
