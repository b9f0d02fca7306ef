from datetime import datetime

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers


def to_millis(value: datetime | None) -> int | None:
    return None if value is None else int(value.timestamp() * 1000)


@extend_schema_field(OpenApiTypes.INT64)
class TimestampField(serializers.Field):
    """A datetime as integer milliseconds since the epoch (or null)."""

    def __init__(self, **kwargs):
        kwargs.setdefault("read_only", True)
        super().__init__(**kwargs)

    def to_representation(self, value):
        return to_millis(value)


@extend_schema_field(OpenApiTypes.INT64)
class MillisField(serializers.IntegerField):
    """A time already in integer milliseconds since the epoch (or null), typed as
    TimestampField's: a 64-bit integer (a 32-bit one overflows in 1970)."""
