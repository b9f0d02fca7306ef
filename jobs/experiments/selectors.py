"""Reading an experiment's sides (`jobs.experiments.batches` writes them): the entities
whose side is not ended, those with a side kept, and the tasks with sides to go on with."""

from django.db.models import Count, OuterRef, QuerySet, Subquery
from django.db.models.functions import Coalesce

from jobs.experiments.models import ExperimentSide, SideStatus
from jobs.experiments.sides import ARMS


def entities_waiting(experiment: str = "pk") -> Coalesce:
    """For a query of experiments (or of rows naming one in `experiment`): how many of each
    one's entities have a side not ended (waiting for its provider batch, or answered and
    not continued yet)."""
    open_sides = (
        ExperimentSide.objects.filter(experiment=OuterRef(experiment))
        .exclude(status=SideStatus.ENDED)
        .order_by()
        .values("experiment")
        .annotate(entities=Count("entity_id", distinct=True))
        .values("entities")
    )
    return Coalesce(Subquery(open_sides), 0)


def sides_left(experiment_id: str) -> QuerySet:
    """The ids of the entities with a side kept (parked or waiting for the other side)."""
    return ExperimentSide.objects.filter(experiment_id=experiment_id).values_list(
        "entity_id", flat=True
    )


def sides_to_resume(experiment_id: str) -> list[str]:
    """The tasks that have answered sides to continue or entities to finish (their keys),
    not those whose sides only wait."""
    sides = ExperimentSide.objects.filter(experiment_id=experiment_id)
    keys = set(
        sides.filter(status=SideStatus.RESOLVED).values_list("task_key", flat=True).distinct()
    )
    keys |= {
        key
        for key, count in sides.filter(status=SideStatus.ENDED)
        .values("entity_id", "task_key")
        .annotate(count=Count("pk"))
        .values_list("task_key", "count")
        if count == len(ARMS)
    }
    return sorted(keys)
