"""The `notify` step: a signed webhook (at least once) or an email (at most once)."""

import json
import logging
import queue
import time

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.core.validators import validate_email

from config.api.errors import FieldError
from workflows.outbound import display_url, post_json, resolve_checked, url_problem
from workflows.signatures import signing_key, webhook_headers
from workflows.steps.base import StepType, advance, internal_error, template_string
from workflows.steps.inflight import bounded_calls
from workflows.steps.registry import register
from workflows.steps.runtime import EntityState, Flow, StepContext, StepError

SEND_CONCURRENCY = 8
MAX_RECIPIENTS = 50

logger = logging.getLogger(__name__)


@register
class Notify(StepType):
    type = "notify"
    name = "Notify"
    description = (
        "POSTs a JSON event about the entity to `url` (at least once; signed as Standard "
        "Webhooks does when `secret` is set: `webhook-id`, `webhook-timestamp`, "
        "`webhook-signature`), or emails `to` through the deployment's mail backend (at most "
        "once). Private, loopback and link-local addresses are refused unless the deployment "
        "allows them; redirects are not followed."
    )
    write_only = ("secret",)
    config_schema = {
        "type": "object",
        "additionalProperties": False,
        "required": ["channel"],
        "properties": {
            "channel": {
                "type": "string",
                "enum": ["webhook", "email"],
                "description": "How to notify.",
                "x-enumDescriptions": {
                    "webhook": "POST a JSON event to `url`, signed as Standard Webhooks when a "
                    "`secret` is set.",
                    "email": "Send an email to `to` with `subject` and `message`.",
                },
            },
            "url": {
                "type": "string",
                "maxLength": 2000,
                "description": "Webhook: the http(s) URL that receives the event (no "
                "credentials in it; a 3xx answer is a failed delivery).",
            },
            "to": {
                "oneOf": [
                    {"type": "string", "maxLength": 2000},
                    {
                        "type": "array",
                        "items": {"type": "string", "maxLength": 320},
                        "minItems": 1,
                        "maxItems": MAX_RECIPIENTS,
                    },
                ],
                "description": "Email: the recipient, a list of recipients, or several "
                "separated by commas.",
            },
            "subject": template_string("Email: the subject", maxLength=1000),
            "message": template_string(
                "The message: the email body, or `message` in the webhook event"
            ),
            "secret": {
                "type": "string",
                "minLength": 8,
                "maxLength": 200,
                "writeOnly": True,
                "description": "Webhook: the signing key, as Standard Webhooks: `whsec_` "
                "then base64, or any other string (used as its UTF-8 bytes). Never returned; "
                "an update that leaves it out keeps the step's current secret.",
            },
            "secretSet": {
                "type": "boolean",
                "readOnly": True,
                "description": "In responses: whether a secret is set (ignored in requests).",
            },
        },
    }
    example = {
        "channel": "webhook",
        "url": "https://hooks.example.com/workflows",
        "message": "{{ entity.title }} was published.",
        "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
    }

    def extra_problems(self, config: dict, *, path: str) -> list[FieldError]:
        if config["channel"] == "webhook":
            if "url" not in config:
                return [FieldError(f"{path}.url", "Required for a webhook.", "required")]
            problem = url_problem(config["url"])
            if problem:
                return [FieldError(f"{path}.url", problem)]
            if "secret" in config:
                try:
                    signing_key(config["secret"])
                except ValueError as exc:
                    return [FieldError(f"{path}.secret", str(exc))]
            return []
        if "to" not in config:
            return [FieldError(f"{path}.to", "Required for an email.", "required")]
        to = config["to"]
        listed = to if isinstance(to, list) else recipients(to)
        found = []
        for index, address in enumerate(listed):
            where = f"{path}.to[{index}]" if isinstance(to, list) else f"{path}.to"
            try:
                validate_email(address.strip())
            except ValidationError:
                found.append(FieldError(where, f"{address!r} is not an email address."))
        if not listed:
            found.append(FieldError(f"{path}.to", "Give at least one email address."))
        elif len(listed) > MAX_RECIPIENTS:
            found.append(FieldError(f"{path}.to", f"Give at most {MAX_RECIPIENTS} addresses."))
        return found

    def chunk_size_limit(self, config: dict) -> int | None:
        # Each entity may wait on a slow receiver (attempts x OUTBOUND_TIMEOUT_S): a large
        # run's grown chunks would hold one delivery for too long (past the broker's
        # visibility timeout, which hands it to a second worker), so the default size stays.
        return settings.RUN_CHUNK_SIZE

    def run_batch(self, states: list[EntityState], config: dict, ctx: StepContext) -> None:
        """Up to SEND_CONCURRENCY sends in flight.

        Email is at most once: an entity's checkpoint moves past this step just before its
        send, so a redelivered chunk never sends it again (a worker killed mid-send loses
        that email). Webhooks are at least once: the checkpoint moves after the send, so a
        worker killed during or after a send sends it again on redelivery, with the same
        `webhook-id`. This thread writes those checkpoints, a few sends at a time: the
        pool's threads have no database connection of their own to use."""
        at_least_once = config["channel"] == "webhook"
        sent: queue.SimpleQueue[EntityState] = queue.SimpleQueue()

        def send(state: EntityState) -> Flow:
            flow = self.run(state, config, ctx)  # raises if not delivered: no checkpoint
            sent.put(state)
            return flow

        def checkpoint_sent() -> None:
            done = []
            while not sent.empty():
                done.append(sent.get())
            if done:
                ctx.engine.checkpoint(done, ctx)

        def admit(state: EntityState) -> bool:
            if at_least_once:
                checkpoint_sent()
                return True
            return bool(ctx.engine.checkpoint([state], ctx))

        sends = list(bounded_calls(states, send, limit=SEND_CONCURRENCY, ctx=ctx, admit=admit))
        if at_least_once:
            checkpoint_sent()
        for state, sending in sends:
            if not state.alive:
                continue  # its checkpoint failed it, or another delivery owns it now
            try:
                flow = sending.result()
            except StepError as exc:
                state.fail(ctx.step_id, exc.message)
            except Exception as exc:  # a defect in one send fails that entity alone
                logger.exception("Step %s (notify) crashed", ctx.step_id)
                state.fail(ctx.step_id, internal_error(ctx.step_id, exc))
            else:
                advance(state, flow, ctx)

    def run(self, state: EntityState, config: dict, ctx: StepContext) -> Flow:
        message = self.render(config.get("message", ""), state, ctx)
        if config["channel"] == "email":
            return self._email(state, config, ctx, message)
        event = webhook_event(state, ctx, message)
        if ctx.dry_run:
            # What a run would refuse (a private address, a name that does not resolve) fails
            # the test with the run's error; only the sending is left out.
            resolve_checked(config["url"])
            return Flow(
                output={
                    "sent": False,
                    "channel": "webhook",
                    "url": display_url(config["url"]),
                    "event": event,
                }
            )
        body = json.dumps(event).encode()
        headers = webhook_headers(event["id"], body, config.get("secret", ""))
        answer = post_json(config["url"], body, headers)
        state.log.append(
            (
                "info",
                ctx.step_id,
                f"Webhook delivered to {display_url(config['url'])} ({answer.status_code}).",
            )
        )
        return Flow(output={"sent": True, "channel": "webhook", "status": answer.status_code})

    def _email(self, state: EntityState, config: dict, ctx: StepContext, message: str) -> Flow:
        to = recipients(config["to"])
        subject = self.render(config.get("subject") or "Workflow notification", state, ctx)
        if "\r" in subject or "\n" in subject:
            # A line break in a header would let entity data add headers (or fail the send).
            # Not quoted: it is the entity's data, and an item's error is read by whoever may
            # view runs.
            raise StepError("The email subject contains a line break after rendering.")
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
        try:
            send_mail(subject, message, None, to)
        except OSError as exc:  # refused (SMTPException), unreachable, or EMAIL_TIMEOUT_S passed
            raise StepError(f"Email not sent: {exc.__class__.__name__}: {exc}") from exc
        state.log.append(("info", ctx.step_id, f"Email sent to {', '.join(to)}."))
        return Flow(output={"sent": True, "channel": "email", "to": to})


def webhook_event(state: EntityState, ctx: StepContext, message: str) -> dict:
    return {
        # Stable for one entity at one step of one run: a redelivery carries the same id
        # (`webhook-id`), so a receiver can drop duplicates.
        "id": f"{ctx.run_id}.{state.entity_id}.{ctx.step_id}",
        "type": "workflow.notify",
        "createdAt": int(time.time() * 1000),
        "runId": ctx.run_id,
        "workflowId": ctx.workflow_id,
        "stepId": ctx.step_id,
        "message": message,
        "entity": {"id": state.entity_id, "status": state.status, "data": state.data},
    }


def recipients(to: str | list[str]) -> list[str]:
    addresses = to if isinstance(to, list) else to.split(",")
    return [address.strip() for address in addresses if address.strip()]
