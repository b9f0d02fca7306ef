"""Domain errors raised by services and turned into HTTP answers at the edge.

Services raise these instead of DRF exceptions so the API, the admin and management commands
share one vocabulary; `config.api.exceptions.exception_handler` renders them.
"""

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class FieldError:
    """One broken rule, located by a path such as `steps[2].config.prompt`."""

    field: str
    message: str
    code: str = "invalid"


def json_path(parts: Iterable) -> str:
    """`["seo", "tags", 2]` -> `seo.tags[2]`."""
    path = ""
    for part in parts:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else str(part)
    return path


class DomainError(Exception):
    status = 400
    code = "error"

    def __init__(self, message: str, *, code: str | None = None, details=None):
        super().__init__(message)
        self.message = message
        if code:
            self.code = code
        self.details: list[FieldError] = list(details or [])


class InvalidInput(DomainError):
    """The request is well-formed but its content breaks a rule (400)."""

    code = "validation_error"


class NotFound(DomainError):
    status = 404
    code = "not_found"


class Conflict(DomainError):
    """The resource is in a state that forbids the request (409)."""

    status = 409
    code = "conflict"


class Forbidden(DomainError):
    """The caller may not do this to this resource (403), whatever its model permissions."""

    status = 403
    code = "permission_denied"
