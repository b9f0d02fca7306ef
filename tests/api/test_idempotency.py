"""Every POST that creates something honours `Idempotency-Key`: the same key and body answer
the first response and create nothing new; the same key with another body is a 409."""

import pytest

from tests.api.test_strict_input import (
    OPERATIONS,
    WRITE_NAMES,
    counts,
    openapi,
    the_write,
)

pytestmark = pytest.mark.django_db

CREATES = [
    name
    for name in WRITE_NAMES
    if name.startswith(("create", "bulk", "run", "retry", "revert", "send"))
]


def test_every_creating_operation_declares_the_header():
    creating = {
        f"post {path}"
        for path, operations in openapi()["paths"].items()
        for method, operation in operations.items()
        if method == "post" and _creates(operation)
    }
    declaring = {
        f"post {path}"
        for path, operations in openapi()["paths"].items()
        for method, operation in operations.items()
        if method == "post"
        and any(p["name"] == "Idempotency-Key" for p in operation.get("parameters", []))
    }
    assert creating == declaring
    assert creating == {f"post {the_write_path}" for the_write_path in _templates(CREATES)}


def test_every_operation_taking_the_key_documents_a_replayed_answer():
    """A replay carries `Idempotent-Replayed: true` (below); the schema says so on the
    success answer of each operation that may replay."""
    undocumented = [
        f"{method} {path}"
        for path, operations in openapi()["paths"].items()
        for method, operation in operations.items()
        if any(p["name"] == "Idempotency-Key" for p in operation.get("parameters", []))
        for status, response in operation["responses"].items()
        if status.startswith("2") and "Idempotent-Replayed" not in response.get("headers", {})
    ]
    assert undocumented == []


def _creates(operation: dict) -> bool:
    """Answers 201 (a thing made), 202 with the run it started (a cancel's 202 makes
    nothing), or 200 with the events it stored (and the entities they woke)."""
    refs = [
        operation["responses"]
        .get(status, {})
        .get("content", {})
        .get("application/json", {})
        .get("schema", {})
        .get("$ref", "")
        for status in ("200", "202")
    ]
    return "201" in operation["responses"] or any(
        ref.endswith(("/RunStarted", "/ExperimentStarted", "/EventSent")) for ref in refs
    )


def send(api, write, body, key):
    return getattr(api, write.method)(write.path, body, HTTP_IDEMPOTENCY_KEY=key)


def _templates(names):
    return [OPERATIONS[name].split()[1] for name in names]


@pytest.mark.parametrize("name", CREATES)
def test_the_same_key_twice_creates_once(api, world, name):
    write = the_write(world, name)
    before = counts()
    first = send(api, write, write.body, "order-7")
    assert first.status_code == write.status, first.content
    after_first = counts()
    assert after_first != before
    again = send(api, write, write.body, "order-7")
    assert again.status_code == write.status
    assert again.json() == first.json()
    assert again["Idempotent-Replayed"] == "true"
    assert counts() == after_first
    other = send(api, write, {**write.body, "x": 1}, "order-7")
    assert other.status_code == 409
    assert other.json()["error"]["code"] == "idempotency_key_reused"
    assert counts() == after_first


@pytest.mark.parametrize("key", ["", "k" * 256, "tab\there"])
def test_a_bad_key_is_a_400_and_creates_nothing(api, world, key):
    write = the_write(world, "create entity")
    before = counts()
    response = send(api, write, write.body, key)
    assert response.status_code == 400
    assert response.json()["error"]["details"][0]["field"] == "Idempotency-Key"
    assert counts() == before


def test_the_schema_bounds_the_key_as_the_server_does(api, world):
    """The header was declared a bare string: a client checking requests against the
    schema took keys the server refuses (empty, or past 255 characters)."""
    bounds = {
        (p["schema"]["minLength"], p["schema"]["maxLength"])
        for operations in openapi()["paths"].values()
        for operation in operations.values()
        for p in operation.get("parameters", [])
        if p["name"] == "Idempotency-Key"
    }
    assert bounds == {(1, 255)}
    write = the_write(world, "create entity")
    assert send(api, write, write.body, "k" * 255).status_code == 201
