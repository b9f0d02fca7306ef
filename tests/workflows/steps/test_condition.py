import pytest

from workflows.steps.condition import evaluate

pytestmark = pytest.mark.django_db

SET_FLAG = {
    "type": "transform",
    "config": {"operations": [{"op": "set", "field": "flag", "value": True}]},
}


def _condition(predicate, **extra):
    return {"type": "condition", "config": {"if": predicate, **extra}}


def test_true_condition_goes_on(run_steps):
    [item], [entity] = run_steps(
        [_condition({"field": "price", "operator": "gt", "value": 1}), SET_FLAG],
        {"title": "a", "price": 2},
    )
    assert item.status == "completed" and entity.data["flag"] is True


def test_false_condition_stops_the_entity_as_skipped_and_counts_it_completed(run_steps):
    items, entities = run_steps(
        [_condition({"field": "price", "operator": "gt", "value": 1}), SET_FLAG],
        {"title": "a", "price": 0},
        {"title": "b", "price": 5},
    )
    assert [i.status for i in items] == ["skipped", "completed"]
    assert items[0].step_id == "condition_1"
    assert "flag" not in entities[0].data and entities[1].data["flag"] is True
    run = items[0].run
    assert (run.completed, run.failed, run.status) == (2, 0, "completed")


def test_else_fail_fails_with_the_condition_named(run_steps):
    [item], _ = run_steps(
        [_condition({"field": "price", "operator": "gt", "value": 1}, **{"else": "fail"})],
        {"title": "a", "price": 0},
    )
    assert item.status == "failed"
    assert item.error == "Condition not met: price gt 1."
    assert item.run.status == "failed"


def test_else_skip_skips_the_next_steps(run_steps):
    set_other = {
        "type": "transform",
        "config": {"operations": [{"op": "set", "field": "other", "value": 1}]},
    }
    [item], [entity] = run_steps(
        [
            _condition(
                {"field": "price", "operator": "gt", "value": 1}, **{"else": "skip", "skipCount": 1}
            ),
            SET_FLAG,
            set_other,
        ],
        {"title": "a", "price": 0},
    )
    assert item.status == "completed"
    assert "flag" not in entity.data and entity.data["other"] == 1


@pytest.mark.parametrize(
    ("predicate", "expected"),
    [
        ({"field": "a", "operator": "eq", "value": 1}, True),
        ({"field": "a", "operator": "ne", "value": 1}, False),
        ({"field": "a", "operator": "gte", "value": 1}, True),
        ({"field": "a", "operator": "lt", "value": "x"}, False),
        ({"field": "s", "operator": "lte", "value": "b"}, True),
        ({"field": "a", "operator": "in", "value": [1, 2]}, True),
        ({"field": "a", "operator": "notIn", "value": [1, 2]}, False),
        ({"field": "s", "operator": "contains", "value": "bc"}, True),
        ({"field": "tags", "operator": "contains", "value": "x"}, True),
        ({"field": "nested.b", "operator": "exists"}, True),
        ({"field": "nested.c", "operator": "exists"}, False),
        ({"field": "none", "operator": "notExists"}, True),
        ({"field": "s", "operator": "matches", "value": "^a.c$"}, True),
        ({"field": "missing", "operator": "gt", "value": 0}, False),
        (
            {
                "all": [
                    {"field": "a", "operator": "eq", "value": 1},
                    {
                        "any": [
                            {"field": "s", "operator": "eq", "value": "no"},
                            {"field": "tags", "operator": "contains", "value": "x"},
                        ]
                    },
                ]
            },
            True,
        ),
    ],
)
def test_operators(predicate, expected):
    data = {"a": 1, "s": "abc", "tags": ["x"], "nested": {"b": 0}, "none": None}
    assert evaluate(predicate, data) is expected
