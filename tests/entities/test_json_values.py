import json

import pytest

from entities.json_values import json_equal


@pytest.mark.parametrize(
    ("a", "b"),
    [
        (True, 1),
        (1, 1.0),
        (False, 0),
        (0, 0.0),
        ({"flag": True}, {"flag": 1}),
        ([1, 2], [1, 2.0]),
        ({"seo": {"tags": [{"n": 1}]}}, {"seo": {"tags": [{"n": True}]}}),
        (None, 0),
        ("1", 1),
    ],
)
def test_values_equal_to_python_but_of_another_json_type_differ(a, b):
    assert not json_equal(a, b)
    assert not json_equal(b, a)


@pytest.mark.parametrize(
    "value",
    [True, 1, 1.5, "Lamp", None, [], {}, [1, "a", None], {"seo": {"tags": [1, 2.5, True]}}],
)
def test_a_json_value_equals_its_copy(value):
    assert json_equal(value, json.loads(json.dumps(value)))


def test_keys_in_another_order_are_the_same_object():
    assert json_equal({"a": 1, "b": [True]}, {"b": [True], "a": 1})
    assert not json_equal({"a": 1, "b": [True]}, {"b": [1], "a": 1})


def test_unequal_values_differ():
    assert not json_equal({"a": 1}, {"a": 2})
    assert not json_equal([1, 2], [1])
    assert not json_equal("a", "b")


def test_as_jsonb_gives_a_value_as_jsonb_gives_it_back():
    from entities.json_values import as_jsonb

    value = {"a": [1e16, 1.0, 1500.0, 1.5e-7, True, 3], "b": {"c": 1.2345e20}}
    assert as_jsonb(value) == {
        "a": [10**16, 1.0, 1500.0, 1.5e-7, True, 3],
        "b": {"c": 123450000000000000000},
    }
    assert type(as_jsonb(1e16)) is int and type(as_jsonb(1.0)) is float
