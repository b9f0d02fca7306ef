"""What the API tests share: a world with something of every kind to read and write."""

import pytest

from jobs.experiments.services import experiment_start
from tests.factories import make_entities, make_workflow, run_inline, start_run

FAILS_PRICEY = [
    {"id": "check", "type": "validate", "config": {"rules": [{"field": "price", "maximum": 1}]}},
    {"id": "pub", "type": "publish", "config": {}},
]


@pytest.fixture
def world(product_type):
    ids = make_entities(product_type, 3)
    workflow = make_workflow(product_type, FAILS_PRICEY)
    finished = start_run(workflow, ids)
    run_inline(finished.pk)  # prices 0..2: one fails, so there is something to retry
    pending = start_run(workflow, ids[:1])
    reviewed = make_workflow(
        product_type, [{"id": "check", "type": "review", "config": {"instructions": "Ok?"}}]
    )
    waiting = start_run(reviewed, ids)
    run_inline(waiting.pk)
    version = workflow.versions.get()
    experiment = experiment_start(  # a human scorer's blind queue to open
        workflow=workflow,
        baseline=version,
        candidate=version,
        scorers=[{"type": "human", "name": "people"}],
        entity_ids=ids,
    )
    return {
        "experiment": experiment,
        "reviews": list(waiting.reviews.order_by("pk").values_list("pk", flat=True)),
        "type": product_type,
        "ids": ids,
        "workflow": workflow,
        "finished": finished,
        "pending": pending,
    }


@pytest.fixture
def document(api):
    """The served OpenAPI document."""
    response = api.get("/api/v1/schema?format=json")
    assert response.status_code == 200
    return response.json()
