"""The admin's lists of large tables (entities, runs, events...) count a page of many rows
by PostgreSQL's estimate, not with a COUNT(*) of them all: at 1,000,000 entities (of one
type: the list filtered by its type is all of them) a count is a tenth of a second warm and
a second cold, on every page, and grows with the table."""

import json
from functools import cached_property

from django.core.paginator import Paginator
from django.db import connection

# From this many rows (as the planner estimates them) a list says "about N"; below, the
# count is exact. A search by text is estimated at a few rows and counted exactly.
ESTIMATE_FROM = 100_000


def rows_estimate(queryset) -> int | None:
    """The planner's estimate of the rows `queryset` holds (from the statistics ANALYZE and
    autovacuum keep), or None on another database."""
    if connection.vendor != "postgresql":
        return None
    [plan] = json.loads(queryset.order_by().explain(format="json"))
    return int(plan["Plan"]["Plan Rows"])


class EstimatedCountPaginator(Paginator):
    """Counts a list the planner expects of ESTIMATE_FROM rows or more by that estimate
    (`estimated`: the page says "about"); anything else exactly, as Django does."""

    estimated = False

    @cached_property
    def count(self) -> int:
        estimate = rows_estimate(self.object_list)
        if estimate is not None and estimate >= ESTIMATE_FROM:
            self.estimated = True
            return estimate
        return super().count
