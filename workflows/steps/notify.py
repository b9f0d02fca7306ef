from urllib.parse import urlsplit

from django.core.exceptions import ValidationError
from django.core.validators import validate_email

from config.api.errors import FieldError
from workflows.steps.base import StepType, template_string
from workflows.steps.registry import register


@register
class Notify(StepType):
    type = "notify"
    name = "Notify"
    description = (
        "POSTs a JSON event about the entity to `url` (signed with HMAC-SHA256 in "
        "`X-Workflows-Signature` when `secret` is set), or emails `to` through the deployment's "
        "mail backend. Private, loopback and link-local addresses are refused unless the "
        "deployment allows them."
    )
    config_schema = {
        "type": "object",
        "additionalProperties": False,
        "required": ["channel"],
        "properties": {
            "channel": {
                "type": "string",
                "enum": ["webhook", "email"],
                "description": "How to notify.",
            },
            "url": {
                "type": "string",
                "maxLength": 2000,
                "description": "Webhook: the http(s) URL that receives the event.",
            },
            "to": {
                "type": "string",
                "maxLength": 2000,
                "description": "Email: the recipient, or several separated by commas.",
            },
            "subject": template_string("Email: the subject", maxLength=1000),
            "message": template_string(
                "The message: the email body, or `message` in the webhook event"
            ),
            "secret": {
                "type": "string",
                "minLength": 8,
                "maxLength": 200,
                "description": "Webhook: the key that signs the body (HMAC-SHA256).",
            },
        },
    }
    example = {
        "channel": "webhook",
        "url": "https://hooks.example.com/workflows",
        "message": "{{ entity.title }} was published.",
        "secret": "a-long-shared-secret",
    }

    def extra_problems(self, config: dict, *, path: str) -> list[FieldError]:
        if config["channel"] == "webhook":
            if "url" not in config:
                return [FieldError(f"{path}.url", "Required for a webhook.", "required")]
            parts = urlsplit(config["url"])
            if parts.scheme not in ("http", "https") or not parts.hostname:
                return [FieldError(f"{path}.url", "Must be an http:// or https:// URL.")]
            return []
        if "to" not in config:
            return [FieldError(f"{path}.to", "Required for an email.", "required")]
        for address in recipients(config["to"]):
            try:
                validate_email(address)
            except ValidationError:
                return [FieldError(f"{path}.to", f"{address!r} is not an email address.")]
        return []


def recipients(to: str) -> list[str]:
    return [address.strip() for address in to.split(",") if address.strip()]
