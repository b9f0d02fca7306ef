from django.apps import AppConfig


class WorkflowsConfig(AppConfig):
    """Workflow definitions: workflows, their ordered steps, versions and the step types."""

    name = "workflows"

    def ready(self):
        from entities.events import events_listened_by
        from workflows.selectors import trigger_listeners

        events_listened_by(trigger_listeners)
