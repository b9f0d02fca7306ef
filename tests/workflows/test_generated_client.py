"""An SDK generated from the served OpenAPI schema works against the server, with step
configs typed per step type."""

import importlib
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.factories import make_entity_type, make_key

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def sdk(live_server, tmp_path):
    key = make_key()
    schema = httpx.get(
        f"{live_server.url}/api/v1/schema?format=json", headers={"Authorization": f"Bearer {key}"}
    )
    assert schema.status_code == 200
    schema_file = tmp_path / "schema.json"
    schema_file.write_bytes(schema.content)
    bin_dir = str(Path(sys.executable).parent)
    result = subprocess.run(
        [
            str(Path(bin_dir) / "openapi-python-client"),
            "generate",
            "--path",
            str(schema_file),
            "--meta",
            "none",
            "--output-path",
            str(tmp_path / "wfsdk"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PATH": bin_dir + os.pathsep + os.environ["PATH"]},
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "Warning" not in output and "Unable to" not in output, output
    sys.path.insert(0, str(tmp_path))
    try:
        yield importlib.import_module("wfsdk"), live_server.url, key
    finally:
        sys.path.remove(str(tmp_path))
        for name in [name for name in sys.modules if name.startswith("wfsdk")]:
            del sys.modules[name]


def test_generated_client_creates_and_lists_workflows(sdk):
    package, base_url, key = sdk
    models = importlib.import_module("wfsdk.models")
    create = importlib.import_module("wfsdk.api.workflows.workflows_create")
    listing = importlib.import_module("wfsdk.api.workflows.workflows_list")
    retrieve = importlib.import_module("wfsdk.api.workflows.workflows_retrieve")
    client = package.AuthenticatedClient(base_url=base_url, token=key)
    entity_type = make_entity_type()

    body = models.WorkflowCreateRequest(
        name="From the SDK",
        entity_type_id=entity_type.id,
        steps=[
            models.AiGenerateStepRequest(
                type_=models.AiGenerateStepRequestType.AI_GENERATE,
                config=models.AiGenerateConfig(
                    prompt="Describe {{ entity.title }}", output_field="description"
                ),
            ),
            models.ConditionStepRequest(
                type_=models.ConditionStepRequestType.CONDITION,
                config=models.ConditionConfig(
                    if_=models.ConditionComparison(
                        field="description", operator=models.ConditionComparisonOperator.EXISTS
                    )
                ),
            ),
            models.PublishStepRequest(
                type_=models.PublishStepRequestType.PUBLISH,
                config=models.PublishConfig(status=models.PublishConfigStatus.PUBLISHED),
            ),
        ],
    )
    created = create.sync(client=client, body=body)
    assert isinstance(created, models.WorkflowDetail)
    assert created.steps_count == 3

    fetched = retrieve.sync(client=client, id=created.id)
    assert isinstance(fetched.steps[0], models.AiGenerateStep)
    assert fetched.steps[0].config.output_field == "description"
    assert isinstance(fetched.steps[1], models.ConditionStep)
    assert isinstance(fetched.steps[2], models.PublishStep)

    rows = listing.sync(client=client)
    assert [row.id for row in rows] == [created.id]
    assert rows[0].last_run_at is None
