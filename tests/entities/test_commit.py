import pytest
from django.db import transaction

from entities.models import Entity
from entities.services import WorkingCopy, apply_changes, entities_commit, entity_update
from tests.factories import make_entities

pytestmark = pytest.mark.django_db


def test_apply_changes_writes_only_what_the_run_changed():
    base = {"a": 1, "b": 2, "gone": 0}
    working = {"a": 10, "b": 2, "new": 3}
    current = {"a": 1, "b": 20, "gone": 0, "edited": "by the API"}
    assert apply_changes(current, base, working) == {
        "a": 10,
        "b": 20,
        "new": 3,
        "edited": "by the API",
    }


def test_an_api_edit_made_while_a_run_works_is_not_lost(product_type):
    [entity_id] = make_entities(product_type, 1)
    base = Entity.objects.get(pk=entity_id).data  # what the run read
    working = {**base, "description": "generated"}
    entity_update(entity_id=entity_id, data={"price": 42})  # meanwhile, through the API
    with transaction.atomic():
        [version] = entities_commit(copies=[WorkingCopy(entity_id, base, working)]).values()
    entity = Entity.objects.get(pk=entity_id)
    assert entity.data["price"] == 42
    assert entity.data["description"] == "generated"
    assert entity.version == version == 3
