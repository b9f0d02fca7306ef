"""Migration operations that keep a running deployment writing while they run.

`AddIndexOnline`: an index added to a table that already exists (runs, reviews, events,
entities: millions of rows in a deployment that grew) is built with PostgreSQL's `CREATE
INDEX CONCURRENTLY`, which lets the workers and the API go on writing the table while it is
built; a plain `CREATE INDEX` blocks every write to the table for the whole build. Django's
`AddIndexConcurrently` is PostgreSQL's alone; this one is a plain `AddIndex` on any other
database (SQLite, the demo's), where nothing else writes during `migrate`.

A concurrent build that was interrupted (the `migrate` killed, a deadlock) leaves an
invalid index of that name behind, which PostgreSQL keeps up to date but never reads; the
operation drops it first, so running `migrate` again finishes the job instead of failing on
"relation already exists".

Its migration must say `atomic = False` (PostgreSQL builds concurrently only outside a
transaction) and hold nothing else, so that no other operation runs outside a transaction;
`tests/test_migrations.py` holds every migration to it.
"""

from django.contrib.postgres.operations import AddIndexConcurrently
from django.db.migrations import AddIndex


class AddIndexOnline(AddIndexConcurrently):
    def describe(self):
        return f"Create index {self.index.name} on {self.model_name}, writes going on"

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor != "postgresql":
            return AddIndex.database_forwards(self, app_label, schema_editor, from_state, to_state)
        self._ensure_not_in_transaction(schema_editor)
        with schema_editor.connection.cursor() as cursor:
            cursor.execute(
                "SELECT 1 FROM pg_index JOIN pg_class ON pg_class.oid = pg_index.indexrelid"
                " WHERE pg_class.relname = %s AND pg_table_is_visible(pg_class.oid)"
                " AND NOT pg_index.indisvalid",
                [self.index.name],
            )
            if cursor.fetchone():
                cursor.execute(
                    f"DROP INDEX CONCURRENTLY {schema_editor.quote_name(self.index.name)}"
                )
        return super().database_forwards(app_label, schema_editor, from_state, to_state)

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor != "postgresql":
            return AddIndex.database_backwards(self, app_label, schema_editor, from_state, to_state)
        return super().database_backwards(app_label, schema_editor, from_state, to_state)
