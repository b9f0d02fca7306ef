"""Reverts run in this process (`run_inline`): what a revert undoes and what it skips.
The API and real workers: `test_worker_reverts.py`."""

import datetime

import pytest
from django.utils import timezone

from entities.models import Entity, EntityRevision
from entities.revisions import revisions_prune
from jobs.filter_runs import run_items_make
from jobs.models import ItemStatus, RunItem
from jobs.reverts import run_revert
from tests.factories import make_entities, make_workflow, run_inline, start_run

pytestmark = pytest.mark.django_db

PUBLISH_BETWEEN = [
    {
        "id": "a",
        "type": "transform",
        "config": {"operations": [{"op": "set", "field": "summary", "value": "first"}]},
    },
    {"id": "pub", "type": "publish", "config": {}},
    {
        "id": "b",
        "type": "transform",
        "config": {"operations": [{"op": "set", "field": "summary", "value": "second"}]},
    },
]


def _revert(run, **options) -> RunItem:
    revert = run_revert(run_id=run.pk, **options)
    run_items_make(run_id=revert.pk)
    run_inline(revert.pk)
    [item] = RunItem.objects.filter(run=revert)
    return item


def test_a_run_whose_entity_waited_between_its_commits_is_reverted_whole_after_retention(
    product_type, settings
):
    """The run's publish (v2) is past the revisions' retention, its final commit (v3) not:
    retention keeps v2 with v3, so the revert gives back the draft without a summary."""
    settings.ENTITY_REVISIONS_KEEP_DAYS = 30
    [entity_id] = make_entities(product_type, 1)
    run = start_run(make_workflow(product_type, PUBLISH_BETWEEN), [entity_id])
    run_inline(run.pk)
    now = timezone.now()
    EntityRevision.objects.filter(entity_id=entity_id, version__lte=2).update(
        created_at=now - datetime.timedelta(days=31)
    )
    EntityRevision.objects.filter(entity_id=entity_id, version=3).update(
        created_at=now - datetime.timedelta(days=29)
    )
    revisions_prune(now=now, limit=100)
    item = _revert(run)
    entity = Entity.objects.get(pk=entity_id)
    assert item.status == ItemStatus.COMPLETED
    assert (entity.status, entity.version) == ("draft", 4)
    assert "summary" not in entity.data
