"""One JSON error shape for every 4xx/5xx:

{"error": {"code": "validation_error", "message": "...",
           "details": [{"field": "steps[2].config.prompt", "message": "...", "code": "..."}]}}
"""

import logging

from django.core.exceptions import PermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import ProtectedError
from django.http import Http404, JsonResponse
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import set_rollback

from config.api.errors import Conflict, DomainError, FieldError, InvalidInput

logger = logging.getLogger(__name__)


def error_body(code: str, message: str, details=()) -> dict:
    return {
        "error": {
            "code": code,
            "message": message,
            "details": [{"field": d.field, "message": d.message, "code": d.code} for d in details],
        }
    }


def flatten_errors(detail, path: str = "") -> list[FieldError]:
    """DRF's nested error detail as a flat list of `a.b[2].c` paths."""
    if isinstance(detail, dict):
        found = []
        for key, value in detail.items():
            if key in ("non_field_errors", "__all__"):
                found += flatten_errors(value, path)
            elif isinstance(key, int) or str(key).isdigit():
                found += flatten_errors(value, f"{path}[{key}]")
            else:
                found += flatten_errors(value, f"{path}.{key}" if path else str(key))
        return found
    if isinstance(detail, list):
        if all(isinstance(item, str) for item in detail):
            return [
                FieldError(path, str(item), getattr(item, "code", "invalid")) for item in detail
            ]
        found = []
        for index, item in enumerate(detail):
            if item:
                found += flatten_errors(item, f"{path}[{index}]")
        return found
    return [FieldError(path, str(detail), getattr(detail, "code", "invalid"))]


def _summary(details: list[FieldError]) -> str:
    first = details[0]
    more = f" (and {len(details) - 1} more)" if len(details) > 1 else ""
    return (f"{first.field}: {first.message}" if first.field else first.message) + more


def invalid_input(exc: exceptions.ValidationError) -> InvalidInput:
    """A serializer's refusal as the domain's error, with the message and details the API
    answers it with, for the admin or a command that validates as the API does."""
    details = flatten_errors(exc.detail)
    return InvalidInput(_summary(details) if details else "Invalid input.", details=details)


def exception_handler(exc, context):
    if isinstance(exc, ProtectedError):
        exc = Conflict("The object is still in use.", code="in_use")
    if isinstance(exc, DomainError):
        set_rollback()
        return Response(error_body(exc.code, exc.message, exc.details), status=exc.status)
    if isinstance(exc, DjangoValidationError):
        exc = exceptions.ValidationError(
            exc.message_dict if hasattr(exc, "error_dict") else exc.messages
        )
    elif isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()
    if not isinstance(exc, exceptions.APIException):
        return None  # a real server error: Django's handler500 answers in JSON

    headers = {}
    if getattr(exc, "auth_header", None):
        headers["WWW-Authenticate"] = exc.auth_header
    if getattr(exc, "wait", None):
        headers["Retry-After"] = str(int(exc.wait))
    set_rollback()

    if isinstance(exc, exceptions.ValidationError):
        problem = invalid_input(exc)
        body = error_body(problem.code, problem.message, problem.details)
    else:
        codes = exc.get_codes()
        code = codes if isinstance(codes, str) else exc.default_code
        body = error_body(code, str(exc.detail))
    return Response(body, status=exc.status_code, headers=headers)


def json_not_found(request, exception=None):
    return JsonResponse(error_body("not_found", f"No such path: {request.path}"), status=404)


def json_server_error(request):
    return JsonResponse(
        error_body("server_error", "The server failed to answer; the error was logged."),
        status=status.HTTP_500_INTERNAL_SERVER_ERROR,
    )
