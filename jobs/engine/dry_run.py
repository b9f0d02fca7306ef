"""The test endpoint (`POST /workflows/:id/test`, the admin's test page): the workflow on one
entity, synchronously, through the same step loop as a run, with the `DryRun` engine:
nothing is committed or sent; publish and notify report what they would have done."""

from config.api.errors import FieldError, InvalidInput
from entities.models import Entity
from jobs.engine.states import state_of_entity
from jobs.engine.steps import steps_run
from workflows.models import Workflow, WorkflowVersion
from workflows.steps.runtime import DryRun, Outcome
from workflows.usage import Usage

# The answer's words (the API's): a step the entity did not reach, and how it ended.
NOT_REACHED = "skipped"
ANSWER_STATUS = {Outcome.COMPLETED: "completed", Outcome.STOPPED: "skipped"}  # else "failed"


def workflow_test(
    *, workflow: Workflow, entity_id: str, version: WorkflowVersion | None = None
) -> dict:
    """The workflow's live version (or `version`) on one entity, committing nothing."""
    entity = Entity.objects.select_related("entity_type").filter(pk=entity_id).first()
    if entity is None or entity.entity_type_id != workflow.entity_type_id:
        message = (
            f"No entity {entity_id!r} of this workflow's entity type "
            f"({workflow.entity_type_id}) exists."
        )
        raise InvalidInput(message, details=[FieldError("entityId", message, "does_not_exist")])
    if version is None:
        version = workflow.versions.get(number=workflow.version)
    steps = version.steps
    state = state_of_entity(entity)
    steps_run(
        states=[state],
        steps=steps,
        run_id="test",
        workflow_id=workflow.pk,
        engine=DryRun(),
        dry_run=True,
    )
    traced = {entry["stepId"]: entry for entry in state.trace}
    results = []
    for step in steps:
        entry = traced.get(step["id"], {"outcome": NOT_REACHED})
        results.append(
            {
                "stepId": step["id"],
                "type": step["type"],
                "outcome": entry["outcome"],
                "output": entry.get("output"),
                "error": entry.get("error"),
                "notes": [
                    message
                    for level, step_id, message in state.log
                    if step_id == step["id"] and level != "error"  # the error is `error`
                ],
            }
        )
    return {
        "entityId": entity.pk,
        "workflowVersion": version.number,
        "status": ANSWER_STATUS.get(state.outcome, "failed"),
        "error": state.error or None,
        "steps": results,
        "data": state.data,
        "usage": Usage.of(state.usage).summary(),
    }
