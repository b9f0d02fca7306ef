"""Test data built through the services, so tests exercise the code users hit."""

import json
import math
import time
from itertools import count

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission

from config.api.services import api_key_create, api_user_get_or_create
from entities import services as entity_services
from entities.models import EntityType

_seq = count(1)

PRODUCT_SCHEMA = {
    "type": "object",
    "properties": {
        "title": {"type": "string", "minLength": 1},
        "price": {"type": "number", "minimum": 0},
        "seo": {"type": "object", "properties": {"title": {"type": "string"}}},
    },
    "required": ["title"],
}


def make_key(
    username: str | None = None, *, read_only: bool = False, perms: list[str] | None = None
) -> str:
    """A key of a user who may do everything through the API (or only read); with `perms`
    (`["jobs.view_review"]`), of a new user with exactly those permissions."""
    if perms is None:
        user = api_user_get_or_create(username=username or f"user{next(_seq)}", read_only=read_only)
    else:
        user = get_user_model().objects.create(username=username or f"user{next(_seq)}")
        user.user_permissions.set(
            [
                Permission.objects.get(content_type__app_label=app, codename=codename)
                for app, codename in (perm.split(".") for perm in perms)
            ]
        )
    return api_key_create(user=user, read_only=read_only)[1]


def make_entity_type(*, name: str | None = None, schema=PRODUCT_SCHEMA) -> EntityType:
    return entity_services.entity_type_create(
        name=name or f"product-{next(_seq)}", description="Things we sell", schema=schema
    )


def make_entities(entity_type: EntityType, n: int, **extra) -> list[str]:
    items = [{"data": {"title": f"Item {i}", "price": i, **extra}} for i in range(n)]
    return entity_services.entities_bulk_create(entity_type=entity_type, items=items)


def make_workflow(entity_type: EntityType, steps: list[dict], **extra):
    from workflows.services import workflow_create

    return workflow_create(
        name=extra.pop("name", f"workflow-{next(_seq)}"),
        entity_type=entity_type,
        steps=steps,
        **extra,
    )


def run_inline(run_id: str) -> None:
    """Execute every chunk of a run in this process, as workers would (for unit tests)."""
    from jobs.engine.chunk import chunk_execute
    from jobs.lifecycle import run_end_if_done
    from jobs.models import ItemStatus, RunItem

    chunks = sorted(set(RunItem.objects.filter(run_id=run_id).values_list("chunk", flat=True)))
    for chunk in chunks:
        chunk_execute(run_id=run_id, chunk=chunk)
    # In a test whose data is committed, the session's real worker may have taken a chunk's
    # task first: its lease makes the call above pass that chunk by, so wait for the worker.
    deadline = time.monotonic() + 60
    running = RunItem.objects.filter(run_id=run_id, status=ItemStatus.RUNNING)
    while running.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    # Its items ended and counted, the worker may not have ended the run yet: the end is a
    # conditional move, which either of the two makes once.
    run_end_if_done(run_id=run_id)


def start_run(workflow, entity_ids: list[str], **extra):
    from jobs.services import run_start

    return run_start(workflow_id=workflow.pk, entity_ids=entity_ids, **extra)


# Experiments: a workflow of two versions that the fake OpenAI server answers apart.


def ai_generate_step(prompt: str) -> dict:
    return {
        "id": "gen",
        "type": "ai_generate",
        "config": {"prompt": prompt, "outputField": "description", "provider": "openai"},
    }


STEPS_AFTER_GENERATE = [
    {"id": "pub", "type": "publish", "config": {}},
    {"id": "ok", "type": "review", "config": {"instructions": "Check it."}},
]

# A scorer of each type, as `POST /workflows/:id/experiments` takes them.
SCORERS_OF_EACH_TYPE = [
    {"type": "rules", "name": "long enough", "rules": [{"field": "description", "minLength": 20}]},
    {
        "type": "judge",
        "name": "judge",
        "mode": "pairwise",
        "instructions": "Describe {{ entity.title }} well.",
        "provider": "openai",
    },
    {"type": "human", "name": "people"},
]


def make_versions(entity_type: EntityType, **extra):
    """A workflow whose live version 1 prompts "Short: …" and whose draft version 2 prompts
    "LONG: …" (see `answer_by_prompt`): the workflow and both versions."""
    from workflows.services import workflow_update

    workflow = make_workflow(
        entity_type,
        [ai_generate_step("Short: {{ entity.title }}"), *STEPS_AFTER_GENERATE],
        **extra,
    )
    workflow = workflow_update(
        workflow_id=workflow.pk,
        steps=[ai_generate_step("LONG: {{ entity.title }}"), *STEPS_AFTER_GENERATE],
        draft=True,
    )
    versions = {v.number: v for v in workflow.versions.all()}
    return workflow, versions[1], versions[2]


def answer_by_prompt(openai_server) -> None:
    """The fake OpenAI server answers the generator by its prompt (the candidate's answer is
    the longer), and a judge (asked with A and B) prefers the longer side."""
    from tests.servers import Reply

    def decide(request):
        prompt = request["messages"][-1]["content"]
        if "<A>" in prompt:
            a = prompt.split("<A>")[1].split("</A>")[0]
            b = prompt.split("<B>")[1].split("</B>")[0]
            winner = "A" if len(a) > len(b) else "B" if len(b) > len(a) else "tie"
            return Reply(text=json.dumps({"winner": winner, "reason": "longer"}))
        if prompt.startswith("LONG"):
            return Reply(text="A much longer and more detailed description.")
        return Reply(text="Short one.")

    openai_server.decide = decide


def experiment_run_inline(experiment):
    """Execute every chunk of an experiment in this process, as workers would; the
    experiment as it then stands."""
    from jobs.experiments.services import experiment_chunk_execute

    chunks = math.ceil(experiment.total / experiment.chunk_size)
    for chunk in range(chunks):
        experiment_chunk_execute(experiment_id=experiment.pk, chunk=chunk)
    experiment.refresh_from_db()
    return experiment


# A run that commits each entity twice: a publish between two transforms (v2, then v3).
PUBLISH_BETWEEN = [
    {
        "id": "a",
        "type": "transform",
        "config": {"operations": [{"op": "set", "field": "summary", "value": "first"}]},
    },
    {"id": "pub", "type": "publish", "config": {}},
    {
        "id": "b",
        "type": "transform",
        "config": {"operations": [{"op": "set", "field": "summary", "value": "second"}]},
    },
]
