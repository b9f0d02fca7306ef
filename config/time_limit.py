"""A time limit on the statements of a block: what staff can make the database read (a text
searched in every entity's data, a million rows) ends after a set time instead of holding a
web worker and a core of PostgreSQL for as long as the table takes.

PostgreSQL's `statement_timeout`, set for the block's own transaction (a savepoint inside
another's) and put back as it was when the block ends, so that the statements after it, in
the same transaction, are not limited. Other databases (SQLite, the demo's) have no such
limit: the block runs unlimited there.
"""

from contextlib import contextmanager

from django.db import OperationalError, connection, transaction

QUERY_CANCELED = "57014"  # PostgreSQL's SQLSTATE for a statement cancelled by its timeout


class TooSlow(Exception):
    """A statement of the block ran past the limit; the block's writes were rolled back."""


@contextmanager
def time_limited(seconds: float):
    """Each statement inside runs at most `seconds` (0: no limit), or the block raises
    `TooSlow`."""
    if connection.vendor != "postgresql" or seconds <= 0:
        yield
        return
    try:
        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT current_setting('statement_timeout'),"
                    " set_config('statement_timeout', %s, true)",
                    [f"{max(1, round(seconds * 1000))}ms"],
                )
                before = cursor.fetchone()[0]
            yield
            with connection.cursor() as cursor:  # the rest of an outer transaction: unlimited
                cursor.execute("SELECT set_config('statement_timeout', %s, true)", [before])
    except OperationalError as exc:
        if getattr(exc.__cause__, "sqlstate", None) == QUERY_CANCELED:
            raise TooSlow(f"a statement ran past {seconds:g}s") from exc
        raise
