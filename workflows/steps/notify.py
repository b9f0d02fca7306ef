import hashlib
import hmac
import json
import time
from urllib.parse import urlsplit

from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.core.validators import validate_email

from config.api.errors import FieldError
from workflows.outbound import post_json
from workflows.steps.base import StepType, advance, template_string
from workflows.steps.inflight import bounded_calls
from workflows.steps.registry import register
from workflows.steps.runtime import EntityState, Flow, StepContext, StepError


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

    def run_batch(self, states: list[EntityState], config: dict, ctx: StepContext) -> None:
        """Up to SEND_CONCURRENCY sends in flight. Each entity's checkpoint moves past this
        step just before its send, so a redelivered chunk never sends it again; a worker
        killed mid-send loses at most the sends in flight (at-most-once)."""
        sends = bounded_calls(
            states,
            lambda state: self.run(state, config, ctx),
            limit=SEND_CONCURRENCY,
            ctx=ctx,
            admit=lambda state: bool(ctx.engine.checkpoint([state], ctx)),
        )
        for state, sending in sends:
            try:
                flow = sending.result()
            except StepError as exc:
                state.fail(ctx.step_id, exc.message)
            else:
                advance(state, flow, ctx)

    def run(self, state: EntityState, config: dict, ctx: StepContext) -> Flow:
        message = self.render(config.get("message", ""), state, ctx)
        if config["channel"] == "email":
            to = recipients(config["to"])
            subject = self.render(config.get("subject") or "Workflow notification", state, ctx)
            if ctx.dry_run:
                return Flow(
                    output={
                        "sent": False,
                        "channel": "email",
                        "to": to,
                        "subject": subject,
                        "message": message,
                    }
                )
            send_mail(subject, message, None, to)
            state.log.append(("info", ctx.step_id, f"Email sent to {', '.join(to)}."))
            return Flow(output={"sent": True, "channel": "email", "to": to})
        event = webhook_event(state, ctx, message)
        if ctx.dry_run:
            return Flow(
                output={"sent": False, "channel": "webhook", "url": config["url"], "event": event}
            )
        body = json.dumps(event).encode()
        headers = {"X-Workflows-Event-Id": event["id"]}
        if config.get("secret"):
            headers[SIGNATURE_HEADER] = sign(body, config["secret"])
        response = post_json(config["url"], body, headers)
        state.log.append(
            ("info", ctx.step_id, f"Webhook delivered to {config['url']} ({response.status_code}).")
        )
        return Flow(output={"sent": True, "channel": "webhook", "status": response.status_code})


SIGNATURE_HEADER = "X-Workflows-Signature"
SEND_CONCURRENCY = 8


def sign(body: bytes, secret: str) -> str:
    """`sha256=<hex HMAC-SHA256 of the raw body>`; receivers recompute and compare."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def webhook_event(state: EntityState, ctx: StepContext, message: str) -> dict:
    return {
        # Stable for one entity at one step of one run, so a receiver can drop duplicates.
        "id": f"{ctx.run_id}.{state.entity_id}.{ctx.step_id}",
        "type": "workflow.notify",
        "createdAt": int(time.time() * 1000),
        "runId": ctx.run_id,
        "workflowId": ctx.workflow_id,
        "stepId": ctx.step_id,
        "message": message,
        "entity": {"id": state.entity_id, "status": state.status, "data": state.data},
    }


def recipients(to: str) -> list[str]:
    return [address.strip() for address in to.split(",") if address.strip()]
