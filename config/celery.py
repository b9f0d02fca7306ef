"""The Celery application: `celery -A config worker` starts a worker."""

import gc
import os

from celery import Celery
from celery.signals import (
    task_postrun,
    task_prerun,
    worker_init,
    worker_process_init,
    worker_process_shutdown,
)

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.base")

app = Celery("workflows")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@task_prerun.connect
@task_postrun.connect
def close_old_connections(**kwargs) -> None:
    """Django's request-cycle rule for database connections, around every task: close those
    past CONN_MAX_AGE or broken, keep the others (health-checked on first use). Celery's own
    Django fixup would close them around every task (see CELERY_DB_REUSE_MAX), and a new
    PostgreSQL connection per chunk costs a backend start and cold caches. Not for a task run
    eagerly, inside the caller's transaction (as Celery's fixup does)."""
    from django.db import close_old_connections

    task = kwargs.get("task")
    if task is not None and getattr(task.request, "is_eager", False):
        return
    close_old_connections()


@worker_init.connect
def warm_up_worker(**kwargs) -> None:
    """In the worker's main process, before its pool forks: import and exercise what every
    first task would (the model SDKs, the step types, Jinja), once for every process it
    forks, so the first run after a start costs what a later one does (`jobs.warm`).
    (Imported here: Django is set up by the time a worker starts, not when this loads.)"""
    from jobs.warm import worker_warm_up

    worker_warm_up()


@worker_process_init.connect
def start_worker_process(**kwargs) -> None:
    """In a freshly forked pool process: its own HTTP clients for the model providers
    (`jobs.warm`), then its start-up objects kept out of the garbage collector's full
    passes, which would otherwise walk them all a few times per run (tens of milliseconds
    each), and out of copy-on-write page faults."""
    from jobs.warm import worker_process_warm_up

    worker_process_warm_up()
    gc.freeze()


@worker_process_shutdown.connect
def forget_live_gauges(pid, **kwargs) -> None:
    """A worker child leaving takes its in-flight gauge with it; its counters stay counted.
    (Imported here: the settings set the metrics folder before prometheus_client loads.)"""
    from config.metrics import process_dead

    process_dead(pid)
