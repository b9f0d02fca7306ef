import pytest

from entities.models import Entity
from jobs.models import RunItem
from tests.factories import make_entities, make_workflow, run_inline, start_run
from workflows.steps import registry


@pytest.fixture
def all_six_steps() -> list[dict]:
    """One step of every type, each with its documented example config."""
    return [{"type": step_type.type, "config": step_type.example} for step_type in registry]


@pytest.fixture
def run_steps(product_type):
    """Run `steps` over new entities (`data` for each) in this process; returns the items
    and the entities afterwards, in order."""

    def run(steps: list[dict], *datas: dict, **run_extra):
        workflow = make_workflow(product_type, steps)
        ids = make_entities(product_type, len(datas)) if datas else []
        for entity_id, data in zip(ids, datas, strict=True):
            Entity.objects.filter(pk=entity_id).update(data=data)
        run = start_run(workflow, ids, **run_extra)
        run_inline(run.pk)
        items = {item.entity_id: item for item in RunItem.objects.filter(run=run)}
        entities = Entity.objects.in_bulk(ids)
        return [items[i] for i in ids], [entities[i] for i in ids]

    return run
