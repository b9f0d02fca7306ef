"""`rows_update`, the one batched UPDATE: every kind of value reaches the database as the
ORM would have written it, whether a batch is encoded whole or has JSON text spliced in."""

import datetime
import json

import pytest
from django.utils import timezone

from config.bulk import JSONText, rows_update
from entities.models import Entity
from tests.factories import make_entities

pytestmark = pytest.mark.django_db

AWKWARD = ['quote " and \\ backslash', "unicode é ✓ 𝄞", "", "line\nbreak", "</script>"]


def _entities(product_type, n):
    return list(Entity.objects.filter(pk__in=make_entities(product_type, n)).order_by("pk"))


@pytest.mark.parametrize("spliced", [False, True])
def test_every_kind_of_value_is_written_as_the_orm_would(product_type, spliced):
    entities = _entities(product_type, len(AWKWARD))
    when = timezone.now() - datetime.timedelta(days=1)
    rows = []
    for index, (entity, text) in enumerate(zip(entities, AWKWARD, strict=True)):
        data = {"title": text, "n": index, "ok": index % 2 == 0, "none": None, "f": 1.5}
        rows.append(
            {
                "id": entity.pk,
                "version": entity.version,
                "data": JSONText(json.dumps(data)) if spliced else data,
                "status": "published" if index % 2 else "draft",
                "published_at": when if index % 2 else None,
            }
        )
    written = rows_update(
        Entity,
        rows,
        match=["id", "version"],
        copy=["data", "status", "published_at"],
        increment=["version"],
        assign={"updated_at": when},
        returning=["id", "version"],
        batch_size=2,  # several batches
    )
    assert sorted(written) == sorted((e.pk, e.version + 1) for e in entities)
    for row, entity in zip(
        rows, Entity.objects.filter(pk__in=[r["id"] for r in rows]).order_by("pk"), strict=True
    ):
        expected = json.loads(row["data"]) if spliced else row["data"]
        assert entity.data == expected
        assert entity.status == row["status"]
        assert entity.published_at == row["published_at"]
        assert entity.updated_at == when


def test_rows_whose_match_no_longer_holds_are_not_written(product_type):
    [entity] = _entities(product_type, 1)
    written = rows_update(
        Entity,
        [{"id": entity.pk, "version": entity.version + 5, "status": "published"}],
        match=["id", "version"],
        copy=["status"],
        returning=["id"],
    )
    assert written == []
    entity.refresh_from_db()
    assert entity.status != "published"
