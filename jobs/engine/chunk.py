"""One delivery of one chunk, start to end: claim its items, give up on those whose
deliveries kept dying (a redelivery only), load the working copies, take them through the
steps, finish. Safe to run again for the same chunk: the leases decide which delivery acts
on each entity."""

import time

from config.metrics import CHUNK_SECONDS
from entities.events import ChangeOrigin
from entities.revisions import Source
from jobs.engine.budget import RunBudget
from jobs.engine.committer import ChunkCommitter
from jobs.engine.leases import items_claim
from jobs.engine.outcomes import chunk_finish, items_give_up
from jobs.engine.parking import waits_apply
from jobs.engine.states import states_load
from jobs.engine.steps import steps_run
from jobs.lifecycle import run_end_if_done, run_mark_running
from jobs.models import Run, RunStatus
from jobs.reverts import changed_since, revert_forced, revert_of, revert_states


def chunk_execute(*, run_id: str, chunk: int) -> None:
    with CHUNK_SECONDS.time():
        _chunk_execute(run_id, chunk)


def _chunk_execute(run_id: str, chunk: int) -> None:
    run = Run.objects.select_related("workflow_version", "workflow__entity_type").get(pk=run_id)
    seen_at = time.monotonic()
    if run.is_ended:
        return
    if run.status == RunStatus.PENDING:
        run_mark_running(run_id=run_id)
    items = items_claim(run, chunk)  # never an item claimed RUN_MAX_ATTEMPTS times already
    if not items or any(item.attempts > _first_attempt(item) for item in items):
        # Only a redelivery can hold such items (each delivery claims every unfinished item
        # of its chunk), so a first delivery, the common case, skips this query.
        items_give_up(run_id, chunk)
    if items:
        # Every entity of a run is of the workflow's entity type (checked at start).
        states = states_load(items, run.workflow.entity_type.schema)
        waits_apply(checkpoints=[item.state for item in items], states=states)
        reverting = revert_of(run) is not None
        committer = ChunkCommitter(
            run_id,
            {i.entity_id: (i.pk, i.attempts) for i in items},
            seen_at=seen_at,
            origin=ChangeOrigin(
                run.workflow_id, (run.trigger or {}).get("depth", 0), run_id=run.pk
            ),
            entity_type_id=run.workflow.entity_type_id,
            budget=RunBudget.of(run),
            cancelled=run.cancel_requested_at is not None,
            revision_type=Source.REVERT if reverting else Source.RUN,
            changed_since=changed_since if reverting and not revert_forced(run) else None,
        )
        if reverting:  # not the steps: each entity's values before the reverted run
            revert_states(
                run=run, states=states, logs=committer.logs, published=committer.published
            )
        else:
            steps_run(
                states=[state for state in states if state.alive],
                steps=run.workflow_version.steps,
                run_id=run_id,
                workflow_id=run.workflow_id,
                engine=committer,
            )
        if not chunk_finish(committer, states):
            return  # other chunks are still open: the last one to finish ends the run
    run_end_if_done(run_id=run_id)


def _first_attempt(item) -> int:
    """The attempt of an item's first delivery in its chunk: 1, or one past the attempt
    that parked it when it comes back from a wait (its checkpoint says which)."""
    return (item.state or {}).get("attempt", 0) + 1
