"""Fast batched statements for the run engine's hot paths, on the two databases its SQL
supports (PostgreSQL and SQLite; `config.env.env_database` refuses any other at start).

- `rows_update`: the one way a batch of rows is updated. Django's `bulk_update` builds a
  CASE expression per field per row; for a chunk of 400 rows that costs more than the
  database work. This sends one `UPDATE ... FROM <rows>` per batch, the rows travelling as
  one JSON array (one parameter to quote, and a statement short enough for the driver to
  cache): on PostgreSQL each element of the array read by its index, the indexes from
  `generate_series` (see `_rows_source`), `json_each` on SQLite. Table, columns and types
  come from the model's `_meta`.
- `rows_insert`: the same for inserting a batch of rows (`INSERT ... SELECT FROM <rows>`),
  without building a model instance per row as `bulk_create` does.
- The `any` lookup: `filter(pk__any=ids)` is `pk__in=ids` sent as one array parameter on
  PostgreSQL (`= ANY(%s)`), so a chunk's 400 ids (or a run's 10,000) are one value to
  compile, send and plan instead of one placeholder each. Other databases get the IN list.
"""

import datetime
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from json.encoder import encode_basestring_ascii

from django.core.exceptions import EmptyResultSet
from django.db import connection
from django.db.models import (
    BooleanField,
    CharField,
    Field,
    IntegerField,
    JSONField,
    TextField,
)
from django.db.models.lookups import In


@Field.register_lookup
class AnyOf(In):
    lookup_name = "any"

    def as_postgresql(self, compiler, connection):
        if not self.rhs_is_direct_value():
            return super().as_sql(compiler, connection)
        values = [value for value in self.rhs if value is not None]
        if not values:
            raise EmptyResultSet
        if any(hasattr(value, "resolve_expression") for value in values):
            return super().as_sql(compiler, connection)
        lhs, lhs_params = self.process_lhs(compiler, connection)
        # The values were prepared by get_prep_lookup() (one get_prep_value() each); the
        # per-value expression handling of an IN list is what this lookup saves.
        field = self.lhs.output_field
        array = [field.get_db_prep_value(value, connection, prepared=True) for value in values]
        return any_of(lhs, array, params=lhs_params)


def any_of(column: str, values: list, *, params: Sequence = ()) -> tuple:
    """(`column = ANY(<values>)`, its parameters) on PostgreSQL. Strings and integers go as
    one array literal written here: Django's psycopg cursor binds parameters client-side,
    and quoting a list of 1,000 strings into an array there took 2.5 ms (a regex per
    element), the literal 0.9 (0.5 for integers). The array is `text[]` or `bigint[]`,
    never the column's `varchar(n)`, whose cast would cut a longer value down to one that
    matches. Other values are left to the driver."""
    kinds = {type(value) for value in values}
    if kinds == {int}:
        literal, cast = "{" + ",".join(map(str, values)) + "}", "bigint[]"
    elif kinds == {str}:
        literal, cast = '{"' + '","'.join(map(_array_element, values)) + '"}', "text[]"
    else:
        return f"{column} = ANY(%s)", (*params, values)
    return f"{column} = ANY(%s::{cast})", (*params, literal)


def _array_element(value: str) -> str:
    """A string inside a quoted element of an array's text form: quotes and backslashes
    escaped (commas, braces and the word NULL are values inside the quotes)."""
    return value.replace("\\", "\\\\").replace('"', '\\"')


BATCH_SIZE = 1000
_COMPACT = json.JSONEncoder(separators=(",", ":"))


class JSONText(str):
    """A value already encoded as JSON (to check its size, say): it joins the rows as is."""


@dataclass(frozen=True)
class NotBefore:
    """A time to assign that is kept at or after another time column of the same row: `value`,
    or that column's value where it is later (or `value` where it is null). An item started
    on one machine and ended on another whose clock is a little behind must not end before
    it started; an expression in the statement that ends it costs no statement more."""

    field: str
    value: datetime.datetime


def _assignment(meta, name: str, value) -> tuple[str, list]:
    """`<column> = <value>` for an UPDATE's SET, and its parameters."""
    quote, field = connection.ops.quote_name, meta.get_field(name)
    if isinstance(value, NotBefore):
        other = quote(meta.get_field(value.field).column)
        param = _param(field, value.value)
        return f"{quote(field.column)} = CASE WHEN {other} > %s THEN {other} ELSE %s END", [
            param,
            param,
        ]
    return f"{quote(field.column)} = %s", [_param(field, value)]


def rows_update(
    model,
    rows: Iterable[dict],
    *,
    match: Sequence[str],
    copy: Sequence[str] = (),
    assign: dict | None = None,
    increment: Sequence[str] = (),
    where: dict | None = None,
    returning: Sequence[str] = (),
    batch_size: int = BATCH_SIZE,
) -> list[tuple]:
    """Update `model`'s rows from `rows` (dicts by field name), one statement per batch.

    Each row names a table row by its `match` fields; that row gets the row's `copy` fields,
    the values of `assign` (field -> one value for every row, or a `NotBefore`), and its
    `increment` fields plus one, where `where` (field -> value) holds too. Returns the
    `returning` fields of the rows written (so a conditional update says which rows it
    changed)."""
    rows = list(rows)
    if not rows:
        return []
    meta, quote = model._meta, connection.ops.quote_name
    fields = [meta.get_field(name) for name in (*match, *copy)]
    alias = {field.name: f"c{index}" for index, field in enumerate(fields)}
    assign, where = assign or {}, where or {}
    sets = [f"{quote(meta.get_field(name).column)} = r.{alias[name]}" for name in copy]
    set_params, where_params = [], []
    for name, value in assign.items():
        sql, params = _assignment(meta, name, value)
        sets.append(sql)
        set_params += params
    for name in increment:
        column = quote(meta.get_field(name).column)
        sets.append(f"{column} = t.{column} + 1")
    conditions = [f"t.{quote(meta.get_field(name).column)} = r.{alias[name]}" for name in match]
    for name, value in where.items():
        conditions.append(f"t.{quote(meta.get_field(name).column)} = %s")
        where_params.append(_param(meta.get_field(name), value))
    # SQLite's RETURNING takes no table alias: its columns name the table's alone (the rows'
    # columns are c0, c1, ...).
    postgresql = connection.vendor == "postgresql"
    table = "t." if postgresql else ""
    sql = (
        f"UPDATE {quote(meta.db_table)} AS t SET {', '.join(sets)} "  # noqa: S608
        f"FROM {_rows_source(fields, alias, counted=True)} WHERE {' AND '.join(conditions)}"
    )
    if returning:
        sql += " RETURNING " + ", ".join(
            table + quote(meta.get_field(name).column) for name in returning
        )
    encode_rows = _rows_encoder(fields, alias)
    written = []
    with connection.cursor() as cursor:
        for start in range(0, len(rows), batch_size):
            batch = rows[start : start + batch_size]
            source = [len(batch), encode_rows(batch)] if postgresql else [encode_rows(batch)]
            cursor.execute(sql, [*set_params, *source, *where_params])
            if returning:
                written += cursor.fetchall()
    return written


def pks_update(
    model,
    pks: Sequence,
    *,
    assign: dict,
    where: dict | None = None,
    returning: Sequence[str] = (),
) -> list[tuple]:
    """`UPDATE ... SET <assign> WHERE pk = ANY(<pks>) AND <where> RETURNING <returning>`: the
    same values for rows named by primary key (one array parameter on PostgreSQL), found
    through the primary key's index whatever the planner thinks of `where` (a join to a
    row set, as `rows_update` makes, may be planned as a scan of the table when its
    statistics say few rows match `where`). Returns the `returning` fields of the rows
    written."""
    if not pks:
        return []
    meta, quote = model._meta, connection.ops.quote_name
    where = where or {}
    assignments = [_assignment(meta, name, value) for name, value in assign.items()]
    sets = ", ".join(sql for sql, _ in assignments)
    params = [param for _, each in assignments for param in each]
    pk = quote(meta.pk.column)
    if connection.vendor == "postgresql":
        condition, pk_params = any_of(pk, list(pks))
        conditions, params = [condition], [*params, *pk_params]
    else:
        conditions, params = [f"{pk} IN ({', '.join(['%s'] * len(pks))})"], [*params, *pks]
    for name, value in where.items():
        conditions.append(f"{quote(meta.get_field(name).column)} = %s")
        params.append(_param(meta.get_field(name), value))
    sql = f"UPDATE {quote(meta.db_table)} SET {sets} WHERE {' AND '.join(conditions)}"  # noqa: S608
    if returning:
        sql += " RETURNING " + ", ".join(quote(meta.get_field(n).column) for n in returning)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall() if returning else []


def rows_insert(
    model, rows: Iterable[dict], *, fields: Sequence[str], ignore_conflicts: bool = False
) -> int:
    """Insert `rows` (dicts by field name, holding every one of `fields`: no defaults are
    applied) into `model`'s table, one statement per batch; returns how many were inserted
    (`ignore_conflicts`: rows that would break a unique constraint are left out)."""
    return _insert(model, rows, fields, ignore_conflicts)[0]


def rows_insert_returning(
    model,
    rows: Iterable[dict],
    *,
    fields: Sequence[str],
    returning: Sequence[str],
    ignore_conflicts: bool = False,
) -> list[tuple]:
    """`rows_insert`, returning the `returning` fields of each row inserted (the rows left
    out as conflicting return nothing)."""
    return _insert(model, rows, fields, ignore_conflicts, returning)[1]


def _insert(model, rows, fields, ignore_conflicts, returning=()) -> tuple[int, list[tuple]]:
    rows = list(rows)
    if not rows:
        return 0, []
    meta, quote = model._meta, connection.ops.quote_name
    columns = [meta.get_field(name) for name in fields]
    alias = {field.name: f"c{index}" for index, field in enumerate(columns)}
    sql = (
        f"INSERT INTO {quote(meta.db_table)} "  # noqa: S608 (names from _meta)
        f"({', '.join(quote(field.column) for field in columns)}) "
        f"SELECT {', '.join(f'r.{alias[field.name]}' for field in columns)} "
        f"FROM {_rows_source(columns, alias)}"
    )
    if connection.vendor == "sqlite":
        sql += " WHERE true"  # SQLite's parser needs it before ON CONFLICT after a SELECT
    if ignore_conflicts:
        sql += " ON CONFLICT DO NOTHING"
    if returning:
        sql += " RETURNING " + ", ".join(quote(meta.get_field(n).column) for n in returning)
    encode_rows = _rows_encoder(columns, alias)
    inserted, returned = 0, []
    with connection.cursor() as cursor:
        for start in range(0, len(rows), BATCH_SIZE):
            cursor.execute(sql, [encode_rows(rows[start : start + BATCH_SIZE])])
            inserted += cursor.rowcount
            if returning:
                returned += cursor.fetchall()
    return inserted, returned


def _rows_source(fields: list, alias: dict, *, counted: bool = False) -> str:
    """The JSON array parameter as a table `r` with one typed column per field.

    `counted` (PostgreSQL): the array's length is a parameter before it, and the rows are
    its elements by index (`generate_series`, whose count the planner knows), not
    `jsonb_to_recordset`, which the planner takes for 100 rows whatever it holds. A join
    to a table planned on that guess goes wrong when a condition on the table looks rare
    by its statistics: after an ANALYZE taken while no item was `running`, a chunk's
    items' UPDATE (`status = 'running'`) was planned as a scan of the items, the row set
    scanned again for each (a million comparisons for 1,000 rows: 168 ms instead of 5)."""
    if connection.vendor == "postgresql":
        columns = ", ".join(f"{alias[f.name]} {f.db_type(connection)}" for f in fields)
        if counted:
            return (
                "generate_series(0, %s - 1) AS g(i), "
                f"jsonb_to_record(%s::jsonb -> g.i) AS r({columns})"
            )
        return f"jsonb_to_recordset(%s::jsonb) AS r({columns})"
    columns = ", ".join(
        # `->` keeps a JSON column's value as JSON text (JSON null: SQL NULL, as Django
        # stores None); `json_extract` gives the other columns their SQL value.
        f"NULLIF(value -> '$.{alias[f.name]}', 'null') AS {alias[f.name]}"
        if isinstance(f, JSONField)
        else f"json_extract(value, '$.{alias[f.name]}') AS {alias[f.name]}"
        for f in fields
    )
    return f"(SELECT {columns} FROM json_each(%s)) AS r"  # noqa: S608 (names from _meta)


# Values of these fields that are already of these types are what the database gets: they
# skip `get_db_prep_save` (a chunk's rows hold thousands of them).
_PLAIN_FIELDS = (CharField, TextField, IntegerField, BooleanField)
_PLAIN_TYPES = frozenset({str, int, bool, type(None)})


def _converter(field):
    """The function giving `field`'s values as JSON-encodable values for the database."""
    if isinstance(field, JSONField):
        return None  # the value is the JSON
    # A foreign key's values are its target's (a run's id, an item's).
    plain = isinstance(field.target_field if field.is_relation else field, _PLAIN_FIELDS)
    last: list = [None, None]  # the value converted last, and what it gave

    def convert(value):
        if value is None or (plain and type(value) in _PLAIN_TYPES):
            return value  # None is NULL for every field
        if value is last[0]:
            return last[1]  # a batch's rows share their time: converted once
        converted = field.get_db_prep_save(value, connection)
        if isinstance(converted, datetime.datetime | datetime.date):
            converted = converted.isoformat()
        last[:] = [value, converted]
        return converted

    return convert


def _rows_encoder(fields: list, alias: dict):
    """A function encoding a batch of rows as a JSON array of objects keyed by the columns'
    aliases. Rows of plain values are one call of the C encoder for the whole batch; a row
    with values already encoded (`JSONText`, a str the encoder would quote) has them
    spliced in as they are."""
    converters = [(alias[field.name], field.name, _converter(field)) for field in fields]

    def encode_rows(rows: list[dict]) -> str:
        plain_rows, spliced_rows, any_spliced = [], [], False
        for row in rows:
            plain, spliced = {}, []
            for key, name, convert in converters:
                value = row[name]
                if isinstance(value, JSONText):
                    spliced.append(f'"{key}":{value}')
                    any_spliced = True
                else:
                    plain[key] = value if convert is None else convert(value)
            plain_rows.append(plain)
            spliced_rows.append(spliced)
        if not any_spliced:
            return _COMPACT.encode(plain_rows)
        return "[" + ",".join(map(_object, plain_rows, spliced_rows)) + "]"

    return encode_rows


def _object(plain: dict, spliced: list[str]) -> str:
    members = [f"{encode_basestring_ascii(key)}:{_scalar(value)}" for key, value in plain.items()]
    return "{" + ",".join(members + spliced) + "}"


def _scalar(value) -> str:
    """JSON for one value, without the encoder's per-call overhead for the common types."""
    if type(value) is str:
        return encode_basestring_ascii(value)
    if type(value) is int:
        return int.__repr__(value)
    return _COMPACT.encode(value)


def _param(field, value):
    if value is None or isinstance(field, JSONField):
        return value if value is None else _COMPACT.encode(value)
    return field.get_db_prep_save(value, connection)
