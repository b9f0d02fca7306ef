"""Reads of the events kept, for the admin's Events page."""

from django.db import connection

from jobs.waits.event.models import Event

# The names the Events page offers to filter by, in order; names past them are reached by
# the page's address (`?name=`).
NAMES_LISTED = 200


def event_names(*, limit: int = NAMES_LISTED) -> list[str]:
    """The names of the events kept, each once, in order, at most `limit`. On PostgreSQL a
    walk of the index that leads with the name (`event_match`), one probe a name: a DISTINCT
    reads every event kept (hundreds of thousands) to find a few dozen names."""
    if connection.vendor != "postgresql":
        names = Event.objects.order_by("name").values_list("name", flat=True).distinct()
        return list(names[:limit])
    table = connection.ops.quote_name(Event._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            "WITH RECURSIVE names(name) AS ("  # noqa: S608 (the table from _meta)
            f"(SELECT name FROM {table} ORDER BY name LIMIT 1) UNION ALL "
            f"SELECT (SELECT e.name FROM {table} AS e WHERE e.name > names.name "
            "ORDER BY e.name LIMIT 1) FROM names WHERE names.name IS NOT NULL"
            ") SELECT name FROM names WHERE name IS NOT NULL LIMIT %s",
            [limit],
        )
        return [name for (name,) in cursor]
