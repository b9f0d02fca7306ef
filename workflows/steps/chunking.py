"""How many entities one chunk (one task) of a run takes: RUN_CHUNK_SIZE, or less when a
step of the workflow asks for less (`StepType.chunk_size_limit`)."""

from django.conf import settings

from workflows.steps.registry import registry


def chunk_size(steps: list[dict]) -> int:
    """The chunk size for a run of a version's `steps` ([{"id", "type", "config"}, ...])."""
    # A type no longer registered sets no limit: the engine fails its entities at that step.
    limits = [
        registry.get(step["type"]).chunk_size_limit(step.get("config") or {})
        for step in steps
        if step.get("type") in registry
    ]
    return min([settings.RUN_CHUNK_SIZE, *(limit for limit in limits if limit)])
