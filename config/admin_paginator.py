"""The admin's lists of large tables (entities, runs, events...) count an unfiltered page
from PostgreSQL's estimate of the table's rows, not with a COUNT(*) of them all: at
1,000,000 entities a count is a tenth of a second warm, and grows with the table."""

from functools import cached_property

from django.core.paginator import Paginator
from django.db import connection

# From this many rows (as estimated) an unfiltered list says "about N"; below it, and on
# any filtered list, the count is exact.
ESTIMATE_FROM = 100_000


def table_rows_estimate(model) -> int | None:
    """The planner's estimate of the model's table's rows (kept by ANALYZE and autovacuum),
    or None where there is none (another database, a table never analysed)."""
    if connection.vendor != "postgresql":
        return None
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT reltuples::bigint FROM pg_class WHERE oid = %s::regclass",
            [connection.ops.quote_name(model._meta.db_table)],
        )
        row = cursor.fetchone()
    return row[0] if row is not None and row[0] >= 0 else None


class EstimatedCountPaginator(Paginator):
    """Counts an unfiltered list of a table of ESTIMATE_FROM rows or more by its estimate
    (`estimated`: the page says "about"); anything else exactly, as Django does."""

    estimated = False

    @cached_property
    def count(self) -> int:
        queryset = self.object_list
        if not queryset.query.where:
            estimate = table_rows_estimate(queryset.model)
            if estimate is not None and estimate >= ESTIMATE_FROM:
                self.estimated = True
                return estimate
        return super().count
