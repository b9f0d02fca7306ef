import base64
import time

import pytest
from django.core import mail
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from entities.models import Entity
from jobs.models import RunItem, RunLog
from tests.factories import make_entities, make_workflow, run_inline, start_run
from tests.servers import silent_server
from workflows.models import Step, WorkflowVersion

pytestmark = pytest.mark.django_db

WHSEC = "whsec_" + base64.b64encode(b"a key of thirty-two random bytes").decode()


def _webhook(url, **extra):
    return {
        "type": "notify",
        "config": {
            "channel": "webhook",
            "url": url,
            "message": "{{ entity.title }} is ready",
            **extra,
        },
    }


def _email(**config):
    return {"type": "notify", "config": {"channel": "email", "message": "Hi", **config}}


@pytest.mark.parametrize(
    ("secret", "receiver_key"),
    [
        (WHSEC, WHSEC),  # what Standard Webhooks receivers are configured with
        ("s3cret-for-tests", b"s3cret-for-tests"),  # any other string: its UTF-8 bytes
        ("whsec_c2hvcnQ", b"short"),  # unpadded base64
    ],
)
def test_webhook_is_signed_as_standard_webhooks_and_verifies_with_the_library(
    secret, receiver_key, run_steps, receiver, allow_loopback
):
    [item], [entity] = run_steps(
        [_webhook(receiver.url + "/hook", secret=secret)], {"title": "Lamp"}
    )
    assert item.status == "completed", item.error
    [request] = receiver.requests
    event = Webhook(receiver_key).verify(request.body, request.headers)
    assert event["type"] == "workflow.notify"
    assert event["message"] == "Lamp is ready"
    assert event["entity"]["id"] == entity.pk
    assert event["id"] == f"{item.run_id}.{entity.pk}.notify_1"
    assert request.headers["webhook-id"] == event["id"]


def test_the_library_rejects_a_replay_a_forgery_and_an_old_timestamp(
    run_steps, receiver, allow_loopback, monkeypatch
):
    run_steps([_webhook(receiver.url, secret=WHSEC)], {"title": "Lamp"})
    [request] = receiver.requests
    verifier = Webhook(WHSEC)
    verifier.verify(request.body, request.headers)  # the genuine one
    forgeries = [
        (request.body.replace(b"Lamp", b"Lamb"), request.headers),  # body changed
        (request.body, {**request.headers, "webhook-id": "another-id"}),
        (request.body, {**request.headers, "webhook-timestamp": str(int(time.time()) + 1)}),
    ]
    for body, headers in forgeries:
        with pytest.raises(WebhookVerificationError):
            verifier.verify(body, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(b"another secret").verify(request.body, request.headers)
    # Sent ten minutes ago (or replayed now): refused although the signature matches.
    import workflows.steps.notify as notify

    sent_at = time.time() - 600
    monkeypatch.setattr(notify.time, "time", lambda: sent_at)
    run_steps([_webhook(receiver.url, secret=WHSEC)], {"title": "Lamp"})
    old = receiver.requests[-1]
    with pytest.raises(WebhookVerificationError, match="too old"):
        verifier.verify(old.body, old.headers)


def test_webhook_without_secret_has_an_id_and_no_signature(run_steps, receiver, allow_loopback):
    run_steps([_webhook(receiver.url)], {"title": "Lamp"})
    headers = receiver.requests[0].headers
    assert headers["webhook-id"] and headers["webhook-timestamp"].isdigit()
    assert "webhook-signature" not in headers


def test_webhook_retries_5xx_then_succeeds_with_the_same_id(run_steps, receiver, allow_loopback):
    receiver.statuses = [500, 503]
    [item], _ = run_steps([_webhook(receiver.url, secret=WHSEC)], {"title": "Lamp"})
    assert item.status == "completed"
    assert len(receiver.requests) == 3
    assert len({request.headers["webhook-id"] for request in receiver.requests}) == 1
    for request in receiver.requests:
        Webhook(WHSEC).verify(request.body, request.headers)


def test_webhook_failing_every_attempt_fails_the_entity(
    run_steps, receiver, allow_loopback, settings
):
    settings.OUTBOUND_MAX_ATTEMPTS = 2
    receiver.statuses = [500, 500]
    [item], _ = run_steps([_webhook(receiver.url)], {"title": "Lamp"})
    assert item.status == "failed"
    assert "failed after 2 attempts: answered 500" in item.error


def test_webhook_4xx_is_not_retried(run_steps, receiver, allow_loopback):
    receiver.statuses = [404]
    [item], _ = run_steps([_webhook(receiver.url)], {"title": "Lamp"})
    assert item.status == "failed" and "answered 404" in item.error
    assert len(receiver.requests) == 1


def test_loopback_webhook_is_refused_without_the_allow_setting(run_steps, receiver):
    [item], _ = run_steps([_webhook(receiver.url)], {"title": "Lamp"})
    assert item.status == "failed"
    assert "non-public address 127.0.0.1" in item.error
    assert receiver.requests == []


# Any error in a step fails its entity, with a message and a log line.


def _store_unchecked_steps(workflow, steps):
    """As a workflow stored before a check existed: the steps bypass validation."""
    WorkflowVersion.objects.filter(workflow=workflow).update(steps=steps)
    Step.objects.filter(workflow=workflow, position=0).update(config=steps[0]["config"])


@pytest.mark.parametrize(
    ("first_step", "error"),
    [
        (_webhook("http://localhost:99999/x"), "port must be a number from 1 to 65535"),
        (_webhook("http://alice:pa55@127.0.0.1/x"), "Must not contain credentials"),
        (_email(to="a@example.com", subject="Hi {{ entity.title }}"), "line break"),
    ],
)
def test_a_step_that_cannot_send_fails_its_entity_and_the_rest_does_not_run(
    first_step, error, product_type, allow_loopback
):
    steps = [
        {"id": "tell", **first_step},
        {
            "id": "mark",
            "type": "transform",
            "config": {"operations": [{"op": "set", "field": "done", "value": True}]},
        },
        {"id": "pub", "type": "publish", "config": {}},
    ]
    workflow = make_workflow(product_type, [{"type": "publish", "config": {}}])
    _store_unchecked_steps(workflow, steps)
    [entity_id] = make_entities(product_type, 1)
    Entity.objects.filter(pk=entity_id).update(data={"title": "Lamp\r\nBcc: x@evil.example"})
    run = start_run(workflow, [entity_id])
    run_inline(run.pk)
    item = RunItem.objects.get(run=run)
    assert (item.status, item.step_id) == ("failed", "tell")
    assert error in item.error and "pa55" not in item.error
    [line] = RunLog.objects.filter(run=run, entity_id=entity_id, level="error")
    assert error in line.message
    # Read with jobs.view_run alone: never the entity's data (the subject rendered from it).
    assert "Lamp" not in item.error and "Lamp" not in line.message
    entity = Entity.objects.get(pk=entity_id)
    assert "done" not in entity.data and entity.status != "published"
    assert mail.outbox == []
    run.refresh_from_db()
    assert (run.status, run.completed, run.failed) == ("failed", 0, 1)


def test_an_unexpected_exception_in_a_sending_thread_fails_the_entity(
    run_steps, receiver, allow_loopback, monkeypatch
):
    from workflows.steps import notify

    def broken(*args, **kwargs):
        raise RuntimeError("the signer broke")

    monkeypatch.setattr(notify, "webhook_headers", broken)
    [item], _ = run_steps(
        [_webhook(receiver.url), {"type": "publish", "config": {}}], {"title": "Lamp"}
    )
    assert item.status == "failed"
    assert item.error == "Internal error in step notify_1: RuntimeError: the signer broke"
    [line] = RunLog.objects.filter(run_id=item.run_id, entity_id=item.entity_id, level="error")
    assert line.message == item.error


# Email


@pytest.mark.parametrize(
    "to",
    [
        "a@example.com, b@example.com",
        ["a@example.com", "b@example.com"],
        [" a@example.com", "b@example.com "],
    ],
)
def test_email_goes_to_one_address_or_a_list(to, run_steps):
    step = _email(to=to, subject="{{ entity.title }} done", message="Price {{ entity.price }}")
    [item], _ = run_steps([step], {"title": "Lamp", "price": 3})
    assert item.status == "completed", item.error
    [message] = mail.outbox
    assert message.subject == "Lamp done"
    assert message.body == "Price 3"
    assert message.to == ["a@example.com", "b@example.com"]


def test_a_mail_server_that_never_answers_fails_the_entity_saying_so(run_steps, settings):
    """A mail server that takes the connection and never greets (its answer stops at 60 s)
    held the send, and with it the worker's chunk, for as long as it kept the connection:
    Django's SMTP backend waits without a timeout unless given one. EMAIL_TIMEOUT_S (its
    default here) ends the wait, and the entity fails naming why."""
    with silent_server(hold_for=60) as port:
        settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
        settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", port
        [item], _ = run_steps([_email(to="a@example.com")], {"title": "Lamp"})
    assert item.status == "failed"
    assert item.error.startswith("Email not sent: ") and "timed out" in item.error, item.error
    assert not mail.outbox


@pytest.mark.parametrize(
    ("to", "field"),
    [
        ("not an address", "steps[0].config.to"),
        ("a@example.com, b@", "steps[0].config.to"),
        (["a@example.com", "nope"], "steps[0].config.to[1]"),
        (["a@example.com\r\nBcc: x@evil.example"], "steps[0].config.to[0]"),
        ([""], "steps[0].config.to[0]"),
        ([], "steps[0].config.to"),
        (" , ", "steps[0].config.to"),
        ([3], "steps[0].config.to[0]"),
    ],
)
def test_a_malformed_recipient_is_a_400_naming_it(to, field, api, product_type):
    response = api.post(
        "/api/v1/workflows",
        {"name": "Tell", "entityTypeId": product_type.pk, "steps": [_email(to=to)]},
    )
    assert response.status_code == 400, response.json()
    assert field in [detail["field"] for detail in response.json()["error"]["details"]]


# Creating: what cannot be sent is a 400


@pytest.mark.parametrize(
    ("config", "field", "message"),
    [
        ({"url": "http://localhost:99999/x"}, "url", "port must be a number"),
        ({"url": "http://localhost:0/x"}, "url", "port must be a number"),
        ({"url": "http://localhost:http/x"}, "url", "port must be a number"),
        ({"url": "http://alice:pa55@hooks.example.com/x"}, "url", "credentials"),
        ({"url": "https://alice@hooks.example.com/x"}, "url", "credentials"),
        ({"url": "ftp://hooks.example.com/x"}, "url", "http://"),
        # brackets that hold no IPv6 address: urlsplit raises, and the request was a 500
        ({"url": "http://[::1/x"}, "url", "not a URL"),
        ({"url": "http://hooks]/x"}, "url", "not a URL"),
        ({"url": "http://[1:2]/x"}, "url", "not a URL"),
        ({"url": "http://hooks example.com/x"}, "url", "neither a domain name"),
        ({"url": 'http://hooks"example.com/x'}, "url", "neither a domain name"),
        ({"url": "https://hooks.example.com/x", "secret": "whsec_not*base64!"}, "secret", "base64"),
        ({"url": "https://hooks.example.com/x", "secret": "whsec_==="}, "secret", "base64"),
    ],
)
def test_a_webhook_that_cannot_be_sent_is_a_400(config, field, message, api, product_type):
    step = {"type": "notify", "config": {"channel": "webhook", **config}}
    response = api.post(
        "/api/v1/workflows", {"name": "Tell", "entityTypeId": product_type.pk, "steps": [step]}
    )
    assert response.status_code == 400
    [detail] = response.json()["error"]["details"]
    assert detail["field"] == f"steps[0].config.{field}" and message in detail["message"]
    assert "pa55" not in response.content.decode()


def test_a_good_webhook_is_created(api, product_type):
    step = _webhook("https://hooks.example.com:8443/x?a=b", secret=WHSEC)
    response = api.post(
        "/api/v1/workflows", {"name": "Tell", "entityTypeId": product_type.pk, "steps": [step]}
    )
    assert response.status_code == 201, response.json()


# Secrets are write-only


def _workflow_with_secret(api, product_type, secret=WHSEC):
    steps = [
        {"id": "tell", **_webhook("https://hooks.example.com/x", secret=secret)},
        {"id": "pub", "type": "publish", "config": {}},
    ]
    response = api.post(
        "/api/v1/workflows", {"name": "Tell", "entityTypeId": product_type.pk, "steps": steps}
    )
    assert response.status_code == 201
    return response.json()


def test_no_response_shows_a_secret_only_that_one_is_set(api, read_only_api, product_type):
    created = _workflow_with_secret(api, product_type)
    responses = [
        created,
        api.get(f"/api/v1/workflows/{created['id']}").json(),
        read_only_api.get(f"/api/v1/workflows/{created['id']}").json(),
        api.patch(f"/api/v1/workflows/{created['id']}", {"name": "Renamed"}).json(),
    ]
    for body in responses:
        config = body["steps"][0]["config"]
        assert "secret" not in config and config["secretSet"] is True
        assert WHSEC not in str(body)
    assert "secretSet" not in responses[0]["steps"][1]["config"]  # only where one is set


def test_an_update_that_leaves_the_secret_out_keeps_it(api, product_type):
    created = _workflow_with_secret(api, product_type)
    steps = api.get(f"/api/v1/workflows/{created['id']}").json()["steps"]
    steps[0]["config"]["message"] = "changed"  # sent back as read: `secretSet`, no secret
    response = api.patch(f"/api/v1/workflows/{created['id']}", {"steps": steps})
    assert response.status_code == 200, response.json()
    assert response.json()["version"] == 2
    stored = Step.objects.get(workflow_id=created["id"], step_id="tell").config
    assert stored["secret"] == WHSEC and stored["message"] == "changed"
    assert "secretSet" not in stored
    # Sent back unchanged: the same steps, no new version.
    again = api.get(f"/api/v1/workflows/{created['id']}").json()["steps"]
    assert api.patch(f"/api/v1/workflows/{created['id']}", {"steps": again}).json()["version"] == 2


def test_an_update_with_a_new_secret_replaces_it_and_a_new_step_id_starts_without(
    api, product_type
):
    created = _workflow_with_secret(api, product_type)
    steps = api.get(f"/api/v1/workflows/{created['id']}").json()["steps"]
    steps[0]["config"]["secret"] = "a-new-plain-secret"
    api.patch(f"/api/v1/workflows/{created['id']}", {"steps": steps})
    assert Step.objects.get(step_id="tell").config["secret"] == "a-new-plain-secret"
    steps[0]["id"] = "other"  # another step: nothing to keep
    del steps[0]["config"]["secret"]
    api.patch(f"/api/v1/workflows/{created['id']}", {"steps": steps})
    stored = Step.objects.get(workflow_id=created["id"], step_id="other").config
    assert "secret" not in stored and "secretSet" not in stored
