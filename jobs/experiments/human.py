"""The human scorer: a person's blind pick between an entity's two sides, and the comparisons
left to pick."""

from django.db import connection, transaction
from django.db.models import BooleanField
from django.db.models.expressions import RawSQL
from django.utils import timezone

from config.api.errors import Conflict, FieldError, InvalidInput, NotFound
from jobs.experiments.models import Experiment, ExperimentResult
from jobs.experiments.sides import regressed
from jobs.experiments.summaries import summary_store


def human_decide(
    *,
    experiment_id: str,
    result_id: int,
    scorer: str,
    choice: str,
    comment: str,
    user_id: int | None,
) -> ExperimentResult:
    """A person's pick on one entity's blind comparison: `choice` is the side as shown (A, B)
    or "tie", mapped back to baseline or candidate; the row's `regressed` follows. A verdict
    already decided keeps the first decision (409). The result is looked up within its
    experiment: one pruned since the form was shown, or another experiment's, is not found
    (404), never decided."""
    if choice not in ("A", "B", "tie"):
        raise InvalidInput("Pick A, B or tie.", details=[FieldError("choice", "Pick A, B or tie.")])
    with transaction.atomic():
        result = (
            ExperimentResult.objects.select_for_update()
            .filter(experiment_id=experiment_id, pk=result_id)
            .first()
        )
        if result is None:
            raise NotFound(comparison_missing(result_id))
        verdict = next(
            (v for v in result.verdicts if v["name"] == scorer and v["type"] == "human"), None
        )
        if verdict is None:
            raise Conflict(f"The experiment has no human scorer {scorer!r}.")
        if verdict["winner"] is not None:
            raise Conflict("This comparison was already decided.", code="not_pending")
        a, b = ("candidate", "baseline") if verdict["candidateIsA"] else ("baseline", "candidate")
        verdict.update(
            winner={"A": a, "B": b}.get(choice, "tie"),
            reason=comment[:2000],
            decidedBy=user_id,
            decidedAt=timezone.now().isoformat(),
        )
        result.regressed = regressed(result.baseline, result.candidate, result.verdicts)
        result.save(update_fields=["verdicts", "regressed"])
    experiment = result.experiment
    if experiment.is_ended:
        summary_store(experiment)
    return result


def comparison_missing(result_id) -> str:
    """What a pick on a result this experiment does not have is told (the id as sent, cut:
    a form's field can hold anything)."""
    return (
        f"This experiment has no comparison {str(result_id)[:40]!r}: it was pruned since, or "
        "is not this experiment's."
    )


def human_pending(experiment: Experiment, scorer: str):
    """The results whose comparison by `scorer` no one has decided yet, in sample order."""
    results = experiment.results.order_by("position")
    if connection.features.supports_json_field_contains:
        return results.filter(
            verdicts__contains=[{"name": scorer, "type": "human", "winner": None}]
        )
    # SQLite (the embedded defaults) has no JSON containment lookup: the same test over the
    # verdicts' elements (a `winner` that is JSON null, as containment reads `None`).
    verdicts = f"{connection.ops.quote_name(ExperimentResult._meta.db_table)}.verdicts"
    undecided = RawSQL(  # noqa: S611 (the scorer is a parameter)
        f"EXISTS (SELECT 1 FROM json_each({verdicts}) AS verdict "  # noqa: S608 (from _meta)
        "WHERE json_extract(verdict.value, '$.name') = %s "
        "AND json_extract(verdict.value, '$.type') = 'human' "
        "AND json_type(verdict.value, '$.winner') = 'null')",
        [scorer],
        output_field=BooleanField(),
    )
    return results.filter(undecided)
