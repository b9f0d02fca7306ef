"""drf-spectacular additions: the one error shape, documented on every operation, so clients
(and generated SDKs) can parse errors as typed objects; request bodies that refuse unknown
fields say so (`additionalProperties: false`)."""

from drf_spectacular import openapi

from config.api.serializers import StrictSerializer


class AutoSchema(openapi.AutoSchema):
    """drf-spectacular's schema, with each StrictSerializer request component closed, as the
    server enforces it (and so that fuzzers send unknown fields only as negative data)."""

    def _map_basic_serializer(self, serializer, direction):
        schema = super()._map_basic_serializer(serializer, direction)
        if direction == "request" and isinstance(serializer, StrictSerializer):
            schema["additionalProperties"] = False
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
    "409": "The resource's state forbids this.",
    "413": "The request body is too large.",
    "415": "The request body is not JSON.",
    "429": "Too many requests; retry after `Retry-After` seconds.",
}


def add_error_responses(result, generator, request, public):
    result.setdefault("components", {}).setdefault("schemas", {})["Error"] = ERROR_SCHEMA
    reference = {"$ref": "#/components/schemas/Error"}
    for operations in result.get("paths", {}).values():
        for operation in operations.values():
            responses = operation.setdefault("responses", {})
            for status, description in STATUSES.items():
                responses.setdefault(
                    status,
                    {
                        "description": description,
                        "content": {"application/json": {"schema": reference}},
                    },
                )
    return result
