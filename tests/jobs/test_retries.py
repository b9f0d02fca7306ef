"""Retrying a run: a new run over what failed, of any size, the web holding no list of ids
past RUN_MAX_IDS."""

import pytest

from entities.models import Entity
from jobs.filter_runs import run_items_make
from jobs.models import Run, RunItem, RunLog
from jobs.retries import run_retry
from tests.factories import make_entities, make_workflow, run_inline, start_run

pytestmark = pytest.mark.django_db

PUBLISH = [{"type": "publish", "config": {}}]


def _failed_run(product_type, entities: int, failing: int):
    """An ended run of `entities` whose first `failing` entities (in id order) failed."""
    workflow = make_workflow(product_type, PUBLISH)
    ids = sorted(make_entities(product_type, entities))
    run = start_run(workflow, ids)
    run_inline(run.pk)
    Run.objects.filter(pk=run.pk).update(status="failed")
    RunItem.objects.filter(run=run, entity_id__in=ids[:failing]).update(status="failed")
    return workflow, run, ids[:failing]


def _retry(api, workflow, run):
    return api.post(f"/api/v1/workflows/{workflow.pk}/runs/{run.pk}/retry", {})


def _items(run_id) -> list[str]:
    return sorted(RunItem.objects.filter(run_id=run_id).values_list("entity_id", flat=True))


def test_a_retry_of_up_to_run_max_ids_is_made_at_once(api, product_type, settings):
    workflow, run, failed = _failed_run(product_type, 8, 5)
    settings.RUN_MAX_IDS = 5
    response = _retry(api, workflow, run)
    assert response.status_code == 202, response.content
    retry = Run.objects.get(pk=response.json()["runId"])
    assert (retry.total, retry.retry_of_id, retry.filter) == (5, run.pk, None)
    assert _items(retry.pk) == failed


def test_a_retry_of_more_than_run_max_ids_makes_its_items_in_batches(api, product_type, settings):
    """Past RUN_MAX_IDS the request stores the run `pending` with `total` null, as a run over
    a filter; its items are made in batches from the failed items (a failed entity deleted
    since is left out), and it runs to the end like any other."""
    workflow, run, failed = _failed_run(product_type, 20, 13)
    Run.objects.filter(pk=run.pk).update(callback_url="https://example.com/hook")
    settings.RUN_MAX_IDS, settings.RUN_ITEMS_BATCH_SIZE, settings.RUN_CHUNK_SIZE = 5, 3, 2
    Entity.objects.filter(pk=failed[4]).delete()
    response = _retry(api, workflow, run)
    assert response.status_code == 202, response.content
    shown = api.get(f"/api/v1/workflows/{workflow.pk}/runs/{response.json()['runId']}").json()
    assert (shown["status"], shown["progress"]["total"]) == ("pending", None)
    assert shown["trigger"] == {"type": "retry", "runId": run.pk}
    retry_id = shown["id"]
    stored = Run.objects.get(pk=retry_id)
    assert (stored.retry_of_id, stored.callback_url, stored.chunk_size) == (
        run.pk,
        "https://example.com/hook",
        2,
    )
    assert stored.created_by is not None  # the key's user, as a retry by ids records
    assert not RunItem.objects.filter(run_id=retry_id).exists()
    assert run_items_make(run_id=retry_id) == 12
    assert _items(retry_id) == sorted(set(failed) - {failed[4]})
    run_inline(retry_id)
    retry = Run.objects.get(pk=retry_id)
    assert (retry.status, retry.total, retry.completed) == ("completed", 12, 12)
    assert RunLog.objects.filter(run=retry, message__startswith=f"Retry of {run.pk}: 12 ").exists()


def test_a_large_retry_of_a_deleted_run_makes_nothing_and_ends(product_type, settings):
    """The run retried deleted while the retry's items are made (`retry_of` set null): no
    item is left to make, and the retry ends with what it has."""
    _, run, _ = _failed_run(product_type, 8, 6)
    settings.RUN_MAX_IDS = 5
    retry = run_retry(run_id=run.pk)
    run.delete()
    assert run_items_make(run_id=retry.pk) == 0
    retry.refresh_from_db()
    assert (retry.status, retry.total) == ("completed", 0)


def test_a_run_with_nothing_failed_is_a_409(api, product_type):
    workflow, run, _ = _failed_run(product_type, 3, 0)
    response = _retry(api, workflow, run)
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "nothing_to_retry"
