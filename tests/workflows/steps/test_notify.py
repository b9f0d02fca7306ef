import hashlib
import hmac

import pytest
from django.core import mail

pytestmark = pytest.mark.django_db


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


def test_webhook_posts_a_signed_json_event(run_steps, receiver, allow_loopback):
    secret = "s3cret-for-tests"
    [item], [entity] = run_steps(
        [_webhook(receiver.url + "/hook", secret=secret)], {"title": "Lamp"}
    )
    assert item.status == "completed", item.error
    [request] = receiver.requests
    event = request.json()
    assert event["type"] == "workflow.notify"
    assert event["message"] == "Lamp is ready"
    assert event["entity"]["id"] == entity.pk
    assert event["id"] == f"{item.run_id}.{entity.pk}.notify_1"
    expected = "sha256=" + hmac.new(secret.encode(), request.body, hashlib.sha256).hexdigest()
    assert request.headers["X-Workflows-Signature"] == expected


def test_webhook_without_secret_is_unsigned(run_steps, receiver, allow_loopback):
    run_steps([_webhook(receiver.url)], {"title": "Lamp"})
    assert "X-Workflows-Signature" not in receiver.requests[0].headers


def test_webhook_retries_5xx_then_succeeds(run_steps, receiver, allow_loopback):
    receiver.statuses = [500, 503]
    [item], _ = run_steps([_webhook(receiver.url)], {"title": "Lamp"})
    assert item.status == "completed"
    assert len(receiver.requests) == 3


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


def test_email_goes_through_the_mail_backend(run_steps):
    step = {
        "type": "notify",
        "config": {
            "channel": "email",
            "to": "a@example.com, b@example.com",
            "subject": "{{ entity.title }} done",
            "message": "Price {{ entity.price }}",
        },
    }
    [item], _ = run_steps([step], {"title": "Lamp", "price": 3})
    assert item.status == "completed"
    [message] = mail.outbox
    assert message.subject == "Lamp done"
    assert message.body == "Price 3"
    assert message.to == ["a@example.com", "b@example.com"]
