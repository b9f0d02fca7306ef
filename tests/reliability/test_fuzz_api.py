"""Schemathesis against the served OpenAPI schema: every operation, authenticated, a bounded
number of generated requests each. No 5xx, and every response conforms to the schema."""

import json
from collections import Counter

import pytest
import schemathesis
from drf_spectacular.generators import SchemaGenerator
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from tests.factories import make_entities, make_entity_type, make_key, make_workflow

SCHEMA = schemathesis.openapi.from_dict(
    json.loads(json.dumps(SchemaGenerator().get_schema(request=None, public=True), default=str))
)
STATUSES: Counter = Counter()
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@pytest.fixture
def seeded(live_server, transactional_db):
    """Something for the generated ids to hit now and then, and a key to send."""
    entity_type = make_entity_type()
    make_workflow(entity_type, [{"type": "publish", "config": {}}])
    make_entities(entity_type, 3)
    return live_server.url, make_key()


@SCHEMA.parametrize()
@settings(max_examples=10, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
def test_every_operation_answers_within_its_schema(case, seeded):
    base_url, key = seeded
    response = case.call_and_validate(
        base_url=base_url, headers={"Authorization": f"Bearer {key}"}, checks=CHECKS, timeout=30
    )
    STATUSES[response.status_code] += 1


def test_the_fuzzing_reached_past_authentication_and_validation():
    """Generated requests were authenticated, and some were valid enough to succeed."""
    assert STATUSES[401] == 0, STATUSES
    assert sum(n for status, n in STATUSES.items() if status < 300) > 20, STATUSES
