"""A real worker given entities whose templates and patterns are over their bounds fails
those entities, clearly, and goes on with the others and with the next run."""

import pytest

from entities.models import Entity
from jobs.models import RunItem
from tests.factories import make_entities, make_workflow, start_run
from tests.template_walks import WALKS, looped
from tests.workers import wait_for_run

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]

EVIL_TEXT = "a" * 40 + "!"


def test_a_worker_fails_over_bound_entities_and_moves_on(celery_worker, product_type):
    nested = (
        "{% if entity.title == 'loops' %}{% for i in entity.tags %}{% for j in entity.tags %}"
        "{% endfor %}{% endfor %}{% endif %}{% if entity.title == 'big' %}{{ 'x' * 10**9 }}"
        "{% endif %}ok"
    )
    workflow = make_workflow(
        product_type,
        [
            {
                "type": "condition",
                "config": {
                    "if": {"field": "note", "operator": "matches", "value": "^(a|a)+$"},
                    "else": "fail",
                },
            },
            {
                "type": "transform",
                "config": {"operations": [{"op": "set", "field": "out", "value": nested}]},
            },
        ],
    )
    ids = make_entities(product_type, 4)
    datas = [
        {"title": "loops", "note": "aaaa", "tags": list(range(5000))},
        {"title": "big", "note": "aaaa"},
        {"title": "regex", "note": EVIL_TEXT},
        {"title": "fine", "note": "aaaa"},
    ]
    for entity_id, data in zip(ids, datas, strict=True):
        Entity.objects.filter(pk=entity_id).update(data=data)
    run = wait_for_run(start_run(workflow, ids).pk)
    items = {item.entity_id: item for item in RunItem.objects.filter(run=run)}
    loops, big, regex, fine = (items[i] for i in ids)
    assert loops.status == "failed" and loops.error.startswith("Template did too much work")
    assert big.status == "failed" and big.error.startswith("Template value too large")
    assert regex.status == "failed" and regex.error.startswith("Condition not met")
    assert fine.status == "completed"
    assert Entity.objects.get(pk=ids[3]).data["out"] == "ok"
    # The worker is free: the next run is not left pending.
    [other] = make_entities(product_type, 1)
    Entity.objects.filter(pk=other).update(data={"title": "next", "note": "a"})
    assert wait_for_run(start_run(workflow, [other]).pk).status == "completed"


def test_a_worker_fails_each_walking_template_at_once_and_moves_on(celery_worker, product_type):
    """Every walk of a large value over the work bound fails its entity with the bound named;
    the chunk is not held, so nothing needs cancelling and the next run goes through."""
    branches = "".join(
        "{% if entity.n == " + str(n) + " %}" + looped(expression) + "{% endif %}"
        for n, expression in enumerate(WALKS)
    )
    workflow = make_workflow(
        product_type,
        [
            {
                "type": "transform",
                "config": {"operations": [{"op": "set", "field": "out", "value": branches + "ok"}]},
            }
        ],
    )
    ids = make_entities(product_type, len(WALKS) + 1)
    for n, entity_id in enumerate(ids):
        Entity.objects.filter(pk=entity_id).update(data={"title": "t", "n": n})
    run = wait_for_run(start_run(workflow, ids).pk)
    items = {item.entity_id: item for item in RunItem.objects.filter(run=run)}
    *walking, fine = (items[i] for i in ids)
    for item in walking:
        assert item.status == "failed"
        assert item.error.startswith("Template did too much work: more than 50,000 steps")
    assert fine.status == "completed" and Entity.objects.get(pk=ids[-1]).data["out"] == "ok"
    [other] = make_entities(product_type, 1)
    Entity.objects.filter(pk=other).update(data={"title": "next", "n": -1})
    assert wait_for_run(start_run(workflow, [other]).pk).status == "completed"
