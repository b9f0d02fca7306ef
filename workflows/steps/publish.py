from workflows.steps.base import StepType, advance
from workflows.steps.registry import register
from workflows.steps.runtime import EntityState, Flow, StepContext


@register
class Publish(StepType):
    type = "publish"
    name = "Publish"
    description = (
        "Commits the working copy to the entity (a new `version`), sets its `status` and, when "
        "published, `publishedAt`."
    )
    config_schema = {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "status": {
                "type": "string",
                "enum": ["published", "draft"],
                "default": "published",
                "description": "The status the entity gets.",
            },
        },
    }
    example = {"status": "published"}

    def run_batch(self, states: list[EntityState], config: dict, ctx: StepContext) -> None:
        status = config["status"]
        # A run's engine merges the working copies into the entities and moves each item's
        # checkpoint past this step in one transaction; a dry run's only sets the status.
        published = ctx.engine.publish(states, status, ctx)
        output = {"published": not ctx.dry_run, "status": status}
        for state in states:
            if state.entity_id in published:
                advance(state, Flow(output=output), ctx)
