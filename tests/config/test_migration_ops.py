"""Indexes added to tables that exist are built while the tables are written
(`config.migration_ops.AddIndexOnline`), and an interrupted build is finished by the next
`migrate`."""

import pytest
from django.db import NotSupportedError, connection, models
from django.db.migrations import AddIndex, CreateModel
from django.db.migrations.loader import MigrationLoader
from django.test.utils import CaptureQueriesContext

from config.migration_ops import AddIndexOnline

OUR_APPS = {"entities", "workflows", "jobs"}

# Released before AddIndexOnline, each beside operations that need a transaction: their
# indexes were built as a plain CREATE INDEX (a new column's, or a table small then).
LOCKED_BEFORE = {
    ("jobs", "0004_cheaper_item_writes"),
    ("jobs", "0033_run_callback_due"),
}


def _migrations():
    loader = MigrationLoader(None, ignore_no_migrations=True)
    return [
        migration
        for (app, _name), migration in sorted(loader.disk_migrations.items())
        if app in OUR_APPS
    ]


def test_an_index_on_a_table_made_before_is_added_online():
    found = 0
    for migration in _migrations():
        created = {op.name.lower() for op in migration.operations if isinstance(op, CreateModel)}
        key = (migration.app_label, migration.name)
        for op in migration.operations:
            if type(op) is AddIndex and op.model_name.lower() not in created:
                assert key in LOCKED_BEFORE, (
                    f"{key}: {op.index.name} locks {op.model_name}'s writes while it is built;"
                    " use config.migration_ops.AddIndexOnline in a migration of its own"
                )
            if isinstance(op, AddIndexOnline):
                found += 1
                assert migration.atomic is False, key
                assert all(isinstance(other, AddIndexOnline) for other in migration.operations), (
                    f"{key}: nothing else may run outside a transaction"
                )
    assert found >= 3  # schedule_fire_newest, event_key, review_run_pending


def _states(op: AddIndexOnline):
    before = MigrationLoader(connection).project_state()
    after = before.clone()
    op.state_forwards("jobs", after)
    return before, after


def _index_valid(name: str) -> bool | None:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT indisvalid FROM pg_index JOIN pg_class ON pg_class.oid = indexrelid"
            " WHERE relname = %s",
            [name],
        )
        row = cursor.fetchone()
    return None if row is None else row[0]


@pytest.mark.django_db(transaction=True)
def test_the_index_is_built_concurrently_and_an_interrupted_build_is_finished():
    name = "test_event_online"
    op = AddIndexOnline("event", models.Index(fields=["name", "-id"], name=name))
    before, after = _states(op)
    # An interrupted concurrent build left the index behind, invalid.
    with connection.cursor() as cursor:
        cursor.execute(f"CREATE INDEX {name} ON jobs_event (name, id DESC)")
        cursor.execute(
            "UPDATE pg_index SET indisvalid = false WHERE indexrelid = %s::regclass", [name]
        )
    assert _index_valid(name) is False
    try:
        with (
            CaptureQueriesContext(connection) as queries,
            connection.schema_editor(atomic=False) as editor,
        ):
            op.database_forwards("jobs", editor, before, after)
        statements = [query["sql"] for query in queries.captured_queries]
        assert any(sql.startswith(f'DROP INDEX CONCURRENTLY "{name}"') for sql in statements)
        assert any(sql.startswith(f'CREATE INDEX CONCURRENTLY "{name}"') for sql in statements)
        assert _index_valid(name) is True
        # Unapplied, it is dropped (concurrently, too).
        with connection.schema_editor(atomic=False) as editor:
            op.database_backwards("jobs", editor, after, before)
        assert _index_valid(name) is None
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f"DROP INDEX IF EXISTS {name}")


@pytest.mark.django_db
def test_inside_a_transaction_the_operation_refuses_to_run():
    op = AddIndexOnline("event", models.Index(fields=["name"], name="test_event_refused"))
    before, after = _states(op)
    with (
        pytest.raises(NotSupportedError, match="cannot be executed inside a transaction"),
        connection.schema_editor() as editor,
    ):
        op.database_forwards("jobs", editor, before, after)
