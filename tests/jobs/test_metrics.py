"""/metrics: what worker processes counted, in Prometheus' text format, for a key or an
allowed network."""

import ipaddress
import subprocess
import sys
import uuid

import pytest
from prometheus_client.parser import text_string_to_metric_families

from jobs.cancel import run_cancel, run_cancel_step
from jobs.models import Experiment, Run
from jobs.waits.base import kinds
from tests.conftest import Api
from tests.factories import make_entities, make_key, make_workflow, run_inline, start_run
from tests.processes import ROOT
from tests.servers import Reply, start_llm
from tests.workers import FAKE_LLM_PORT, wait_for_run


def scrape(client) -> dict:
    """Each sample's value by (name, labels)."""
    response = client.get("/metrics")
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain; version=")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.content.decode())
        for sample in family.samples
    }


def value(samples: dict, name: str, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.mark.django_db(transaction=True)
@pytest.mark.worker
def test_counts_from_a_worker_process_show_up_at_metrics(celery_worker, product_type):
    model = f"metrics-{uuid.uuid4().hex[:8]}"  # no price, not configured: counted as `other`
    fake, server = start_llm("openai", port=FAKE_LLM_PORT)
    # Two entities: one answered after a 429, one after a 500; each then succeeds.
    fake.script = [
        Reply(status=429, headers={"Retry-After": "0.1"}, error="slow down"),
        Reply(status=500),
    ]
    steps = [
        {
            "id": "gen",
            "type": "ai_generate",
            "config": {
                "prompt": "Describe {{ entity.title }}",
                "outputField": "d",
                "provider": "openai",
                "model": model,
            },
        },
        {
            "id": "check",
            "type": "validate",
            "config": {"rules": [{"field": "title", "required": True}]},
        },
    ]
    client = Api(make_key(read_only=True))
    before = scrape(client)
    try:
        run = wait_for_run(
            start_run(make_workflow(product_type, steps), make_entities(product_type, 2)).pk
        )
    finally:
        server.shutdown()
        server.server_close()  # the port is the session worker's: free it for the next test
    assert run.status == "completed"
    after = scrape(client)

    def delta(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    labels = {"provider": "openai", "model": "other"}
    assert delta("workflows_model_calls_total", **labels, outcome="ok") == 2
    assert delta("workflows_model_calls_total", **labels, outcome="429") == 1
    assert delta("workflows_model_calls_total", **labels, outcome="500") == 1
    assert delta("workflows_model_retries_total", **labels) == 2
    assert delta("workflows_model_rate_limited_total", **labels) == 1
    assert delta("workflows_model_tokens_total", **labels, kind="input") == 2 * 11
    assert delta("workflows_model_tokens_total", **labels, kind="output") == 2 * 7
    assert delta("workflows_model_tokens_total", **labels, kind="cached_input") == 0
    # A model of no known price: its calls are counted as unpriced, never given a cost.
    assert delta("workflows_model_unpriced_calls_total", **labels) == 2
    assert delta("workflows_model_cost_usd_total", **labels) == 0
    assert delta("workflows_model_call_seconds_count", **labels) == 4
    assert delta("workflows_model_call_seconds_bucket", **labels, le="+Inf") == 4
    assert value(after, "workflows_model_calls_in_flight", **labels) == 0
    assert not any(dict(key).get("model") == model for _, key in after)  # never its own series
    assert (
        delta("workflows_entities_processed_total", step_type="ai_generate", outcome="completed")
        == 2
    )
    assert delta("workflows_chunk_seconds_count") >= 1
    assert value(after, "workflows_runs", status="completed") >= 1


@pytest.mark.django_db
@pytest.mark.parametrize(
    "authorization", [None, "Bearer not-a-key", "Basic dXNlcjpwYXNz", "Bearer"]
)
def test_metrics_without_a_key_from_elsewhere_is_a_401(settings, authorization):
    settings.METRICS_ALLOWED_NETWORKS = []
    client = Api()
    if authorization:
        client.credentials(HTTP_AUTHORIZATION=authorization)
    response = client.get("/metrics")
    assert response.status_code == 401
    assert response.json()["error"]["code"] in ("not_authenticated", "authentication_failed")


@pytest.mark.django_db
def test_a_key_reads_metrics_and_runs_are_counted_by_status(product_type):
    tidy = {
        "type": "transform",
        "config": {"operations": [{"op": "set", "field": "s", "value": 1}]},
    }
    run = start_run(make_workflow(product_type, [tidy]), make_entities(product_type, 1))
    samples = scrape(Api(make_key(read_only=True)))
    assert value(samples, "workflows_runs", status=run.status) >= 1
    assert {
        status for (name, labels) in samples if name == "workflows_runs" for _, status in labels
    } == {
        "pending",
        "running",
        "completed",
        "failed",
        "cancelled",
    }


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("networks", "allowed"),
    [
        (["127.0.0.0/8"], True),
        (["10.0.0.0/8", "127.0.0.1"], True),
        (["10.0.0.0/8"], False),
        (["::1/128"], False),
    ],
)
def test_an_allowed_network_reads_metrics_without_a_key(settings, networks, allowed):
    settings.METRICS_ALLOWED_NETWORKS = [ipaddress.ip_network(n) for n in networks]
    response = Api().get("/metrics", REMOTE_ADDR="127.0.0.1")
    assert response.status_code == (200 if allowed else 401)


@pytest.mark.parametrize("networks", ["10.0.0.0/33", "not-a-network", "10.0.0.0/8,300.1.1.1"])
def test_a_bad_allowed_network_stops_the_start_naming_the_variable(networks):
    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "METRICS_ALLOWED_NETWORKS": networks},
        timeout=60,
    )
    assert result.returncode != 0
    assert "METRICS_ALLOWED_NETWORKS: " in result.stderr


@pytest.mark.django_db
def test_experiments_are_counted_by_status(product_type):
    """An operator alerts on experiments piling up as on runs: the database's
    count of each status, every status listed."""
    tidy = {
        "type": "transform",
        "config": {"operations": [{"op": "set", "field": "s", "value": 1}]},
    }
    workflow = make_workflow(product_type, [tidy])
    version = workflow.versions.get()
    for status in ("running", "cancelled", "cancelled"):
        Experiment.objects.create(
            workflow=workflow, baseline=version, candidate=version, status=status
        )
    samples = scrape(Api(make_key(read_only=True)))
    assert value(samples, "workflows_experiments", status="cancelled") == 2
    assert value(samples, "workflows_experiments", status="running") == 1
    listed = {s for (name, labels) in samples if name == "workflows_experiments" for _, s in labels}
    assert listed == {"pending", "running", "completed", "cancelled"}  # none ends `failed`


@pytest.mark.django_db
def test_entities_waiting_are_counted_by_kind_of_wait(product_type):
    """An operator alerts on reviews, delays or events piling up: the entities waiting now,
    by kind, every kind listed; those of an ended run (cancelled) are not waiting."""
    later = {"id": "later", "type": "delay", "config": {"minutes": 60}}
    review = {"id": "check", "type": "review", "config": {"instructions": "Right?"}}
    delayed = start_run(make_workflow(product_type, [later]), make_entities(product_type, 2))
    reviewed = start_run(make_workflow(product_type, [review]), make_entities(product_type, 3))
    ended = start_run(make_workflow(product_type, [later]), make_entities(product_type, 4))
    for run in (delayed, reviewed, ended):
        run_inline(run.pk)
    run_cancel(run_id=ended.pk)
    while run_cancel_step(run_id=ended.pk):
        pass
    assert Run.objects.get(pk=ended.pk).status == "cancelled"
    samples = scrape(Api(make_key(read_only=True)))
    assert value(samples, "workflows_waits", kind="delay") == 2
    assert value(samples, "workflows_waits", kind="review") == 3
    listed = {k for (name, labels) in samples if name == "workflows_waits" for _, k in labels}
    assert listed == {kind.name for kind in kinds}
