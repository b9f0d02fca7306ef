from django.apps import AppConfig


class JobsConfig(AppConfig):
    """Run records: runs, their items, the jobs behind them and their logs."""

    name = "jobs"

    def ready(self) -> None:
        # The entities layer records its changes and says so; the triggers act on them.
        from entities.events import entity_events_recorded
        from jobs.triggers import on_entity_events_recorded

        entity_events_recorded.connect(on_entity_events_recorded, dispatch_uid="jobs.triggers")
