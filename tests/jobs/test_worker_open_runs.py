"""One entity, one open run per workflow, with real Celery workers, PostgreSQL and Redis: an
entity waiting for review in one run is left out of a new run of the same workflow (its
item `skipped`, naming that run), whatever starts the new run, and taken again once that
run has ended."""

import pytest

from jobs.models import Review, Run, RunItem
from jobs.services import run_start
from tests.factories import make_entities, make_workflow, start_run
from tests.workers import all_waiting, wait_for_run, wait_until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]

REVIEW = {"id": "check", "type": "review", "config": {"instructions": "Check {{ entity.title }}"}}
TIDY = {
    "id": "tidy",
    "type": "transform",
    "config": {"operations": [{"op": "set", "field": "slug", "value": "{{ entity.title }}"}]},
}
PUBLISH = {"id": "pub", "type": "publish", "config": {}}


def items(run_id: str) -> dict[str, tuple[str, str]]:
    return {
        entity_id: (status, error)
        for entity_id, status, error in RunItem.objects.filter(run_id=run_id).values_list(
            "entity_id", "status", "error"
        )
    }


def test_an_entity_waiting_for_review_is_left_out_of_a_new_run_of_its_workflow(
    celery_worker, api, product_type
):
    ids = make_entities(product_type, 6)
    reviewed = make_workflow(product_type, [REVIEW, PUBLISH])
    first = start_run(reviewed, ids[:1])
    wait_until(all_waiting(first.pk, 1), "the first entity to wait for review")

    # A run over a filter of the same workflow: the waiting entity is skipped, naming the
    # run that holds it; the others run (and wait for their own reviews).
    response = api.post(f"/api/v1/workflows/{reviewed.pk}/run", {"filter": {}})
    assert response.status_code == 202, response.json()
    second = response.json()["runId"]
    wait_until(all_waiting(second, 5), "the other five to wait in the second run")
    made = items(second)
    assert made[ids[0]] == (
        "skipped",
        f"Left out: the entity is in run {first.pk} of this workflow, still open.",
    )
    assert {made[i][0] for i in ids[1:]} == {"waiting"}
    run = Run.objects.get(pk=second)
    # skipped counts as done
    assert (run.total, run.completed, run.skipped, run.waiting) == (6, 1, 1, 5)
    assert Review.objects.filter(entity_id=ids[0], status="pending").count() == 1

    # A run by ids: all three are held (by the first run and the second).
    by_ids = start_run(reviewed, ids[:3])
    assert {status for status, _ in items(by_ids.pk).values()} == {"skipped"}
    assert wait_for_run(by_ids.pk).status == "completed"

    # Another workflow is not affected: it takes every entity.
    other = wait_for_run(start_run(make_workflow(product_type, [TIDY]), ids).pk)
    assert (other.status, other.completed) == ("completed", 6)
    assert {status for status, _ in items(other.pk).values()} == {"completed"}

    # Once the first run has ended, a new run of the workflow takes its entity.
    review = Review.objects.get(run_id=first.pk)
    assert api.post(f"/api/v1/reviews/{review.pk}/approve").status_code == 200
    assert wait_for_run(first.pk).status == "completed"
    third = run_start(workflow_id=reviewed.pk, entity_ids=ids[:2])
    wait_until(all_waiting(third.pk, 1), "the first entity to wait again")
    assert items(third.pk) == {
        ids[0]: ("waiting", ""),
        ids[1]: (
            "skipped",
            f"Left out: the entity is in run {second} of this workflow, still open.",
        ),
    }
