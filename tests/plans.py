"""What PostgreSQL's plan of a statement read, for tests that hold a page to its index."""

import json

from django.db import connection


def rows_read(sql: str, params=None, *, table: str) -> int:
    """Rows the plan of `sql` read from `table` (index and heap), all loops, those its filters
    then removed included (`EXPLAIN ANALYZE`: the statement is run)."""
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (ANALYZE, FORMAT JSON) {sql}", params)
        plan = cursor.fetchone()[0]
    plan = json.loads(plan) if isinstance(plan, str) else plan
    read, nodes = 0, [plan[0]["Plan"]]
    while nodes:
        node = nodes.pop()
        nodes += node.get("Plans", [])
        if node.get("Relation Name") == table:
            kept = node["Actual Rows"] + node.get("Rows Removed by Filter", 0)
            read += kept * node["Actual Loops"]
    return read
