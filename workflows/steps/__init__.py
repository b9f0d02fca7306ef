"""Step types: one module each. Importing this package registers them all; a new step type is
a new module plus its line here."""

from workflows.steps import (  # noqa: F401  (imported to register)
    ai_generate,
    condition,
    delay,
    notify,
    publish,
    review,
    transform,
    validate,
    wait_for_event,
)
from workflows.steps.registry import registry


def step_type_choices() -> list[tuple[str, str]]:
    return [(step_type.type, step_type.name) for step_type in registry]
