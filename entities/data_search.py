"""Searching entities' data as text (the entity list's search, the run, test and experiment
forms' entity search): `data__icontains`, as the data reads on either engine.

On PostgreSQL the lookup reads `jsonb` as text, where `é` is `é` but a `"` in a value is
`\\"` and a `\\` is `\\\\`: the text searched for is escaped the same way (a search for
`12" screen` found nothing). On SQLite a JSON column is
the text Django's `JSONField` wrote, `json.dumps` with its non-ASCII characters escaped (`é`
is `\\u00e9`), so a search for `Crème` found nothing there (the embedded defaults, the demo):
the text searched for is escaped the same way first. (SQLite's LIKE ignores the case of
ASCII letters only: `CRÈME` does not find `crème` there.)"""

import json

from django.db.models.fields.json import JSONIContains


class DataIContains(JSONIContains):
    """`icontains` over the data's JSON text, the searched text escaped as it is stored."""

    def get_db_prep_lookup(self, value, connection):
        if isinstance(value, str):
            # As the data reads as text there: JSONField's escapes on SQLite (ASCII only),
            # jsonb's on PostgreSQL (`"` and `\` escaped, other characters as they are), so
            # `12" screen` finds the `12\" screen` the text holds.
            value = json.dumps(value, ensure_ascii=connection.vendor == "sqlite")[1:-1]
        return super().get_db_prep_lookup(value, connection)
