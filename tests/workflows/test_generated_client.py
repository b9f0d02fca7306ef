"""An SDK generated from the served OpenAPI schema works against the server, with step
configs typed per step type: each test uses the generated client's typed calls and models,
as a developer would, and each answer parses into its model (a field the schema types
otherwise fails, or reads as something else)."""

import importlib
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
from django.contrib.auth import get_user_model

from jobs.experiments.human import human_decide
from jobs.experiments.models import Experiment
from tests.factories import (
    experiment_run_inline,
    make_entities,
    make_entity_type,
    make_key,
    make_workflow,
    run_inline,
)

pytestmark = pytest.mark.django_db(transaction=True)

SCHEMA_READER = "sdk-schema-reader"


@pytest.fixture(scope="module")
def package(live_server, django_db_setup, django_db_blocker, tmp_path_factory):
    """The SDK, generated once for the module (generating takes seconds) from the schema as
    the server serves it."""
    with django_db_blocker.unblock():  # (the live server's thread asks the blocker too)
        key = make_key(SCHEMA_READER)
        try:
            schema = httpx.get(
                f"{live_server.url}/api/v1/schema?format=json",
                headers={"Authorization": f"Bearer {key}"},
            )
        finally:
            get_user_model().objects.filter(username=SCHEMA_READER).delete()
    assert schema.status_code == 200, schema.text
    tmp_path = tmp_path_factory.mktemp("sdk")
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
        yield importlib.import_module("wfsdk")
    finally:
        sys.path.remove(str(tmp_path))
        for name in [name for name in sys.modules if name.startswith("wfsdk")]:
            del sys.modules[name]


@pytest.fixture
def sdk(package, live_server):
    """The SDK's models, an operation by its id (`sdk.op("workflows_list")`), and a client
    with a key that may do everything, raising on a status the schema does not document."""

    def op(operation_id: str):
        tag = next(Path(package.__file__).parent.glob(f"api/*/{operation_id}.py")).parent.name
        return importlib.import_module(f"wfsdk.api.{tag}.{operation_id}")

    return SimpleNamespace(
        models=importlib.import_module("wfsdk.models"),
        op=op,
        client=package.AuthenticatedClient(
            base_url=live_server.url, token=make_key(), raise_on_unexpected_status=True
        ),
    )


def test_generated_client_creates_and_lists_workflows(sdk):
    models, client = sdk.models, sdk.client
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
    created = sdk.op("workflows_create").sync(client=client, body=body)
    assert isinstance(created, models.WorkflowDetail)
    assert created.steps_count == 3

    fetched = sdk.op("workflows_retrieve").sync(client=client, id=created.id)
    assert isinstance(fetched.steps[0], models.AiGenerateStep)
    assert fetched.steps[0].config.output_field == "description"
    assert isinstance(fetched.steps[1], models.ConditionStep)
    assert isinstance(fetched.steps[2], models.PublishStep)

    rows = sdk.op("workflows_list").sync(client=client)
    assert [row.id for row in rows] == [created.id]
    assert rows[0].last_run_at is None


PUBLISH = [{"id": "pub", "type": "publish", "config": {}}]


def test_a_run_reads_with_its_budget_or_none(sdk):
    """`budget` is null for a run without one: the schema said a `RunBudget` object (`type:
    object` beside the nullable `allOf`), so the SDK failed on every such run."""
    models, client = sdk.models, sdk.client
    entity_type = make_entity_type()
    ids = make_entities(entity_type, 2)
    workflow = make_workflow(entity_type, PUBLISH)
    run = sdk.op("workflows_run_create")
    plain = run.sync(client=client, id=workflow.pk, body=models.RunStartRequest(entity_ids=ids))
    capped = run.sync(
        client=client,
        id=workflow.pk,
        body=models.RunStartRequest(
            entity_ids=ids[:1], budget=models.BudgetRequest(max_tokens=1000)
        ),
    )
    run_inline(plain.run_id)

    got = sdk.op("workflows_runs_retrieve").sync(
        client=client, workflow_id=workflow.pk, id=plain.run_id
    )
    assert isinstance(got, models.Run)
    assert got.budget is None
    assert got.status == models.RunStatusEnum.COMPLETED
    listed = sdk.op("workflows_runs_list").sync(client=client, workflow_id=workflow.pk)
    assert [(row.id, row.budget) for row in listed][1] == (plain.run_id, None)
    assert isinstance(listed[0].budget, models.RunBudget)
    assert (listed[0].id, listed[0].budget.max_tokens) == (capped.run_id, 1000)


def test_an_experiment_s_results_read_a_human_pick_as_a_username_and_a_time_in_ms(sdk):
    """A human scorer's pick was served as the user's integer key and an ISO 8601 time: a
    review's `decidedBy` is a username, and every other time ms since the epoch."""
    models, client = sdk.models, sdk.client
    unset = importlib.import_module("wfsdk.types").UNSET
    entity_type = make_entity_type()
    ids = make_entities(entity_type, 2)
    workflow = make_workflow(entity_type, PUBLISH)
    body = models.ExperimentStartRequest(
        candidate=1,
        entity_ids=ids,
        scorers=[models.ScorerRequest(type_=models.ScorerTypeEnum.HUMAN, name="people")],
    )
    started = sdk.op("workflows_experiments_create").sync(
        client=client, workflow_id=workflow.pk, body=body
    )
    experiment = experiment_run_inline(Experiment.objects.get(pk=started.id))
    person = get_user_model().objects.create(username="picker")
    picked = experiment.results.order_by("pk").first()
    human_decide(
        experiment_id=experiment.pk,
        result_id=picked.pk,
        scorer="people",
        choice="tie",
        comment="same",
        user_id=person.pk,
    )

    rows = sdk.op("experiments_results_list").sync(client=client, id=experiment.pk)
    verdicts = {row.entity_id: row.verdicts[0] for row in rows}
    decided, open_ = verdicts.pop(picked.entity_id), verdicts.popitem()[1]
    assert (decided.winner, decided.decided_by) == ("tie", "picker")
    assert isinstance(decided.decided_at, int)
    assert (open_.winner, open_.decided_at, open_.decided_by) == (None, unset, unset)


WAITS = {
    "review": {"id": "w", "type": "review", "config": {"instructions": "Check it."}},
    "event": {
        "id": "w",
        "type": "wait_for_event",
        "config": {"event": "price.approved", "key": "{{ entity.title }}", "timeoutMinutes": 60},
    },
    "delay": {"id": "w", "type": "delay", "config": {"minutes": 30}},
}


def test_a_waiting_item_reads_what_it_waits_for_as_its_kind_s_model(sdk, package, live_server):
    """`waitingFor` was a free-form object: an SDK read it as a dict. Each kind of wait now
    has its shape (`WaitingForReview`, `WaitingForEvent`, `WaitingForDelay`, ...), told
    apart by `kind`."""
    models, client = sdk.models, sdk.client
    entity_type = make_entity_type()
    [entity_id] = make_entities(entity_type, 1)
    items = sdk.op("workflows_runs_items_list")
    waiting = {}
    for kind, step in WAITS.items():
        workflow = make_workflow(entity_type, [step, *PUBLISH])
        started = sdk.op("workflows_run_create").sync(
            client=client, id=workflow.pk, body=models.RunStartRequest(entity_ids=[entity_id])
        )
        run_inline(started.run_id)
        [item] = items.sync(client=client, workflow_id=workflow.pk, id=started.run_id)
        assert item.status == models.ItemStatusEnum.WAITING
        waiting[kind] = (workflow.pk, started.run_id, item.waiting_for)

    review = waiting["review"][2]
    assert isinstance(review, models.WaitingForReview)
    [pending] = sdk.op("reviews_list").sync(client=client, run_id=waiting["review"][1])
    assert review.review_id == pending.id
    event = waiting["event"][2]
    assert isinstance(event, models.WaitingForEvent)
    assert (event.event, event.key) == ("price.approved", "Item 0")
    assert isinstance(event.timeout_at, int)
    delay = waiting["delay"][2]
    assert isinstance(delay, models.WaitingForDelay)
    assert isinstance(delay.until, int)
    # A reader who may not read entities sees no key, rendered from the entity's data.
    runs_only = package.AuthenticatedClient(
        base_url=live_server.url, token=make_key(perms=["jobs.view_run"])
    )
    workflow_id, run_id, _ = waiting["event"]
    [item] = items.sync(client=runs_only, workflow_id=workflow_id, id=run_id)
    assert isinstance(item.waiting_for, models.WaitingForEvent)
    assert item.waiting_for.key is None
