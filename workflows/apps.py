from django.apps import AppConfig


class WorkflowsConfig(AppConfig):
    """Workflow definitions: workflows, their ordered steps, versions and the step types."""

    name = "workflows"
