"""Schemathesis against the served OpenAPI schema: every operation, authenticated, with the
throttle off (at the default rate most generated requests were answered 429 and the fuzzing
reached nothing), a bounded number of generated requests each, valid (positive) and invalid
(negative: wrong types, missing or unknown fields, out-of-range values). No 5xx; every
response conforms to the schema; every error is the one JSON error shape; invalid data is
refused; and every operation of the schema was reached in both modes."""

import json
from collections import Counter

import pytest
import schemathesis
from drf_spectacular.generators import SchemaGenerator
from hypothesis import HealthCheck, settings
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    negative_data_rejection,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from tests.factories import make_entities, make_entity_type, make_key, make_workflow

SCHEMA = schemathesis.openapi.from_dict(
    json.loads(json.dumps(SchemaGenerator().get_schema(request=None, public=True), default=str))
)
SCHEMA.config.generation.update(modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
OPERATIONS = {
    f"{method.upper()} {path}"
    for path, item in SCHEMA.raw_schema["paths"].items()
    for method in item
}
STATUSES: Counter = Counter()
# What the cases reached, read by the last test: every case of this module runs in one test
# process (pytest-xdist's loadgroup), in order.
pytestmark = [pytest.mark.xdist_group("fuzz_api"), pytest.mark.long]
REACHED: dict[str, set[str]] = {mode.value: set() for mode in GenerationMode}


def json_error_shape(ctx, response, case):
    """Every 4xx/5xx is `{"error": {"code", "message", "details": [...]}}` in JSON."""
    if response.status_code < 400:
        return None
    content_type = response.headers.get("content-type", [""])[0]  # names are lowercase
    assert content_type.startswith("application/json"), response.headers
    body = response.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert set(error) == {"code", "message", "details"}, error
    assert isinstance(error["code"], str) and error["code"], error
    assert isinstance(error["message"], str) and error["message"], error
    for detail in error["details"]:
        assert set(detail) == {"field", "message", "code"}, detail
    return True


CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    negative_data_rejection,
    json_error_shape,
]


@pytest.fixture
def seeded(live_server, transactional_db, settings):
    """Something for the generated ids to hit now and then, and a key to send; no throttle,
    so the generated requests reach the code under test."""
    settings.API_RATE_LIMIT = ""
    entity_type = make_entity_type()
    make_workflow(entity_type, [{"type": "publish", "config": {}}])
    make_entities(entity_type, 3)
    return live_server.url, make_key()


# Besides these random examples per operation, schemathesis's coverage phase sends a fixed,
# systematic set (each field with each wrong type, boundaries, missing and unknown fields,
# unexpected methods): about 2,500 requests in all.
@SCHEMA.parametrize()
@settings(max_examples=8, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
def test_every_operation_answers_within_its_schema(case, seeded):
    base_url, key = seeded
    response = case.call_and_validate(
        base_url=base_url, headers={"Authorization": f"Bearer {key}"}, checks=CHECKS, timeout=30
    )
    STATUSES[response.status_code] += 1
    if case.method.upper() == case.operation.method.upper():  # not an unsupported-method probe
        REACHED[case.meta.generation.mode.value].add(case.operation.label)


def test_the_fuzzing_reached_every_operation_past_authentication_and_the_throttle():
    """Every operation of the schema was called with valid and with invalid data; requests
    were authenticated, never throttled, and many were valid enough to succeed."""
    # Every operation the schema serves, so one added is fuzzed too; a floor catches a schema
    # that lost its paths.
    assert len(OPERATIONS) >= 44  # the estimate, reviews (5), revisions (3), versions (4),
    # experiments (4), ...
    assert REACHED["positive"] == OPERATIONS
    assert REACHED["negative"] == OPERATIONS
    assert STATUSES[401] == 0, STATUSES
    assert STATUSES[429] == 0, STATUSES
    assert sum(n for status, n in STATUSES.items() if status < 300) > 50, STATUSES
    assert sum(n for status, n in STATUSES.items() if status == 400) > 50, STATUSES
