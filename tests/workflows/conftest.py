import pytest

from workflows.steps import registry


@pytest.fixture
def all_six_steps() -> list[dict]:
    """One step of every type, each with its documented example config."""
    return [{"type": step_type.type, "config": step_type.example} for step_type in registry]
