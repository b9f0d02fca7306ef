"""An entity's label for a person: the first naming field holding text, by a fixed rule (the
contract fixes an entity type's fields, so there is no per-type setting)."""

import pytest

from entities.labels import entity_label


@pytest.mark.parametrize(
    ("data", "label"),
    [
        ({"title": "Oak desk", "name": "desk-1", "sku": "D1"}, "Oak desk"),
        ({"title": "  ", "name": "desk-1"}, "desk-1"),
        ({"title": 3, "sku": "SKU-9"}, "SKU-9"),
        ({"price": 3}, ""),
        (None, ""),
    ],
)
def test_the_label_is_the_first_naming_field_holding_text(data, label):
    assert entity_label(data) == label
