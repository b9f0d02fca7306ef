"""`Idempotency-Key` for writes that create work: the same key and body within
IDEMPOTENCY_KEEP_HOURS (24 hours) returns the first answer and creates nothing new. Older
records are deleted by the retention task (`jobs.retention`).

The view's work and the record of its answer commit in one transaction. Two requests racing
with one key meet on the record's unique constraint: the loser's work is rolled back and it
answers with the winner's response.
"""

import hashlib
import json
from datetime import timedelta
from functools import wraps

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter
from rest_framework.response import Response

from config.api.errors import Conflict, FieldError, InvalidInput
from config.api.models import IdempotencyRecord

HEADER = "Idempotency-Key"
KEY_MAX_LENGTH = 255
SCHEMA_PARAMETER = OpenApiParameter(
    HEADER,
    {"type": "string", "minLength": 1, "maxLength": KEY_MAX_LENGTH},
    OpenApiParameter.HEADER,
    description="Send the same key again (with the same body) within 24 h to get the first "
    f"answer back instead of creating anything new. 1 to {KEY_MAX_LENGTH} printable "
    "characters.",
)


class _Replay(Exception):
    pass


def _lookup(request, key):
    record = IdempotencyRecord.objects.filter(
        user=request.user, key=key, method=request.method, path=request.path
    ).first()
    if record and timezone.now() - record.created_at > timedelta(
        hours=settings.IDEMPOTENCY_KEEP_HOURS
    ):
        record.delete()
        return None
    return record


def _replay(record, request_hash):
    if record.request_hash != request_hash:
        raise Conflict(
            f"This {HEADER} was used with a different request body.",
            code="idempotency_key_reused",
        )
    response = Response(record.response_body, status=record.status_code)
    response["Idempotent-Replayed"] = "true"
    return response


def idempotent(view_method):
    @wraps(view_method)
    def wrapper(self, request, *args, **kwargs):
        key = request.headers.get(HEADER)
        if key is None:
            return view_method(self, request, *args, **kwargs)
        if not 1 <= len(key) <= KEY_MAX_LENGTH or not key.isprintable():
            raise InvalidInput(
                f"Invalid {HEADER}.",
                details=[FieldError(HEADER, f"Use 1 to {KEY_MAX_LENGTH} printable characters.")],
            )
        request_hash = hashlib.sha256(
            json.dumps(request.data, sort_keys=True, default=str).encode()
        ).hexdigest()
        record = _lookup(request, key)
        if record is not None:
            return _replay(record, request_hash)
        try:
            with transaction.atomic():
                response = view_method(self, request, *args, **kwargs)
                if 200 <= response.status_code < 300:
                    try:
                        with transaction.atomic():
                            IdempotencyRecord.objects.create(
                                user=request.user,
                                key=key,
                                method=request.method,
                                path=request.path,
                                request_hash=request_hash,
                                status_code=response.status_code,
                                response_body=response.data,
                            )
                    except IntegrityError:
                        raise _Replay from None
        except _Replay:
            return _replay(_lookup(request, key), request_hash)
        return response

    return wrapper
