from workflows.steps.base import StepType
from workflows.steps.registry import register


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
