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


def _rows_read(sql: str, params) -> tuple[int, int]:
    """(rows the plan read from the items' table, rows its functions produced), all loops,
    from EXPLAIN ANALYZE of the statement (rolled back)."""
    from django.db import connection, transaction

    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (ANALYZE, FORMAT JSON) {sql}", params)
        plan = cursor.fetchone()[0]
        transaction.set_rollback(True)
    plan = json.loads(plan) if isinstance(plan, str) else plan
    table = produced = 0
    nodes = [plan[0]["Plan"]]
    while nodes:
        node = nodes.pop()
        nodes += node.get("Plans", [])
        if node["Node Type"] == "ModifyTable":
            continue
        rows = node["Actual Rows"] * node["Actual Loops"]
        if node.get("Relation Name") == "jobs_runitem":  # read, whether kept or filtered out
            table += rows + node.get("Rows Removed by Filter", 0) * node["Actual Loops"]
        elif node["Node Type"] == "Function Scan":
            produced += rows
    return table, produced


def test_a_batch_is_joined_by_key_even_when_statistics_say_its_condition_is_rare(product_type):
    """After an ANALYZE taken while no item was `running`, a chunk's UPDATE of its running
    items was planned on a guess of 100 rows from the row set: a scan of the table, the row
    set read again for each item (a million rows for 1,000 items). The row set's count is
    now known to the planner: each row is one lookup by key."""
    from django.db import connection

    from jobs.models import RunItem
    from tests.factories import make_workflow, start_run

    publish = [{"type": "publish", "config": {}}]
    run = start_run(make_workflow(product_type, publish), make_entities(product_type, 1))
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO jobs_runitem (run_id, entity_id, chunk, status, step_id, next_step, "
            "error, attempts, usage) SELECT %s, 'ent_' || n, n / 1000, 'completed', '', 0, '', "
            "1, '{}' FROM generate_series(1, 6000) AS n",
            [run.pk],
        )
        cursor.execute("ANALYZE jobs_runitem")  # no item is running
    running = list(RunItem.objects.filter(run=run, chunk=2).values_list("pk", flat=True))
    RunItem.objects.filter(pk__in=running).update(status="running")
    statements = []

    def capture(execute, sql, params, many, context):
        statements.append((sql, params))
        return execute(sql, params, many, context)

    with connection.execute_wrapper(capture):
        written = rows_update(
            RunItem,
            ({"id": pk, "attempts": 1, "status": "completed"} for pk in running),
            match=["id", "attempts"],
            copy=["status"],
            where={"status": "running"},
            returning=["id"],
        )
    assert sorted(pk for (pk,) in written) == sorted(running)
    RunItem.objects.filter(pk__in=running).update(status="running")
    [(sql, params)] = statements
    table, produced = _rows_read(sql, params)
    assert table == len(running)  # one lookup by key per row, not a scan of 6,000
    assert produced <= 2 * len(running)  # the row set read once (its count and its rows)


def test_the_any_lookup_and_pks_update_match_awkward_ids_exactly_and_by_key(product_type):
    """`pk__any` and `pks_update` send their values as one array literal written in Python
    (the driver's quoting of a list cost 2.5 ms per 1,000 strings): a value with commas,
    braces, quotes, backslashes or the word NULL is one value and matches its row alone, an
    id longer than the column is not cut down to one that matches, integers are compared as
    integers, and the rows are found through the primary key's index."""
    from django.db import connection

    from config.bulk import pks_update
    from jobs.models import RunItem
    from tests.factories import make_workflow, start_run

    odd = ["a,b", "{c}", 'd"e', "f\\g", '\\"', "NULL", "", "h'i", " j ", "é ✓", "x" * 40]
    for entity_id, new_id in zip(make_entities(product_type, len(odd)), odd, strict=True):
        Entity.objects.filter(pk=entity_id).update(id=new_id)
    for value in odd:
        assert list(Entity.objects.filter(pk__any=[value]).values_list("pk", flat=True)) == [value]
    assert set(Entity.objects.filter(pk__any=odd).values_list("pk", flat=True)) == set(odd)
    assert not Entity.objects.filter(pk__any=["x" * 40 + "tail", "a", "b", "c"]).exists()

    ids = make_entities(product_type, 2)
    publish = [{"type": "publish", "config": {}}]
    run = start_run(make_workflow(product_type, publish), ids)
    items = sorted(RunItem.objects.filter(run=run).values_list("pk", flat=True))
    written = pks_update(RunItem, [*items, 2**40], assign={"chunk": 7}, returning=["id"])
    assert sorted(pk for (pk,) in written) == items
    assert RunItem.objects.filter(pk__any=items, chunk=7).count() == 2

    query = Entity.objects.filter(pk__any=ids).values("pk")
    sql, params = query.query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")  # the plan, not the table's size
        cursor.execute(f"EXPLAIN (FORMAT JSON) {sql}", params)
        plan = cursor.fetchone()[0]
    plan = json.loads(plan) if isinstance(plan, str) else plan
    nodes, kinds = [plan[0]["Plan"]], []
    while nodes:
        node = nodes.pop()
        nodes += node.get("Plans", [])
        kinds.append(node["Node Type"])
    assert "Seq Scan" not in kinds and any("Index" in kind for kind in kinds), kinds


def test_a_time_assigned_not_before_another_column_takes_the_later_of_the_two(product_type):
    """`NotBefore(field, value)`: `value`, or the row's `field` where that is later (a time
    stamped by a machine whose clock is behind the one that stamped `field`), in
    `rows_update` and `pks_update` alike."""
    from config.bulk import NotBefore, pks_update

    early, late, unset = _entities(product_type, 3)
    now = timezone.now()
    Entity.objects.filter(pk=late.pk).update(created_at=now + datetime.timedelta(seconds=2))
    Entity.objects.filter(pk=early.pk).update(created_at=now - datetime.timedelta(seconds=2))
    Entity.objects.filter(pk=unset.pk).update(published_at=None)
    rows_update(
        Entity,
        [{"id": early.pk}, {"id": late.pk}],
        match=["id"],
        assign={"updated_at": NotBefore("created_at", now)},
    )
    pks_update(Entity, [unset.pk], assign={"updated_at": NotBefore("published_at", now)})
    written = dict(Entity.objects.values_list("pk", "updated_at"))
    assert written[early.pk] == now
    assert written[late.pk] == now + datetime.timedelta(seconds=2)
    assert written[unset.pk] == now  # the other column null: the value
