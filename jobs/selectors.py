from django.db.models import Q

from config.api.errors import NotFound
from jobs.experiments.models import WORKERS_ONLY
from jobs.experiments.selectors import entities_waiting
from jobs.models import ExperimentLog, Job, RunLog


def jobs_shown():
    """Jobs with what their API shape reads: the run or the experiment, and an
    experiment's entities waiting for a provider batch."""
    return (
        Job.objects.select_related("run", "experiment")
        .defer(*(f"experiment__{name}" for name in WORKERS_ONLY))
        .annotate(experiment_entities_waiting=entities_waiting("experiment_id"))
    )


def job_list(*, status: str | None = None, workflow_id: str | None = None):
    """A run's job or an experiment's, by their status and workflow."""
    jobs = jobs_shown()
    if status:
        jobs = jobs.filter(Q(run__status=status) | Q(experiment__status=status))
    if workflow_id:
        jobs = jobs.filter(Q(run__workflow_id=workflow_id) | Q(experiment__workflow_id=workflow_id))
    return jobs


def job_get(*, job_id: str) -> Job:
    job = jobs_shown().filter(pk=job_id).first()
    if job is None:
        raise NotFound(f"No job {job_id!r} exists.")
    return job


def job_log_list(*, job: Job, level: str | None = None, entity_id: str | None = None):
    """A job's log lines: its run's, or its experiment's; each filter combination has an
    index ending in `-id`, so a page is an index range scan wherever it starts."""
    if job.experiment_id:
        logs = ExperimentLog.objects.filter(experiment_id=job.experiment_id)
    else:
        logs = RunLog.objects.filter(run_id=job.run_id or "")
    if level:
        logs = logs.filter(level=level)
    if entity_id:
        logs = logs.filter(entity_id=entity_id)
    return logs
