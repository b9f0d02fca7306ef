"""What a newcomer reads holds: docs/api.md lists every endpoint the schema serves and every
error code the code can answer, and the README's first workflow (curl and jq) runs as
written against a live server with a real worker."""

import ast
import re
import shutil
import subprocess

import pytest

from tests.factories import make_key
from tests.processes import ROOT

API_DOC = (ROOT / "docs" / "api.md").read_text()
README = (ROOT / "README.md").read_text()
# DRF's own exceptions, answered with their default codes (config/api/exceptions.py).
DRF_CODES = {
    "parse_error",
    "not_authenticated",
    "authentication_failed",
    "permission_denied",
    "not_found",
    "method_not_allowed",
    "not_acceptable",
    "unsupported_media_type",
    "throttled",
}
NOT_ANSWERED = {
    "error",  # DomainError's default: every raise names a subclass with a code of its own
    "too_deep",  # a form error of the admin's JSON fields, not an API answer
    "too_slow",  # the admin's experiment form: its entity search ran past its time
}


def endpoints_documented() -> set[tuple[str, str]]:
    section = API_DOC.split("## Endpoints", 1)[1].split("\n## ", 1)[0]
    found = set()
    for methods, path in re.findall(r"^\| ([A-Z, ]+) \| `([^`]+)` \|", section, re.MULTILINE):
        for method in methods.split(", "):
            found.add((method, re.sub(r":\w+", "{}", path)))
    return found


@pytest.mark.django_db
def test_every_endpoint_of_the_schema_is_listed_in_the_api_doc(api):
    schema = api.get("/api/v1/schema?format=json").json()
    served = {
        (method.upper(), re.sub(r"\{\w+\}", "{}", path))
        for path, operations in schema["paths"].items()
        for method in operations
        if method in ("get", "post", "patch", "put", "delete")
    }
    served.add(("GET", "/api/v1/schema"))
    assert served - endpoints_documented() == set()
    assert endpoints_documented() - served == set()  # nothing listed that is not served


def codes_in_source() -> set[str]:
    """Every error code a literal in the apps names: `code=` arguments, FieldError's third
    argument, `code =` class attributes, `error_body`'s first argument, `"code"`/`"reason"`
    keys of dicts."""
    codes = set()

    def strings(node):
        """The string a code expression can be: a literal, or either side of a conditional."""
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return {node.value}
        if isinstance(node, ast.IfExp):
            return strings(node.body) | strings(node.orelse)
        return set()

    for app in ("config", "entities", "workflows", "jobs"):
        for path in (ROOT / app).rglob("*.py"):
            if "migrations" in path.parts:
                continue
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Call):
                    name = getattr(node.func, "id", getattr(node.func, "attr", ""))
                    for keyword in node.keywords:
                        if keyword.arg == "code":
                            codes |= strings(keyword.value)
                    if name == "FieldError" and len(node.args) >= 3:
                        codes |= strings(node.args[2])
                    if name in ("error_body", "_skip") and node.args:
                        index = 0 if name == "error_body" else 1
                        codes |= strings(node.args[index])
                elif isinstance(node, ast.ClassDef):
                    for statement in node.body:
                        if isinstance(statement, ast.Assign) and any(
                            getattr(t, "id", "") == "code" for t in statement.targets
                        ):
                            codes |= strings(statement.value)
                elif isinstance(node, ast.Dict):
                    for key, value in zip(node.keys, node.values, strict=True):
                        if isinstance(key, ast.Constant) and key.value in ("code", "reason"):
                            codes |= strings(value)
    return {code for code in codes if re.fullmatch(r"[a-z]+(_[a-z]+)*", code)}


def test_every_error_code_is_in_the_api_doc():
    section = API_DOC.split("## Error codes", 1)[1].split("\n## ", 1)[0]
    documented = set(re.findall(r"`([a-z_]+)`", section))
    missing = (codes_in_source() | DRF_CODES) - NOT_ANSWERED - documented
    assert missing == set(), f"add these to docs/api.md, Error codes: {sorted(missing)}"


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(not (shutil.which("curl") and shutil.which("jq")), reason="needs curl and jq")
def test_the_readme_first_workflow_runs_as_written(live_server, celery_worker, tmp_path):
    section = README.split("## A first workflow", 1)[1].split("\n## ", 1)[0]
    script = re.search(r"```sh\n(.*?)```", section, re.DOTALL).group(1)
    assert "KEY=wfk_..." in script and "API=http://127.0.0.1:8000/api/v1" in script
    script = script.replace("KEY=wfk_...", f"KEY={make_key()}").replace(
        "http://127.0.0.1:8000", live_server.url
    )
    path = tmp_path / "first.sh"
    path.write_text("set -euo pipefail\n" + script)
    result = subprocess.run(
        ["bash", str(path)], capture_output=True, text=True, timeout=180, cwd=tmp_path
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert '"status": "completed"' in result.stdout
    assert result.stdout.count('"status": "published"') == 2
    assert '"decided"' in result.stdout and '"skipped": []' in result.stdout
