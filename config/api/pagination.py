import base64
import binascii

from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework.pagination import BasePagination
from rest_framework.response import Response
from rest_framework.utils.urls import replace_query_param

from config.api.errors import FieldError, InvalidInput
from config.api.ids import ID_PATTERN


def _encode(pk) -> str:
    return base64.urlsafe_b64encode(str(pk).encode()).decode().rstrip("=")


def _decode(cursor: str) -> str:
    padded = cursor + "=" * (-len(cursor) % 4)
    pk = base64.b64decode(padded.encode(), altchars=b"-_", validate=True).decode()
    if not (pk.isdigit() or ID_PATTERN.fullmatch(pk)):
        raise ValueError(cursor)
    return pk


class CursorPagination(BasePagination):
    """Newest first, keyed on the primary key (ids are time-ordered).

    The page is a plain JSON array; the next page's URL is in `Link: <...>; rel="next"`.
    A keyset cursor costs the same on the last page as on the first, unlike an offset.
    """

    default_limit = 50
    max_limit = 500

    def _limit(self, request) -> int:
        raw = request.query_params.get("limit")
        if raw is None:
            return self.default_limit
        if not raw.isdigit() or not 1 <= int(raw) <= self.max_limit:
            raise InvalidInput(
                "Invalid limit.",
                details=[
                    FieldError("limit", f"Must be a whole number from 1 to {self.max_limit}.")
                ],
            )
        return int(raw)

    def paginate_queryset(self, queryset, request, view=None):
        self.request = request
        self.limit = self._limit(request)
        cursor = request.query_params.get("cursor")
        try:
            if cursor:  # an id cursor on an integer key fails here too
                queryset = queryset.filter(pk__lt=_decode(cursor))
            page = list(queryset.order_by("-pk")[: self.limit + 1])
        except (binascii.Error, UnicodeDecodeError, ValueError, DjangoValidationError):
            raise InvalidInput(
                "Invalid cursor.",
                details=[FieldError("cursor", "Use the cursor from a Link header.")],
            ) from None
        self.next_cursor = _encode(page[self.limit - 1].pk) if len(page) > self.limit else None
        return page[: self.limit]

    def get_next_link(self) -> str | None:
        if self.next_cursor is None:
            return None
        url = self.request.build_absolute_uri()
        url = replace_query_param(url, "cursor", self.next_cursor)
        return replace_query_param(url, "limit", self.limit)

    def get_paginated_response(self, data):
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
