from django.apps import AppConfig


class JobsConfig(AppConfig):
    """Run records: runs, their items, the jobs behind them and their logs."""

    name = "jobs"
