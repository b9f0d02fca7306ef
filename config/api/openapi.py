"""drf-spectacular additions: the one error shape, documented on every operation, so clients
(and generated SDKs) can parse errors as typed objects; request bodies that refuse unknown
fields say so (`additionalProperties: false`); what is required, in a request and in a
response, and the headers a client acts on, are what the server does (tested in
tests/api/test_openapi_precision.py); the document is OpenAPI 3.0.3 throughout, the
JSON Schema of step configs and triggers included (checked by openapi-spec-validator and
Redocly's recommended rules in tests/api/test_openapi_document.py)."""

from drf_spectacular import openapi
from drf_spectacular.plumbing import (
    force_instance,
    get_lib_doc_excludes,
    is_list_serializer,
    is_serializer,
)
from rest_framework.fields import empty

from config.api.idempotency import SCHEMA_PARAMETER as IDEMPOTENCY_PARAMETER
from config.api.serializers import StrictSerializer


def lib_doc_excludes() -> list:
    """drf-spectacular's GET_LIB_DOC_EXCLUDES: a serializer without a docstring of its own
    has no description, rather than StrictSerializer's, which is about our code."""
    return [*get_lib_doc_excludes(), StrictSerializer]


LINK_HEADER = {
    "description": 'The next page: `<url>; rel="next"`. Absent on the last page only (a '
    "page cut short by its size in bytes is not the last).",
    "schema": {"type": "string"},
}
REPLAYED_HEADER = {
    "description": "`true` when this is the first answer to the same `Idempotency-Key` and "
    "body, replayed: nothing new was created.",
    "schema": {"type": "string", "enum": ["true"]},
}


def _sometimes_absent(serializer, field) -> bool:
    """Whether a response may leave the field out: only a field declared `required=False`
    (with no default, and not read-only) is one, as DRF skips it when the instance lacks it (a
    trigger's `cron`, a revision source's `runId`). A field a ModelSerializer builds from a
    model field is not required in a request when the model has a default (`status`) or
    allows blank or null, but it reads an attribute every instance has, so every response
    carries it."""
    return (
        field.field_name in serializer._declared_fields
        and not field.required
        and not field.read_only
        and field.default is empty
    )


class AutoSchema(openapi.AutoSchema):
    """drf-spectacular's schema, with each StrictSerializer request component closed, as the
    server enforces it (and so that fuzzers send unknown fields only as negative data), and
    each response component requiring every field the server always sends (so a generated
    SDK types them as always there, not as maybe unset).

    A PATCH body is partial (drf-spectacular's `Patched...` component, nothing required) only
    where the operation declares its serializer `partial=True`, as its view validates it: our
    views validate a PATCH body as declared (`PATCH /entities/:id` requires `data`), not
    partially by default as DRF's stock `partial_update` does."""

    def _get_response_headers_for_code(self, status_code, direction="response"):
        """A paged list's `Link` (where drf-spectacular documents the paginator's `limit` and
        `cursor`), and a replayed answer's `Idempotent-Replayed` (where the operation takes
        `Idempotency-Key`): on its success statuses, beside what the operation declares."""
        headers = super()._get_response_headers_for_code(status_code, direction)
        if status_code.startswith("2"):
            if self._get_pagination_parameters():
                headers["Link"] = LINK_HEADER
            if IDEMPOTENCY_PARAMETER in self.get_override_parameters():
                headers["Idempotent-Replayed"] = REPLAYED_HEADER
        return headers

    def _get_request_body(self, direction="request"):
        body = super()._get_request_body(direction)
        if body is None:
            return None
        serializer = force_instance(self.get_request_serializer())
        if isinstance(serializer, StrictSerializer) and serializer.refuses_empty:
            body["required"] = True
        return body

    def get_serializer_name(self, serializer, direction):
        """A PATCH body taken whole keeps the name drf-spectacular gives a partial one
        (`Patched...`): SDKs generated before name their model classes so."""
        name = super().get_serializer_name(serializer, direction)
        request = self.get_request_serializer() if self.method == "PATCH" else None
        whole = request is not None and not getattr(serializer, "partial", False)
        if direction == "request" and whole and type(serializer) is type(force_instance(request)):
            return f"Patched{name}"  # (a partial one is named so by drf-spectacular)
        return name

    def _get_request_for_media_type(self, serializer, direction="request"):
        whole = (
            self.method == "PATCH"
            and is_serializer(serializer)
            and not is_list_serializer(serializer)
            and not force_instance(serializer).partial
        )
        if not whole:
            return super()._get_request_for_media_type(serializer, direction)
        # drf-spectacular's own branch for a serializer, without the copy it makes partial.
        component = self.resolve_serializer(force_instance(serializer), direction)
        if not component:
            return None, False
        properties = component.schema.get("properties", {})
        required = component.schema.get("required", [])
        return component.ref, any(not properties[name].get("readOnly") for name in required)

    def _map_serializer_field(self, field, direction, bypass_extensions=False):
        """A nested list's `min_length` and `max_length` as `minItems` and `maxItems`: DRF
        checks them in the list serializer itself, not with validators drf-spectacular reads
        (an experiment's up to 20 `scorers`)."""
        schema = super()._map_serializer_field(field, direction, bypass_extensions)
        if is_list_serializer(field) and schema.get("type") == "array":
            if field.min_length is not None:
                schema["minItems"] = field.min_length
            if field.max_length is not None:
                schema["maxItems"] = field.max_length
        return schema

    def _map_basic_serializer(self, serializer, direction):
        schema = super()._map_basic_serializer(serializer, direction)
        if direction == "request" and isinstance(serializer, StrictSerializer):
            schema["additionalProperties"] = False
        if direction == "response":
            serializer = force_instance(serializer)
            always = {
                name
                for name in schema.get("properties", {})
                if not _sometimes_absent(serializer, serializer.fields[name])
            }
            required = always.union(schema.get("required", []))
            if required:
                schema["required"] = sorted(required)
        return schema


ERROR_SCHEMA = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message", "details"],
            "properties": {
                "code": {
                    "type": "string",
                    "description": "Machine-readable, e.g. "
                    "`validation_error`, `not_found`, `conflict`.",
                },
                "message": {"type": "string", "description": "What went wrong, for people."},
                "details": {
                    "type": "array",
                    "description": "One entry per problem, for validation errors.",
                    "items": {
                        "type": "object",
                        "required": ["field", "message", "code"],
                        "properties": {
                            "field": {
                                "type": "string",
                                "description": "Path in the request, "
                                "e.g. `steps[2].config.prompt`.",
                            },
                            "message": {"type": "string"},
                            "code": {"type": "string"},
                        },
                    },
                },
            },
        }
    },
}
STATUSES = {
    "400": "The request is invalid; `details` names each problem.",
    "401": "No API key, or an invalid or revoked one.",
    "403": "The key may not do this.",
    "404": "No such resource.",
    "405": "The method is not allowed here.",
    "406": "The `Accept` header takes no format the API answers in (JSON).",
    "409": "The resource's state forbids this.",
    "413": "The request body is too large.",
    "415": "The request body is not JSON.",
    "429": "Too many requests; retry after `Retry-After` seconds.",
    "500": "A fault of ours, logged; nothing is half-written.",
    "503": "The request ran past the server's time limit; what it had not committed is not saved.",
}


# The headers an error answer carries, by status.
ERROR_HEADERS = {
    "429": {
        "Retry-After": {
            "description": "Seconds to wait before trying again.",
            "schema": {"type": "integer", "minimum": 0},
        }
    },
}


def add_error_responses(result, generator, request, public):
    result.setdefault("components", {}).setdefault("schemas", {})["Error"] = ERROR_SCHEMA
    reference = {"$ref": "#/components/schemas/Error"}
    for operations in result.get("paths", {}).values():
        for operation in operations.values():
            responses = operation.setdefault("responses", {})
            for status, description in STATUSES.items():
                headers = ERROR_HEADERS.get(status)
                responses.setdefault(
                    status,
                    {
                        "description": description,
                        **({"headers": headers} if headers else {}),
                        "content": {"application/json": {"schema": reference}},
                    },
                )
    return result


def add_servers(result, generator, request, public):
    """The server is the one that served the document (behind a proxy, as the proxy names it),
    so Swagger UI's *Try it out* and generated SDKs have a base URL."""
    if request is not None:
        result["servers"] = [{"url": request.build_absolute_uri("/").rstrip("/")}]
    return result


# Schema keywords whose value is a schema, a list of schemas, or a map of names to schemas.
_ONE_SCHEMA = ("items", "not", "additionalProperties")
_SCHEMA_LISTS = ("allOf", "anyOf", "oneOf")
_SCHEMA_MAPS = ("properties",)
_COMPOSED = ("$ref", *_SCHEMA_LISTS)


def _schema_to_oas30(schema) -> None:
    """Rewrite, in place, what JSON Schema 2020-12 says differently from OpenAPI 3.0's schema
    object: `const` (an enum of one), `examples` (one `example`), a list of `type`s (one type
    and `nullable`, or a `oneOf`), numeric `exclusiveMinimum`/`exclusiveMaximum` (a bound and a
    flag), a `$ref` with siblings (an `allOf` of it); `nullable` beside no `type` (meaningless
    in 3.0, where a schema without a type already takes null) is dropped, and beside an
    `allOf` of components becomes a `oneOf` of the component and a schema taking only null.
    Step configs and triggers are declared once, as the JSON Schema the server validates
    with; this is their OpenAPI 3.0 form."""
    if not isinstance(schema, dict):
        return
    if "const" in schema:
        schema["enum"] = [schema.pop("const")]
    if "examples" in schema:
        examples = schema.pop("examples")
        if isinstance(examples, list) and examples:
            schema.setdefault("example", examples[0])
    if isinstance(schema.get("type"), list):
        named = schema.pop("type")
        types = [kind for kind in named if kind != "null"]
        if len(types) < len(named):
            schema["nullable"] = True
        if len(types) == 1:
            schema["type"] = types[0]
        elif types:
            schema["oneOf"] = [{"type": kind} for kind in types]
    for bound, flag in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        value = schema.get(bound)
        if isinstance(value, int | float) and not isinstance(value, bool):
            schema[flag] = value
            schema[bound] = True
    if "$ref" in schema and len(schema) > 1:
        # 3.0 ignores a reference's siblings (Redocly's spec-ref-siblings): the reference
        # goes in an `allOf`, beside which they count, as drf-spectacular writes its own.
        schema["allOf"] = [{"$ref": schema.pop("$ref")}]
    if schema.get("nullable") and not any(key in schema for key in ("type", *_COMPOSED)):
        del schema["nullable"]
    if schema.get("nullable") and "type" not in schema and schema.get("allOf"):
        # A nested serializer that may be null (`allOf: [$ref]`): 3.0 reads `nullable` only
        # beside a `type` (Redocly's nullable-type-sibling), but `type: object` beside the
        # `allOf` makes openapi-python-client type the field as never null (its SDK then
        # failed on every run without a budget). One of the component and a null alone
        # says it to both.
        del schema["nullable"]
        parts = schema.pop("allOf")
        null_only = {"type": "object", "nullable": True, "enum": [None]}
        schema["oneOf"] = [parts[0] if len(parts) == 1 else {"allOf": parts}, null_only]
    for key in _ONE_SCHEMA:
        _schema_to_oas30(schema.get(key))
    for key in _SCHEMA_LISTS:
        for item in schema.get(key) or ():
            _schema_to_oas30(item)
    for key in _SCHEMA_MAPS:
        for item in (schema.get(key) or {}).values():
            _schema_to_oas30(item)


def _schemas_in(node):
    """Every schema object of an operation, a parameter, a body, a response or a header."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "schema" and isinstance(value, dict):
                yield value
            elif key not in ("example", "examples"):
                yield from _schemas_in(value)
    elif isinstance(node, list):
        for value in node:
            yield from _schemas_in(value)


def to_openapi_30(result, generator, request, public):
    """The last hook: the whole document as OpenAPI 3.0.3 (see `_schema_to_oas30`)."""
    for schema in result.get("components", {}).get("schemas", {}).values():
        _schema_to_oas30(schema)
    for schema in _schemas_in(result.get("paths", {})):
        _schema_to_oas30(schema)
    return result
