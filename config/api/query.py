"""Query parameters are taken as the OpenAPI schema declares them, like bodies.

A parameter an endpoint does not read is a 400 naming it (`?statuss=draft` would otherwise list
everything). What each endpoint reads is what drf-spectacular declares for its operation (the
view's `parameters=[...QuerySerializer]`, the paginator's `limit` and `cursor`): the served
schema is the single source, so a parameter a view forgets to declare is refused by the server
too, and shows up in its tests.
"""

import difflib
import threading
from collections.abc import Callable
from functools import cache

from drf_spectacular.settings import spectacular_settings
from rest_framework.permissions import BasePermission
from rest_framework.settings import api_settings

from config.api.errors import FieldError, InvalidInput

# drf-spectacular's generator is not safe to run in two threads at once (concurrent first
# requests of a threaded worker crashed it): the one build a process makes is done under a lock.
_build_lock = threading.Lock()


def declared_query_parameters() -> dict[tuple[Callable, str], frozenset[str]]:
    """(URL callback, method) -> the query parameters its operation declares, from the schema
    `/api/v1/schema` serves (built once per process, a tenth of a second: the WSGI module
    builds it when a web worker starts, so no request waits for it)."""
    with _build_lock:
        return _declared_query_parameters()


@cache
def _declared_query_parameters() -> dict[tuple[Callable, str], frozenset[str]]:
    # The generator class is read from drf-spectacular's settings when first needed: importing
    # its module here would import DRF's views while DRF imports this permission class.
    generator = spectacular_settings.DEFAULT_GENERATOR_CLASS()
    schema = generator.get_schema(request=None, public=True)
    # The schema's paths are the endpoints' paths as the generator coerces them ({pk} -> {id}).
    callbacks = {
        (path, method.lower()): endpoint[3]
        for endpoint, (path, _, method, _) in zip(
            generator.endpoints, generator._get_paths_and_endpoints(), strict=True
        )
    }
    declared = {}
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            names = {
                parameter["name"]
                for parameter in operation.get("parameters", [])
                if parameter["in"] == "query"
            }
            declared[callbacks[path, method], method] = frozenset(names)
    return declared


class KnownQueryParameters(BasePermission):
    """A 400 naming each query parameter the endpoint does not declare (detail code
    `unknown_parameter`), or that is given more than once (`repeated_parameter`). Listed
    after the key's permissions, so that a request without a valid key is a 401 whatever it
    asks. Endpoints the schema leaves out (health, metrics, the schema itself) are not
    checked. DRF's `?format=` is read by every endpoint, and checked by the content
    negotiation (config/api/negotiation.py)."""

    def has_permission(self, request, view):
        match = request.resolver_match
        method = "get" if request.method == "HEAD" else request.method.lower()
        known = declared_query_parameters().get((match.func, method)) if match else None
        if known is None:
            return True
        details = []
        for name, values in request.query_params.lists():
            if name == api_settings.URL_FORMAT_OVERRIDE:
                continue
            if name not in known:
                details.append(FieldError(name, _message(name, known), "unknown_parameter"))
            elif len(values) > 1:  # read as the last one: say so rather than pick
                details.append(repeated_parameter(name, values))
        if details:
            names = ", ".join(f"`{detail.field}`" for detail in details)
            if any(detail.code == "repeated_parameter" for detail in details):
                what = "Repeated or unknown query parameters"
            else:
                what = "Unknown query parameter" + ("s" if len(details) > 1 else "")
            raise InvalidInput(f"{what}: {names}", details=details)
        return True


def repeated_parameter(name: str, values: list[str]) -> FieldError:
    return FieldError(
        name, f"Give this parameter once, not {len(values)} times.", "repeated_parameter"
    )


def _message(name: str, known: frozenset[str]) -> str:
    close = difflib.get_close_matches(name, sorted(known), n=1)
    if close:
        return f"Unknown query parameter; did you mean `{close[0]}`?"
    names = ", ".join(f"`{known_name}`" for known_name in sorted(known))
    return f"Unknown query parameter; this endpoint reads {names or 'none'}."
