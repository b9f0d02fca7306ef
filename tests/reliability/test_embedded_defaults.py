"""The embedded defaults (SQLite, the demo's engine) run a workflow end to end.

The suite runs on PostgreSQL; the pipeline's statements that differ on SQLite (the claim, the
outcomes, the entity commit, the counters) are run here in a process of their own on a SQLite
database: chunk by chunk as a worker would, then a chunk delivered twice at once, whose stale
delivery must write nothing."""

import json
import os
import subprocess
import sys

from tests.processes import ROOT


def on_sqlite(tmp_path, script: str, **env: str) -> dict:
    """Migrate a new SQLite database with the demo's settings (`env` adds some), run `script`
    in `manage.py shell` on it, and return the JSON the script printed last."""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.base",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "CELERY_BROKER_URL": "filesystem://",
        "LOG_LEVEL": "WARNING",
        **env,
    }
    manage = [sys.executable, "manage.py"]
    subprocess.run([*manage, "migrate", "-v0"], cwd=ROOT, env=env, check=True, timeout=120)
    done = subprocess.run(
        [*manage, "shell", "-c", script],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


SCRIPT = r"""
import json
from unittest import mock

from entities.models import Entity
from entities.services import entities_bulk_create, entity_type_create
from jobs.engine.chunk import chunk_execute
from jobs.engine.committer import ChunkCommitter
from jobs.engine.leases import items_claim
from jobs.engine.outcomes import chunk_finish
from jobs.engine.states import states_load
from workflows.steps.runtime import Outcome
from jobs.models import Run
from jobs.services import run_start
from workflows.services import workflow_create

entity_type = entity_type_create(name="product")
ids = entities_bulk_create(
    entity_type=entity_type,
    items=[{"data": {"title": f" Item {i} ", "price": i * 10}} for i in range(6)]
    + [{"data": {"title": "", "price": 5}}],
)
workflow = workflow_create(
    name="w",
    entity_type=entity_type,
    steps=[
        {"id": "tidy", "type": "transform", "config": {"operations": [
            {"op": "trim", "field": "title"},
            {"op": "set", "field": "slug", "value": "{{ entity.title | lower }}"},
        ]}},
        {"id": "check", "type": "validate", "config": {"rules": [
            {"field": "title", "type": "string", "minLength": 1},
        ]}},
        {"id": "cheap", "type": "condition", "config": {
            "if": {"field": "price", "operator": "lt", "value": 50},
        }},
        {"id": "pub", "type": "publish", "config": {}},
    ],
)
with mock.patch("jobs.queue.chunks_enqueue"):  # no worker: the chunks are run below
    run = run_start(workflow_id=workflow.pk, entity_ids=ids)
for chunk in (0, 1, 2, 1):  # chunk 1 is delivered twice: the second finds nothing to do
    chunk_execute(run_id=run.pk, chunk=chunk)
run = Run.objects.get(pk=run.pk)

with mock.patch("jobs.queue.chunks_enqueue"):
    again = run_start(workflow_id=workflow.pk, entity_ids=ids[:3])
again = Run.objects.select_related("workflow_version", "workflow__entity_type").get(pk=again.pk)


def finish(leases):
    states = states_load(leases, None)
    for state in states:
        state.outcome, state.step_id = Outcome.COMPLETED, "pub"
    states[0].fail("check", ERROR)
    states[1].usage = {"inputTokens": 3, "outputTokens": 4}
    leased = {lease.entity_id: (lease.pk, lease.attempts) for lease in leases}
    return chunk_finish(ChunkCommitter(again.pk, leased, seen_at=0.0), states)


ERROR = 'said "no" \u00e9 \U0001f600 \\ end'
stale = items_claim(again, 0)
fresh = items_claim(again, 0)  # delivered again while the first delivery still works
stale_done = finish(stale)
fresh_done = finish(fresh)
again = Run.objects.get(pk=again.pk)
print(json.dumps({
    "run": [run.status, run.completed, run.failed, run.cancelled, run.total],
    "items": {i.entity_id: [i.status, i.step_id, i.error, i.attempts] for i in run.items.all()},
    "entities": {e.pk: [e.status, e.version, e.data] for e in Entity.objects.all()},
    "ids": ids,
    "twice": {
        "done": [stale_done, fresh_done],
        "run": [again.completed, again.failed, again.input_tokens, again.output_tokens],
        "items": [[i.status, i.error, i.usage, i.attempts] for i in again.items.order_by("pk")],
        "error": ERROR,
    },
}))
"""


def test_a_run_goes_through_on_sqlite(tmp_path):
    result = on_sqlite(tmp_path, SCRIPT, RUN_CHUNK_SIZE="3")
    ids = result["ids"]
    assert result["run"] == ["failed", 6, 1, 0, 7]  # one entity failed, so the run did
    items, entities = result["items"], result["entities"]
    assert all(items[entity_id][3] == 1 for entity_id in ids)  # each claimed once
    for i, entity_id in enumerate(ids[:5]):  # published: prices 0 to 40
        assert items[entity_id][:3] == ["completed", "pub", ""]
        assert entities[entity_id] == [
            "published",
            2,
            {"title": f"Item {i}", "price": i * 10, "slug": f"item {i}"},
        ]
    assert items[ids[5]][:2] == ["skipped", "cheap"]  # price 50: stopped, its changes kept
    assert entities[ids[5]][0:2] == ["draft", 2]
    assert items[ids[6]][:2] == ["failed", "check"]
    assert "title" in items[ids[6]][2]
    assert entities[ids[6]][1] == 1  # nothing written
    twice = result["twice"]
    assert twice["done"] == [False, True]  # the stale delivery wrote and counted nothing
    assert twice["run"] == [2, 1, 3, 4]
    assert twice["items"] == [
        ["failed", twice["error"], {}, 2],
        ["completed", "", {"inputTokens": 3, "outputTokens": 4}, 2],
        ["completed", "", {}, 2],
    ]
    assert twice["error"] == 'said "no" é 😀 \\ end'


WAITS_SCRIPT = r"""
import json
from unittest import mock

from django.contrib.auth import get_user_model

from entities.models import Entity
from entities.services import entities_bulk_create, entity_type_create
from jobs.engine.chunk import chunk_execute
from jobs.models import Review, Run, RunItem
from jobs.cancel import run_cancel
from jobs.services import run_start
from jobs.waits.review.audit import decision_revisions
from jobs.waits.review.selectors import review_workflows
from jobs.waits.review.services import review_decide, reviews_decide
from jobs.engine.waits import run_waits_resume
from workflows.services import workflow_create

entity_type = entity_type_create(name="product")
ids = entities_bulk_create(
    entity_type=entity_type, items=[{"data": {"title": f"Item {i}"}} for i in range(4)]
)
workflow = workflow_create(
    name="w",
    entity_type=entity_type,
    steps=[
        {"id": "tidy", "type": "transform", "config": {"operations": [
            {"op": "set", "field": "slug", "value": "{{ entity.title | lower }}"},
        ]}},
        {"id": "check", "type": "review", "config": {"instructions": "{{ entity.slug }}?"}},
        {"id": "pub", "type": "publish", "config": {}},
    ],
)
user = get_user_model().objects.create_superuser("boss")


def chunks(run_id):
    return sorted(set(RunItem.objects.filter(run_id=run_id).values_list("chunk", flat=True)))


with mock.patch("jobs.queue.chunks_enqueue"), mock.patch("jobs.queue.waits_resume_enqueue"):
    run = run_start(workflow_id=workflow.pk, entity_ids=ids[:3])
    for chunk in chunks(run.pk):
        chunk_execute(run_id=run.pk, chunk=chunk)
    waiting = Run.objects.get(pk=run.pk).waiting
    reviews = dict(Review.objects.filter(run=run).values_list("entity_id", "pk"))
    review_decide(review_id=reviews[ids[0]], decision="approve", user=user, data={"slug": "x"})
    reviews_decide(review_ids=[reviews[ids[1]]], decision="reject", user=user)
    resumed = run_waits_resume(run_id=run.pk)
    for chunk in chunks(run.pk):
        chunk_execute(run_id=run.pk, chunk=chunk)
    middle = Run.objects.get(pk=run.pk)
    cancelled = run_cancel(run_id=run.pk)
print(json.dumps({
    "waiting": waiting,
    "resumed": resumed,
    "middle": [middle.status, middle.completed, middle.waiting],
    "cancelled": [cancelled.status, cancelled.completed, cancelled.cancelled, cancelled.waiting],
    "items": {i.entity_id: i.status for i in RunItem.objects.filter(run=run)},
    "entities": {e.pk: [e.status, e.data] for e in Entity.objects.all()},
    "reviews": {r.entity_id: r.status for r in Review.objects.all()},
    # The Reviews page's workflow filter and decided reviews' revisions (a JSON lookup and
    # DISTINCT ON, which SQLite's backend does not have).
    "review_workflows": [w.pk == workflow.pk for w in review_workflows()],
    "decision_revisions": len(decision_revisions(Review.objects.exclude(status="pending"))),
    "ids": ids,
}))
"""


def test_entities_wait_and_resume_on_sqlite(tmp_path):
    result = on_sqlite(tmp_path, WAITS_SCRIPT, RUN_CHUNK_SIZE="2")
    approved, rejected, left = result["ids"][:3]
    assert (result["waiting"], result["resumed"]) == (3, 2)
    assert result["middle"] == ["running", 2, 1]
    assert result["cancelled"] == ["cancelled", 2, 1, 0]
    assert result["items"] == {approved: "completed", rejected: "skipped", left: "cancelled"}
    assert result["entities"][approved] == ["published", {"title": "Item 0", "slug": "x"}]
    assert result["entities"][rejected] == ["draft", {"title": "Item 1"}]
    assert result["reviews"] == {approved: "approved", rejected: "rejected", left: "cancelled"}
    assert result["review_workflows"] == [True]
    assert result["decision_revisions"] == 1  # the approved entity's publish


BATCH_SCRIPT = r"""
import json
from unittest import mock

from entities.models import Entity
from entities.services import entities_bulk_create, entity_type_create
from jobs.engine.chunk import chunk_execute
from jobs.models import AiBatch, Run, RunItem
from jobs.services import run_start
from jobs.waits.ai_batch.services import ai_batches_poll
from jobs.engine.waits import run_waits_resume
from workflows.services import workflow_create

entity_type = entity_type_create(name="product")
ids = entities_bulk_create(
    entity_type=entity_type, items=[{"data": {"title": f"Item {i}"}} for i in range(3)]
    + [{"data": {"title": "bad [local:fail]"}}],
)
workflow = workflow_create(
    name="w",
    entity_type=entity_type,
    steps=[
        {"id": "describe", "type": "ai_generate", "config": {
            "prompt": "{{ entity.title }}", "outputField": "d", "mode": "batch"}},
        {"id": "pub", "type": "publish", "config": {}},
    ],
)


def chunks(run_id):
    return sorted(set(RunItem.objects.filter(run_id=run_id).values_list("chunk", flat=True)))


queued = [
    mock.patch("jobs.queue.chunks_enqueue"),
    mock.patch("jobs.queue.waits_resume_enqueue"),
    mock.patch("jobs.waits.ai_batch.queue.ai_batch_submit_enqueue"),
]
for patch in queued:
    patch.start()
run = run_start(workflow_id=workflow.pk, entity_ids=ids)
for chunk in chunks(run.pk):
    chunk_execute(run_id=run.pk, chunk=chunk)
waiting = Run.objects.get(pk=run.pk).waiting
polls = 0
while Run.objects.get(pk=run.pk).status == "running" and polls < 20:
    ai_batches_poll()  # submits (its task was not run), polls, answers the retry live
    run_waits_resume(run_id=run.pk)
    for chunk in chunks(run.pk):
        chunk_execute(run_id=run.pk, chunk=chunk)
    polls += 1
run = Run.objects.get(pk=run.pk)
result = {
    "waiting": waiting,
    "run": [run.status, run.completed, run.failed],
    "batches": [[b.attempt, b.live, b.status] for b in AiBatch.objects.order_by("attempt")],
    "entities": {e.pk: [e.status, e.data] for e in Entity.objects.all()},
    "errors": {i.entity_id: i.error for i in RunItem.objects.filter(run=run)},
    "ids": ids,
}
# Retention's statements on SQLite: the ended run, aged, pruned in batches of 3 rows.
from datetime import timedelta
from django.utils import timezone
from jobs.retention import retention_prune

Run.objects.filter(pk=run.pk).update(completed_at=timezone.now() - timedelta(days=100))
batches = []
while (pruned := retention_prune(limit=3)).more:
    batches.append(pruned.rows["runs_prune"])
result["pruned"] = [batches, Run.objects.count(), RunItem.objects.count(), AiBatch.objects.count()]
print(json.dumps(result))
"""


def test_a_batch_mode_run_goes_through_on_sqlite(tmp_path):
    result = on_sqlite(tmp_path, BATCH_SCRIPT, AI_LOCAL_BATCH_DELAY_S="0")
    *good, bad = result["ids"]
    assert result["waiting"] == 4
    assert result["run"] == ["failed", 3, 1]
    assert result["batches"] == [[1, False, "ended"], [2, True, "ended"]]
    for entity_id in good:
        status, data = result["entities"][entity_id]
        assert status == "published" and data["d"].endswith(data["title"])
    assert "[local:fail]" in result["errors"][bad]
    batches, *left = result["pruned"]
    assert len(batches) > 3 and set(batches) <= {2, 3} and left == [0, 0, 0]


SCHEDULES_SCRIPT = r"""
import json
from datetime import datetime, timedelta, timezone
from unittest import mock

from django_celery_beat.models import CrontabSchedule, PeriodicTask

from entities.services import entities_bulk_create, entity_type_create
from jobs.filter_runs import run_items_make
from jobs.schedules import schedule_fire
from workflows.services import workflow_create, workflow_update

entity_type = entity_type_create(name="product")
entities_bulk_create(entity_type=entity_type, items=[{"data": {"title": "a"}}] * 3)
workflow = workflow_create(
    name="w",
    entity_type=entity_type,
    steps=[{"type": "publish", "config": {}}],
    triggers=[{"on": "schedule", "cron": "0 3 * * *", "timezone": "Europe/Paris"}],
)
task = PeriodicTask.objects.select_related("crontab").get()  # deleted with the trigger below
at = datetime(2026, 12, 3, 2, 0, 30, tzinfo=timezone.utc)
with mock.patch("jobs.queue.items_make_enqueue"):
    first = schedule_fire(workflow_id=workflow.pk, trigger_index=0, now=at)
    skipped = schedule_fire(workflow_id=workflow.pk, trigger_index=0, now=at + timedelta(1))
made = run_items_make(run_id=first.run_id)
workflow_update(workflow_id=workflow.pk, triggers=[])
print(json.dumps({
    "task": [task.name, task.crontab.hour, str(task.crontab.timezone), task.enabled],
    "fires": [first.outcome, skipped.outcome, made],
    "left": PeriodicTask.objects.count(),
    "crontabs": CrontabSchedule.objects.filter(hour="3").count(),
}))
"""


def test_schedules_are_stored_and_fire_on_sqlite(tmp_path):
    """The demo's engine: beat's tables migrate, a schedule trigger becomes a PeriodicTask,
    and its fires' JSON lookups (the previous run still open) work on SQLite."""
    result = on_sqlite(tmp_path, SCHEDULES_SCRIPT)
    name, hour, zone, enabled = result["task"]
    assert name.endswith(":trigger:0") and (hour, zone, enabled) == ("3", "Europe/Paris", True)
    assert result["fires"] == ["started", "skipped", 3]
    assert result["left"] == result["crontabs"] == 0


HELD_SCRIPT = r"""
import json
from unittest import mock

from entities.services import entities_bulk_create, entity_type_create
from jobs.engine.budget import RunBudget
from jobs.filter_runs import run_items_make, run_start_over_filter
from jobs.models import Run, RunItem
from jobs.services import run_start
from workflows.services import workflow_create

entity_type = entity_type_create(name="product")
ids = entities_bulk_create(entity_type=entity_type, items=[{"data": {"title": "a"}}] * 4)
workflow = workflow_create(
    name="w", entity_type=entity_type, steps=[{"type": "publish", "config": {}}]
)
with mock.patch("jobs.queue.chunks_enqueue"), mock.patch("jobs.queue.items_make_enqueue"):
    first = run_start(workflow_id=workflow.pk, entity_ids=ids[:2], budget={"maxTokens": 100})
    by_ids = run_start(workflow_id=workflow.pk, entity_ids=ids[1:3])
    by_filter = run_start_over_filter(workflow_id=workflow.pk, entity_filter={})
    run_items_make(run_id=by_filter.pk)
budget = RunBudget.of(first)
admitted = budget.reserve([{"inputTokens": 60}, {"inputTokens": 60}, {"inputTokens": 60}])
budget.adjust(-20, 0)


def items(run):
    return {i: s for i, s in RunItem.objects.filter(run=run).values_list("entity_id", "status")}


print(json.dumps({
    "ids": ids,
    "by_ids": [items(by_ids), Run.objects.get(pk=by_ids.pk).completed],
    "by_filter": [items(by_filter), Run.objects.get(pk=by_filter.pk).completed],
    "error": RunItem.objects.get(run=by_ids, entity_id=ids[1]).error,
    "first": first.pk,
    "budget": [admitted, Run.objects.get(pk=first.pk).spent_tokens],
}))
"""


def test_held_entities_are_skipped_and_budgets_reserved_on_sqlite(tmp_path):
    result = on_sqlite(tmp_path, HELD_SCRIPT)
    a, b, c, d = result["ids"]
    # The second run by ids: b is held by the first; the filter run: a, b by the first, c by
    # the second.
    assert result["by_ids"] == [{b: "skipped", c: "pending"}, 1]
    assert result["by_filter"] == [{a: "skipped", b: "skipped", c: "skipped", d: "pending"}, 3]
    assert (
        result["error"]
        == f"Left out: the entity is in run {result['first']} of this workflow, still open."
    )
    assert result["budget"] == [2, 100]  # 60 + 60 reserved (the third past 100), 20 given back


RESTART_SCRIPT = r"""
import json
from unittest import mock

from entities.services import entities_bulk_create, entity_type_create
from jobs.engine.chunk import chunk_execute
from jobs.engine.leases import items_claim
from jobs.models import Run, RunLog
from jobs.services import run_start
from workflows.services import workflow_create

entity_type = entity_type_create(name="product")
ids = entities_bulk_create(
    entity_type=entity_type, items=[{"data": {"title": f"Item {i}"}} for i in range(4)]
)
workflow = workflow_create(
    name="w", entity_type=entity_type, steps=[{"id": "pub", "type": "publish", "config": {}}]
)
with mock.patch("jobs.queue.chunks_enqueue"):
    run = run_start(workflow_id=workflow.pk, entity_ids=ids)
items_claim(run, 0)  # chunk 0 held by the last demo's worker, stopped mid-chunk (Ctrl-C)
with (
    mock.patch("jobs.management.commands.demo.call_command"),  # no migrate, no collectstatic
    mock.patch("jobs.queue.chunks_enqueue") as queued,
):
    from django.core.management import call_command
    call_command("demo", no_serve=True, stdout=open("/dev/null", "w"))
for chunk in (0, 1):  # the worker of the new demo takes the chunks queued again
    chunk_execute(run_id=run.pk, chunk=chunk)
run = Run.objects.get(pk=run.pk)
print(json.dumps({
    "queued": [[call.args[0], sorted(call.args[1])] for call in queued.call_args_list],
    "run": [run.pk, run.status, run.completed],
    "log": list(RunLog.objects.filter(run=run, level="warning").values_list("message", flat=True)),
}))
"""


def test_the_demo_queues_again_what_its_last_processes_held(tmp_path):
    """The filesystem broker hands a message out by deleting its file: a demo stopped with
    Ctrl-C mid-chunk lost the chunk, and the restarted demo showed the run `running` with no
    progress until the stalled-run check, 10 minutes later. The demo's start queues the
    unfinished chunks of open runs again."""
    result = on_sqlite(tmp_path, RESTART_SCRIPT, RUN_CHUNK_SIZE="2")
    run_id = result["run"][0]
    assert result["queued"] == [[run_id, [0, 1]]]
    assert result["run"] == [run_id, "completed", 4]
    assert (
        "Queued again as the demo started (its processes before were stopped): "
        "queued 2 unfinished chunks again."
    ) in result["log"]
