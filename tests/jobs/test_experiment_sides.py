"""An experiment's side records what it would have changed as runs record changes: as JSON,
so `true` to `1` is a change, and two sides apart only by a value's type differ."""

from jobs.experiments.sides import differ, side_of
from workflows.steps.runtime import EntityState


def _side(after: dict) -> dict:
    state = EntityState(entity_id="ent_1", status="draft", data=after, committed=None)
    before = {"data": {"flag": True, "price": 1, "title": "Lamp"}, "status": "draft"}
    return side_of(state, before, [], 0.0)


def test_a_value_changed_only_in_its_type_is_a_change_and_sides_apart_by_it_differ():
    same = _side({"flag": True, "price": 1, "title": "Lamp"})
    retyped = _side({"flag": 1, "price": 1.0, "title": "Lamp"})
    assert same["changes"] == []
    assert [change["field"] for change in retyped["changes"]] == ["flag", "price"]
    assert differ(same, retyped)
    assert not differ(same, _side({"flag": True, "price": 1, "title": "Lamp"}))
