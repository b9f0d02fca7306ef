"""A run's callback as its receiver meets it: the run as the API shows it, with Standard
Webhooks' headers, signed with the run's `callbackSecret` when it has one."""

import base64
import json
import socket

import pytest
from django.urls import reverse
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from jobs.models import Run
from jobs.services import run_callback_send
from tests.factories import make_entities, make_workflow, run_inline

pytestmark = pytest.mark.django_db

WHSEC = "whsec_" + base64.b64encode(b"the receiver's own key, 32 bytes").decode()
# Prices 0..3: the two over 1 fail, so the run can be retried.
FAIL_EXPENSIVE = [
    {"id": "check", "type": "validate", "config": {"rules": [{"field": "price", "maximum": 1}]}},
    {"id": "pub", "type": "publish", "config": {}},
]


@pytest.fixture
def staff_admin(client, django_user_model):
    django_user_model.objects.create_superuser("staff", "s@example.com", "pw-for-tests-1")
    client.login(username="staff", password="pw-for-tests-1")
    return client


@pytest.fixture
def workflow(product_type):
    return make_workflow(product_type, FAIL_EXPENSIVE)


def _start(api, workflow, product_type, **body):
    body = {"entityIds": make_entities(product_type, 4), **body}
    return api.post(f"/api/v1/workflows/{workflow.pk}/run", body)


def _ended(api, workflow, product_type, receiver, **body) -> tuple[Run, object]:
    """Start a run with a callback to `receiver`, run it and send its callback."""
    response = _start(api, workflow, product_type, callbackUrl=receiver.url + "/cb", **body)
    assert response.status_code == 202, response.content
    run_id = response.json()["runId"]
    run_inline(run_id)
    run_callback_send(run_id=run_id)
    [request] = [r for r in receiver.requests if r.path == "/cb"]
    return Run.objects.get(pk=run_id), request


@pytest.mark.parametrize(
    "secret,key",
    [(WHSEC, WHSEC), ("a plain string secret", b"a plain string secret")],
    ids=["whsec", "plain"],
)
def test_a_callback_is_signed_with_the_runs_secret(
    api, workflow, product_type, receiver, allow_loopback, secret, key
):
    run, request = _ended(api, workflow, product_type, receiver, callbackSecret=secret)
    body = Webhook(key).verify(request.body, request.headers)
    assert body["id"] == run.pk and body["status"] == "failed"
    assert request.headers["webhook-id"] == run.pk
    assert request.headers["X-Workflows-Event"] == "run.ended"
    # Another key, a changed body, or another message's id are refused.
    with pytest.raises(WebhookVerificationError):
        Webhook(base64.b64encode(b"someone else's key")).verify(request.body, request.headers)
    forged = request.body.replace(b'"failed"', b'"completed"')
    with pytest.raises(WebhookVerificationError):
        Webhook(key).verify(forged, request.headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(key).verify(request.body, {**request.headers, "webhook-id": "run_other"})


def test_a_callback_sent_again_is_the_same_message(
    api, workflow, product_type, receiver, allow_loopback
):
    run, first = _ended(api, workflow, product_type, receiver, callbackSecret=WHSEC)
    run_callback_send(run_id=run.pk)  # a redelivered task
    again = [r for r in receiver.requests if r.path == "/cb"][1]
    assert again.headers["webhook-id"] == first.headers["webhook-id"] == run.pk
    assert Webhook(WHSEC).verify(again.body, again.headers) == json.loads(first.body)


def test_a_callback_without_a_secret_carries_the_ids_but_no_signature(
    api, workflow, product_type, receiver, allow_loopback
):
    run, request = _ended(api, workflow, product_type, receiver)
    assert request.headers["webhook-id"] == run.pk
    assert int(request.headers["webhook-timestamp"]) > 0
    assert "webhook-signature" not in request.headers


def test_the_secret_is_never_shown(api, staff_admin, workflow, product_type):
    response = _start(
        api, workflow, product_type, callbackUrl="https://h.example.com/cb", callbackSecret=WHSEC
    )
    assert response.status_code == 202
    assert WHSEC not in response.content.decode()
    run_id = response.json()["runId"]
    assert Run.objects.get(pk=run_id).callback_secret == WHSEC
    shown = [
        api.get(f"/api/v1/workflows/{workflow.pk}/runs/{run_id}"),
        api.get(f"/api/v1/workflows/{workflow.pk}/runs"),
        api.get(f"/api/v1/jobs/{response.json()['jobId']}"),
        staff_admin.get(reverse("admin:jobs_run_change", args=[run_id])),
        staff_admin.get(reverse("admin:jobs_run_changelist")),
    ]
    for page in shown:
        assert page.status_code == 200
        assert WHSEC not in page.content.decode()
        assert "callbackSecret" not in page.content.decode()


def test_a_retry_keeps_the_url_and_the_secret(api, workflow, product_type):
    response = _start(
        api, workflow, product_type, callbackUrl="https://h.example.com/cb", callbackSecret=WHSEC
    )
    run_id = response.json()["runId"]
    run_inline(run_id)
    retried = api.post(f"/api/v1/workflows/{workflow.pk}/runs/{run_id}/retry", {})
    assert retried.status_code == 202
    retry = Run.objects.get(pk=retried.json()["runId"])
    assert (retry.callback_url, retry.callback_secret) == ("https://h.example.com/cb", WHSEC)


def test_a_run_over_a_filter_keeps_its_secret(api, workflow, product_type):
    make_entities(product_type, 3)
    response = api.post(
        f"/api/v1/workflows/{workflow.pk}/run",
        {
            "filter": {"status": "draft"},
            "callbackUrl": "https://h.example.com/cb",
            "callbackSecret": "plain",
        },
    )
    assert response.status_code == 202, response.content
    assert Run.objects.get(pk=response.json()["runId"]).callback_secret == "plain"


@pytest.mark.parametrize(
    "body,code",
    [
        ({"callbackUrl": "https://h.example.com/cb", "callbackSecret": "whsec_not base64!"}, None),
        ({"callbackUrl": "https://h.example.com/cb", "callbackSecret": "whsec_"}, None),
        ({"callbackSecret": WHSEC}, None),  # nothing to sign
        ({"callbackUrl": "https://h.example.com/cb", "callbackSecret": 12345}, None),
        ({"callbackUrl": "https://h.example.com/cb", "callbackSecret": ["a"]}, None),
        ({"callbackUrl": "https://h.example.com/cb", "callbackSecret": ""}, "blank"),
        ({"callbackUrl": "https://h.example.com/cb", "callbackSecret": "s" * 501}, "max_length"),
    ],
)
def test_an_unusable_secret_is_a_400_naming_it(api, workflow, product_type, body, code):
    response = _start(api, workflow, product_type, **body)
    assert response.status_code == 400, response.content
    [detail] = response.json()["error"]["details"]
    assert detail["field"] == "callbackSecret"
    if code:
        assert detail["code"] == code
    assert not Run.objects.exists()


def test_a_callback_goes_to_a_host_of_one_label_the_deployment_allows(
    api, workflow, product_type, receiver, settings, monkeypatch
):
    """`http://hooks:<port>/cb`, a receiver on the deployment's own network admitted by
    name in OUTBOUND_ALLOWED_HOSTS, as a `notify` step's url may be: the run was a 400
    ("Enter a valid URL": Django's validator wants a dot in a host name)."""
    settings.OUTBOUND_ALLOWED_HOSTS = ["hooks"]
    real = socket.getaddrinfo
    monkeypatch.setattr(
        socket,
        "getaddrinfo",
        lambda host, *args, **kw: real("127.0.0.1" if host == "hooks" else host, *args, **kw),
    )
    port = receiver.url.rsplit(":", 1)[1].rstrip("/")
    response = _start(api, workflow, product_type, callbackUrl=f"http://hooks:{port}/cb")
    assert response.status_code == 202, response.content
    run_id = response.json()["runId"]
    run_inline(run_id)
    run_callback_send(run_id=run_id)
    [request] = receiver.requests
    assert request.headers["Host"] == f"hooks:{port}" and request.json()["id"] == run_id


@pytest.mark.parametrize(
    "url",
    [
        "hooks.example.com/cb",
        "ftp://hooks.example.com/cb",
        "http://[::1/cb",
        "http://",
        "http://hooks example.com/cb",
    ],
)
def test_a_callback_url_that_cannot_be_sent_to_is_a_400(api, workflow, product_type, url):
    response = _start(api, workflow, product_type, callbackUrl=url)
    assert response.status_code == 400, response.content
    [detail] = response.json()["error"]["details"]
    assert detail["field"] == "callbackUrl"
