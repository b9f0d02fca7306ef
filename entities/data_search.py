"""Searching entities' data as text (the entity list's search, the run, test and experiment
forms' entity search): `data__icontains`, as the data reads on either engine.

On PostgreSQL the lookup reads `jsonb` as text, where `é` is `é` but a `"` in a value is
`\\"` and a `\\` is `\\\\`: the text searched for is escaped the same way (a search for
`12" screen` found nothing). On SQLite (the embedded defaults, the demo) a JSON column is the
text Django's `JSONField` wrote, `json.dumps` with its non-ASCII characters escaped (`é` is
`\\u00e9`), and SQLite's LIKE ignores the case of ASCII letters only: there the data is read
through `wf_data_text` (a function this module gives each SQLite connection), the same text as
jsonb's with every letter's case folded, and the text searched for is folded too, so `Crème`
and `CRÈME` find `crème`. It reads each row's JSON in Python: SQLite is the demo's engine."""

import json

from django.db.models.fields.json import JSONIContains


def _data_text(stored: str | None) -> str | None:
    """A row's JSON text as jsonb's reads (characters as they are, `"` and `\\` escaped),
    its case folded."""
    if stored is None:
        return None
    try:
        return json.dumps(json.loads(stored), ensure_ascii=False).casefold()
    except ValueError:  # not JSON: a column written by hand
        return stored.casefold()


def sqlite_functions_add(sender, connection, **kwargs) -> None:
    """`connection_created` receiver (connected by the app's `ready`): give a SQLite
    connection `wf_data_text`."""
    if connection.vendor == "sqlite":
        connection.connection.create_function("wf_data_text", 1, _data_text, deterministic=True)


class DataIContains(JSONIContains):
    """`icontains` over the data's JSON text, the searched text escaped as jsonb's text is."""

    def get_db_prep_lookup(self, value, connection):
        if isinstance(value, str):
            # `12" screen` finds the `12\" screen` the text holds.
            value = json.dumps(value, ensure_ascii=False)[1:-1]
            if connection.vendor == "sqlite":
                value = value.casefold()
        return super().get_db_prep_lookup(value, connection)

    def process_lhs(self, compiler, connection):
        sql, params = super().process_lhs(compiler, connection)
        if connection.vendor == "sqlite":
            return f"wf_data_text({sql})", params
        return sql, params
