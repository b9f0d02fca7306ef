"""Run records, kept apart from the definitions in `workflows`, one module per concept.

- `runs`: a Run is one execution of one workflow version over a set of entities; its Job is
  the background-job face of the run for the Jobs API (status and progress are the run's).
- `items`: a RunItem per entity (its status, checkpoint and error).
- `logs`: a run's RunLog lines.
- `waits`: a Wait is an entity parked at a step until something outside the run resolves it.
- The models of each kind of wait live in its folder (`jobs/waits/<kind>/models.py`).
- `schedules`: ScheduleFire, what each tick of a schedule trigger did.

Everything is re-exported here: `from jobs.models import Run` (and migrations' references
such as `jobs.models.api_trigger`) keep working.
"""

from jobs.experiments.models import (
    Experiment,
    ExperimentLog,
    ExperimentResult,
    ExperimentSide,
    ExperimentStatus,
    SideStatus,
)
from jobs.models.items import ItemStatus, RunItem
from jobs.models.logs import RunLog
from jobs.models.runs import Job, Run, RunStatus, TriggerType, api_trigger
from jobs.models.schedules import ScheduleFire
from jobs.models.waits import Wait, WaitStatus
from jobs.waits.ai_batch.models import AiBatch, AiBatchRequest, AiBatchStatus
from jobs.waits.review.models import Review, ReviewInstructions, ReviewStatus

__all__ = [
    "AiBatch",
    "AiBatchRequest",
    "AiBatchStatus",
    "Experiment",
    "ExperimentLog",
    "ExperimentResult",
    "ExperimentSide",
    "ExperimentStatus",
    "ItemStatus",
    "Job",
    "Review",
    "ReviewInstructions",
    "ReviewStatus",
    "Run",
    "RunItem",
    "RunLog",
    "RunStatus",
    "ScheduleFire",
    "SideStatus",
    "TriggerType",
    "Wait",
    "WaitStatus",
    "api_trigger",
]
