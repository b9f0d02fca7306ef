import pytest
from django.db import transaction

from entities.commits import ChangedSince, WorkingCopy, apply_changes, entities_commit
from entities.models import Entity
from entities.services import entity_update
from tests.factories import make_entities
from workflows.steps.runtime import EntityState

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


def test_a_working_copy_at_the_current_version_is_written_without_a_merge(product_type):
    [entity_id] = make_entities(product_type, 1)
    entity = Entity.objects.get(pk=entity_id)
    working = {**entity.data, "description": "generated"}
    copy = WorkingCopy(entity_id, entity.data, working, entity.version, product_type.schema)
    with transaction.atomic():
        assert entities_commit(copies=[copy], status="published") == {entity_id: 2}
    entity.refresh_from_db()
    assert (entity.data, entity.version, entity.status) == (working, 2, "published")
    assert entity.published_at is not None


def test_a_working_copy_of_an_entity_edited_meanwhile_is_merged(product_type):
    [entity_id] = make_entities(product_type, 1)
    entity = Entity.objects.get(pk=entity_id)
    copy = WorkingCopy(
        entity_id,
        entity.data,
        {**entity.data, "description": "generated"},
        entity.version,
        product_type.schema,
    )
    entity_update(entity_id=entity_id, data={"price": 42})  # version 2 now
    with transaction.atomic():
        assert entities_commit(copies=[copy]) == {entity_id: 3}
    entity.refresh_from_db()
    assert entity.data["price"] == 42 and entity.data["description"] == "generated"


def test_a_deleted_entity_cannot_be_committed(product_type):
    [entity_id] = make_entities(product_type, 1)
    entity = Entity.objects.get(pk=entity_id)
    copy = WorkingCopy(entity_id, entity.data, entity.data, entity.version, product_type.schema)
    entity.delete()
    with transaction.atomic():
        assert entities_commit(copies=[copy]) == {
            entity_id: "The entity was deleted during the run."
        }


@pytest.mark.parametrize(
    ("sizes", "refused"),
    [
        ([300], set()),
        ([400, 400, 400], set()),  # the batch together is over the limit, no copy is
        ([1100, 300, 300], {0}),
    ],
)
def test_working_copies_over_the_size_limit_are_refused_and_the_others_written(
    product_type, settings, sizes, refused
):
    settings.ENTITY_MAX_DATA_BYTES = 1024
    ids = make_entities(product_type, len(sizes))
    entities = {entity.pk: entity for entity in Entity.objects.filter(pk__in=ids)}
    copies = [
        WorkingCopy(
            entity_id,
            entities[entity_id].data,
            {**entities[entity_id].data, "description": "x" * size},
            entities[entity_id].version,
            product_type.schema,
        )
        for entity_id, size in zip(ids, sizes, strict=True)
    ]
    with transaction.atomic():
        results = entities_commit(copies=copies)
    for index, entity_id in enumerate(ids):
        entity = Entity.objects.get(pk=entity_id)
        if index in refused:
            assert "the limit is 1024" in results[entity_id]
            assert entity.version == 1 and "description" not in entity.data
        else:
            assert results[entity_id] == entity.version == 2
            assert entity.data["description"] == "x" * sizes[index]


def _copies_setting(product_type, ids: list[str], key: str, values: list) -> list[WorkingCopy]:
    """A working copy of each entity, as read, with `key` set to its value of `values`."""
    entities = {entity.pk: entity for entity in Entity.objects.filter(pk__in=ids)}
    return [
        WorkingCopy(
            entity_id,
            entities[entity_id].data,
            {**entities[entity_id].data, key: value},
            entities[entity_id].version,
            product_type.schema,
        )
        for entity_id, value in zip(ids, values, strict=True)
    ]


def test_a_working_copy_with_text_the_database_cannot_store_fails_alone(product_type):
    """A step may make what no request can bring (a NUL from a model's answer): the commit
    refuses that entity, naming the field, instead of failing the chunk's statement."""
    ids = make_entities(product_type, 2)
    copies = _copies_setting(product_type, ids, "note", ["a\u0000b", "fine"])
    with transaction.atomic():
        results = entities_commit(copies=copies, status="published")
    assert "data.note: Contains a NUL character" in results[ids[0]]
    assert results[ids[1]] == 2
    assert Entity.objects.get(pk=ids[0]).version == 1


def test_a_working_copy_holding_a_number_that_is_not_finite_fails_that_entity_alone(
    product_type,
):
    """No request can bring one (the parser refuses it), but a step could: PostgreSQL's
    jsonb refuses NaN and infinity, failing the chunk's statement; the commit refuses that
    entity, naming the field."""
    ids = make_entities(product_type, 3)
    copies = _copies_setting(product_type, ids, "score", [float("nan"), [float("-inf")], 0.5])
    with transaction.atomic():
        results = entities_commit(copies=copies, status="published")
    assert "data.score: Is not a finite number" in results[ids[0]]
    assert "data.score[0]: Is not a finite number" in results[ids[1]]
    assert results[ids[2]] == 2
    assert Entity.objects.get(pk=ids[0]).version == 1


def test_a_failure_message_is_kept_as_text_the_database_stores():
    state = EntityState(entity_id="ent_1", status="draft", data={}, committed={})
    state.fail("step", "model said: a\u0000b\ud800c")
    assert state.error == "model said: ab?c"
    assert state.log[-1][2] == state.error


def test_a_change_of_a_value_s_json_type_is_merged_onto_an_entity_edited_meanwhile(
    product_type,
):
    """`True == 1` in Python: the merge compares JSON values, or it would drop the run's
    change of `flag` from `true` to `1` as no change."""
    assert apply_changes({"flag": True, "x": 2}, {"flag": True}, {"flag": 1}) == {
        "flag": 1,
        "x": 2,
    }
    [entity_id] = make_entities(product_type, 1, flag=True)
    entity = Entity.objects.get(pk=entity_id)
    copy = WorkingCopy(
        entity_id, entity.data, {**entity.data, "flag": 1}, entity.version, product_type.schema
    )
    entity_update(entity_id=entity_id, data={"price": 42})  # version 2 now
    with transaction.atomic():
        assert entities_commit(copies=[copy]) == {entity_id: 3}
    entity.refresh_from_db()
    assert entity.data["price"] == 42 and entity.data["flag"] == 1
    assert entity.data["flag"] is not True


def test_a_commit_at_version_leaves_an_entity_edited_meanwhile_as_it_is(product_type):
    """A revert's commit: its copy holds values from before the run, which merged onto a
    later edit would write over it."""
    [entity_id, other] = make_entities(product_type, 2)
    copies = []
    for entity in Entity.objects.filter(pk__in=[entity_id, other]).order_by("pk"):
        copies.append(
            WorkingCopy(
                entity.pk,
                entity.data,
                {**entity.data, "title": "reverted"},
                entity.version,
                product_type.schema,
            )
        )
    entity_update(entity_id=entity_id, data={"title": "edited"})  # version 2 now
    with transaction.atomic():
        results = entities_commit(copies=copies, at_version=True)
    assert results == {entity_id: ChangedSince(2), other: 2}
    assert Entity.objects.get(pk=entity_id).data["title"] == "edited"
    assert Entity.objects.get(pk=other).data["title"] == "reverted"
