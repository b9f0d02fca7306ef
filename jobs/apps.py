from django.apps import AppConfig


class JobsConfig(AppConfig):
    """Run records: runs, their items, the jobs behind them and their logs."""

    name = "jobs"

    def ready(self) -> None:
        # The entities layer records its changes and says so; the triggers act on them.
        from django.db.models.signals import post_delete, post_save

        from entities.events import entity_events_recorded
        from jobs.experiments import batch_owner  # noqa: F401  (an experiment owns provider batches)
        from jobs.schedules import on_workflow_deleted, on_workflow_saved
        from jobs.triggers import on_entity_events_recorded
        from jobs.waits import kinds  # noqa: F401  (registers every kind of wait)
        from workflows.models import Workflow

        entity_events_recorded.connect(on_entity_events_recorded, dispatch_uid="jobs.triggers")
        # A workflow's schedule triggers are beat's PeriodicTask rows, kept in step on every
        # save and delete, whoever makes it (API, admin, services).
        post_save.connect(on_workflow_saved, sender=Workflow, dispatch_uid="jobs.schedules")
        post_delete.connect(on_workflow_deleted, sender=Workflow, dispatch_uid="jobs.schedules")
