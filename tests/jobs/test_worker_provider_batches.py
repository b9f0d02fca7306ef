"""Batch mode end to end on the real providers' clients: real Celery workers drive the
official OpenAI and Anthropic SDKs against stand-in servers on loopback whose batch
endpoints (files, batches, JSONL results) behave as the providers document. Entities wait
while the provider's batch is open, resume with its answers (read exactly as sync answers,
a JSON schema's wrapper or forced tool unwrapped), an expired request is retried, and a
cancelled run tells the provider."""

import json
import math

import pytest

from entities.models import Entity
from jobs.cancel import run_cancel
from jobs.models import AiBatch, AiBatchStatus, Run, RunItem
from tests.factories import make_entities, make_workflow, start_run
from tests.jobs.test_worker_ai_batches import poll_until_ended, submitted
from tests.servers import Reply, start_llm
from tests.workers import FAKE_ANTHROPIC_PORT, FAKE_LLM_PORT, wait_until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]

SCHEMA = {
    "type": "object",
    "properties": {"title": {"type": "string"}, "tags": {"type": "array"}},
    "required": ["title", "tags"],
}
ANSWER = {"title": "A fine chair", "tags": ["oak", "seat"]}


@pytest.fixture(params=["openai", "anthropic"])
def provider_fake(request):
    port = FAKE_LLM_PORT if request.param == "openai" else FAKE_ANTHROPIC_PORT
    fake, server = start_llm(request.param, port=port)
    fake.default = Reply(text=json.dumps(ANSWER), input_tokens=40, output_tokens=12)
    fake.batches.delay = math.inf  # open until the test ends it
    yield request.param, fake
    server.shutdown()


def workflow_for(product_type, provider: str):
    generate = {
        "id": "describe",
        "type": "ai_generate",
        "config": {
            "provider": provider,
            "prompt": "Describe {{ entity.title }}",
            "outputField": "seo",
            "responseFormat": "json",
            "jsonSchema": SCHEMA,
            "mode": "batch",
        },
    }
    return make_workflow(product_type, [generate, {"type": "publish", "config": {}}])


def test_a_batch_on_the_providers_sdk_resumes_its_entities_and_retries_an_expired_request(
    celery_worker, product_type, provider_fake
):
    provider, fake = provider_fake
    ids = make_entities(product_type, 12)
    run = start_run(workflow_for(product_type, provider), ids)
    wait_until(submitted(run.pk), "the batch to be submitted")
    wait_until(lambda: Run.objects.get(pk=run.pk).waiting == 12, "12 entities to wait")
    [sent] = fake.batches.submissions
    batch = AiBatch.objects.get(run=run)
    assert batch.provider_batch_id == sent.id and batch.status == AiBatchStatus.IN_PROGRESS
    assert len(sent.requests) == 12
    # Each request carries the schema, as the sync call would send it.
    body = sent.requests[0]["body" if provider == "openai" else "params"]
    if provider == "openai":
        assert body["response_format"]["json_schema"]["schema"]["required"] == ["title", "tags"]
    else:
        assert body["tools"][0]["input_schema"]["required"] == ["title", "tags"]
    assert Run.objects.get(pk=run.pk).status == "running"

    late = sent.requests[3]["custom_id"]
    fake.batches.expire = {late}
    fake.batches.finish()
    run = poll_until_ended(run.pk)  # sends the beat's task until the run ends

    assert (run.status, run.completed, run.failed, run.waiting) == ("completed", 12, 0, 0)
    for entity in Entity.objects.filter(pk__in=ids):
        assert entity.data["seo"] == ANSWER and entity.status == "published"
    assert len(fake.batches.submissions) == 1  # never submitted twice
    # The expired request was sent once more (live: few were left), nothing else was.
    assert len(fake.requests) == 1
    # 11 answers from the batch, 1 live; the expired request used none.
    assert (run.input_tokens, run.output_tokens) == (12 * 40, 12 * 12)
    batches = list(AiBatch.objects.filter(run=run).order_by("attempt"))
    assert [(b.attempt, b.live, b.status) for b in batches] == [
        (1, False, "ended"),
        (2, True, "ended"),
    ]


def test_cancelling_a_run_tells_the_provider_and_ends_the_waiting_entities(
    celery_worker, product_type, provider_fake
):
    provider, fake = provider_fake
    ids = make_entities(product_type, 5)
    run = start_run(workflow_for(product_type, provider), ids)
    wait_until(submitted(run.pk), "the batch to be submitted")
    [sent] = fake.batches.submissions

    run_cancel(run_id=run.pk)
    wait_until(lambda: sent.id in fake.batches.cancels, "the provider to be told")
    wait_until(
        lambda: AiBatch.objects.get(run=run).status == AiBatchStatus.CANCELLED,
        "the batch to end cancelled",
    )
    assert set(RunItem.objects.filter(run=run).values_list("status", flat=True)) == {"cancelled"}
    assert Run.objects.get(pk=run.pk).status == "cancelled"
    assert not Entity.objects.filter(pk__in=ids, data__has_key="seo").exists()
