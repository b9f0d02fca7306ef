import base64
import binascii
from contextlib import closing

from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import JSONField, TextField, Value
from django.db.models.functions import Cast, Coalesce, Length
from rest_framework.pagination import BasePagination
from rest_framework.response import Response
from rest_framework.utils.encoders import JSONEncoder
from rest_framework.utils.urls import replace_query_param

from config.api.errors import FieldError, InvalidInput
from config.api.ids import ID_PATTERN
from config.digits import whole_number

# Rows read from the database at a time: a page of large rows is never read whole.
FETCH_ROWS = 50
# The renderer's encoder (timestamps, decimals), compact: the size of an item in the answer.
_encoder = JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def _encode(pk) -> str:
    return base64.urlsafe_b64encode(str(pk).encode()).decode().rstrip("=")


def _decode(cursor: str) -> str:
    pk = _unwrapped(cursor)
    if not (pk.isdigit() or ID_PATTERN.fullmatch(pk)):
        raise ValueError(cursor)
    return pk


def _unwrapped(cursor: str) -> str:
    padded = cursor + "=" * (-len(cursor) % 4)
    return base64.b64decode(padded.encode(), altchars=b"-_", validate=True).decode()


def _row_bytes(queryset):
    """An estimate of a row's size as JSON, computed by the database: the lengths of its JSON
    and text columns as text (what dominates a large row: an entity's data, a review's
    proposed copy), but those the queryset defers (not served: an experiment's sample)."""
    names, deferred = queryset.query.deferred_loading
    sizes = [
        Coalesce(Length(Cast(field.name, TextField())), 0)
        for field in queryset.model._meta.concrete_fields
        if isinstance(field, JSONField | TextField) and (field.name in names) != deferred
    ]
    return sum(sizes[1:], sizes[0]) if sizes else Value(0)


def _fitting(sizes: list[int], max_bytes: int) -> int:
    """How many of the items, in order, fit in `max_bytes` (at least one, if there is one)."""
    total = 0
    for index, size in enumerate(sizes):
        total += size
        if total > max_bytes and index:
            return index
    return len(sizes)


class CursorPagination(BasePagination):
    """Newest first, keyed on the primary key (ids are time-ordered).

    The page is a plain JSON array; the next page's URL is in `Link: <...>; rel="next"`.
    A keyset cursor costs the same on the last page as on the first, unlike an offset.

    A page holds at most `limit` items and at most API_MAX_PAGE_BYTES of JSON (an item
    larger than that alone is served alone): it is cut short where the next item would pass
    the bound, and its `Link` continues after the last item served, so following the links
    sees every item once. The cut is made twice: before loading, on the database's estimate
    of each row's size, read with the row, and on the
    serialized items (which may hold more than their row, such as a review's `current`).
    Rows are read FETCH_ROWS at a time (a server-side cursor on PostgreSQL), so what a page
    loads is bounded as well as what it answers.
    """

    default_limit = 50
    max_limit = 500
    # The field the pages are keyed on, newest first: the primary key, or a subclass's.
    key = "pk"

    def _limit(self, request) -> int:
        raw = request.query_params.get("limit")
        if raw is None:
            return self.default_limit
        limit = whole_number(raw)
        if limit is None or not 1 <= limit <= self.max_limit:
            raise InvalidInput(
                "Invalid limit.",
                details=[
                    FieldError("limit", f"Must be a whole number from 1 to {self.max_limit}.")
                ],
            )
        return limit

    def paginate_queryset(self, queryset, request, view=None):
        self.request = request
        self.limit = self._limit(request)
        self.max_bytes = settings.API_MAX_PAGE_BYTES
        cursor = request.query_params.get("cursor")
        try:
            if cursor:  # an id cursor on an integer key fails here too
                queryset = queryset.filter(**{f"{self.key}__lt": self._after(queryset, cursor)})
            rows = (
                queryset.annotate(_page_bytes=_row_bytes(queryset))
                .order_by(f"-{self.key}")
                .iterator(chunk_size=min(self.limit + 1, FETCH_ROWS))
            )
            with closing(rows):
                self.page, self.more = self._take(rows)
        except (binascii.Error, UnicodeDecodeError, ValueError, DjangoValidationError):
            raise InvalidInput(
                "Invalid cursor.",
                details=[FieldError("cursor", "Use the cursor from a Link header.")],
            ) from None
        return self.page

    def _after(self, queryset, cursor: str):
        """The key the page starts after, from a cursor of a `Link`."""
        return _decode(cursor)

    def _cursor(self, row) -> str:
        """The cursor of the page after `row`."""
        return _encode(row.pk)

    def _take(self, rows) -> tuple[list, bool]:
        """The rows of the page, read a few at a time, and whether any is left after them."""
        page, total = [], 0
        for row in rows:
            if len(page) == self.limit or (page and total + row._page_bytes > self.max_bytes):
                return page, True
            total += row._page_bytes
            page.append(row)
        return page, False

    def get_next_link(self) -> str | None:
        if self.next_cursor is None:
            return None
        url = self.request.build_absolute_uri()
        url = replace_query_param(url, "cursor", self.next_cursor)
        return replace_query_param(url, "limit", self.limit)

    def get_paginated_response(self, data):
        """`data`: the page's items serialized, in the page's order."""
        served = _fitting(
            [len(_encoder.encode(item).encode()) + 1 for item in data], self.max_bytes
        )
        more = self.more or served < len(data)
        data = data[:served]
        self.next_cursor = self._cursor(self.page[served - 1]) if more and served else None
        next_link = self.get_next_link()
        headers = {"Link": f'<{next_link}>; rel="next"'} if next_link else None
        return Response(data, headers=headers)

    def get_paginated_response_schema(self, schema):
        return schema

    def get_schema_operation_parameters(self, view):
        return [
            {
                "name": "limit",
                "in": "query",
                "required": False,
                "description": f"Page size, 1 to {self.max_limit} (default {self.default_limit}).",
                "schema": {"type": "integer", "minimum": 1, "maximum": self.max_limit},
            },
            {
                "name": "cursor",
                "in": "query",
                "required": False,
                "description": 'Opaque cursor from the `Link: <...>; rel="next"` header.',
                "schema": {"type": "string"},
            },
        ]


class VersionCursorPagination(CursorPagination):
    """An entity's revisions, newest version first, keyed on the version (`v<version>` in
    the cursor): the page is read from the (entity, version) index, however many revisions
    the entity has (keyed on their ids, every revision of the entity was read and sorted for
    each page: 0.5 s at 500,000). A cursor of the pages keyed on ids (a revision's id, handed
    out before) goes on from that revision's version."""

    key = "version"

    def _after(self, queryset, cursor: str) -> int:
        after = _unwrapped(cursor)
        if after.startswith("v") and after[1:].isdigit() and len(after) < 12:
            return int(after[1:])
        if not after.isdigit() or len(after) > 19:
            raise ValueError(cursor)
        version = queryset.filter(pk=int(after)).values_list("version", flat=True).first()
        if version is None:
            raise ValueError(cursor)
        return version

    def _cursor(self, row) -> str:
        return _encode(f"v{row.version}")
