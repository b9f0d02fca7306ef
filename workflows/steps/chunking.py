"""How many entities one chunk (one task) of a run takes: RUN_CHUNK_SIZE, or less when a
step of the workflow asks for less (`StepType.chunk_size_limit`)."""

from django.conf import settings

from workflows.steps.registry import registry


def chunk_size(steps: list[dict]) -> int:
    """The chunk size for a run of a version's `steps` ([{"id", "type", "config"}, ...])."""
    limits = [
        registry.get(step["type"]).chunk_size_limit(step.get("config") or {}) for step in steps
    ]
    return min([settings.RUN_CHUNK_SIZE, *(limit for limit in limits if limit)])
