"""Fast batched statements for the run pipeline's hot paths.

- `bulk_update_rows`: Django's `bulk_update` builds a CASE expression per field per row; for
  a chunk of 400 rows that costs more than the database work. On PostgreSQL this sends one
  `UPDATE ... FROM (VALUES ...)` per batch instead, with every value cast to its column's
  type. Other databases fall back to `bulk_update`.
- The `any` lookup: `filter(pk__any=ids)` is `pk__in=ids` sent as one array parameter on
  PostgreSQL (`= ANY(%s)`), so a chunk's 400 ids (or a run's 10,000) are one value to
  compile, send and plan instead of one placeholder each. Other databases get the IN list.
"""

from django.core.exceptions import EmptyResultSet
from django.db import connection
from django.db.models import Field
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
        return f"{lhs} = ANY(%s)", (*lhs_params, array)


BATCH_SIZE = 1000


def bulk_update_rows(objs: list, fields: list[str], *, batch_size: int = BATCH_SIZE) -> None:
    if not objs:
        return
    model = type(objs[0])
    if connection.vendor != "postgresql":
        model.objects.bulk_update(objs, fields, batch_size=batch_size)
        return
    meta = model._meta
    columns = [meta.pk, *(meta.get_field(name) for name in fields)]
    quote = connection.ops.quote_name
    row_sql = "(" + ", ".join(f"%s::{field.db_type(connection)}" for field in columns) + ")"
    names = ", ".join(quote(field.column) for field in columns)
    assignments = ", ".join(
        f"{quote(field.column)} = v.{quote(field.column)}" for field in columns[1:]
    )
    pk = quote(meta.pk.column)
    with connection.cursor() as cursor:
        for start in range(0, len(objs), batch_size):
            batch = objs[start : start + batch_size]
            params = [
                field.get_db_prep_save(getattr(obj, field.attname), connection)
                for obj in batch
                for field in columns
            ]
            cursor.execute(
                f"UPDATE {quote(meta.db_table)} AS t SET {assignments} "  # noqa: S608
                f"FROM (VALUES {', '.join([row_sql] * len(batch))}) AS v({names}) "
                f"WHERE t.{pk} = v.{pk}",
                params,
            )
