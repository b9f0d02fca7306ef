"""Takes a batch of entities through a workflow version's steps, step by step.

Step-major order (every entity through step 1, then step 2, ...) is what lets a step batch
its work for a whole chunk: one transaction to publish 100 entities, 16 model calls in flight.
The same engine serves runs (with a committer that persists) and the test endpoint (dry run).
"""

import logging

from django.db import Error as DatabaseError

from workflows.steps import registry
from workflows.steps.base import internal_error
from workflows.steps.runtime import EntityState, StepContext

logger = logging.getLogger(__name__)


def steps_run(
    *,
    states: list[EntityState],
    steps: list[dict],
    run_id: str,
    workflow_id: str,
    dry_run: bool = False,
    committer=None,
    cancelled=None,
) -> None:
    """Run `steps` over `states`, resuming each entity at its `next_step`. Afterwards every
    state has an outcome: completed, skipped, failed or (when `cancelled()`) cancelled."""
    for index, step in enumerate(steps):
        if cancelled is not None and cancelled():
            for state in states:
                if state.alive:
                    state.outcome = "cancelled"
            return
        batch = [state for state in states if state.alive and state.next_step == index]
        if not batch:
            continue
        step_type = registry.get(step["type"])
        ctx = StepContext(
            run_id=run_id,
            workflow_id=workflow_id,
            step_id=step["id"],
            step_index=index,
            is_last_step=index == len(steps) - 1,
            dry_run=dry_run,
            committer=committer,
            cancelled=cancelled,
        )
        try:
            step_type.run_batch(batch, step_type.with_defaults(step["config"]), ctx)
        except DatabaseError:
            raise  # the database went away: the chunk is retried from its checkpoints
        except Exception as exc:
            # A defect in a step must fail its entities, not wedge the run in a retry loop.
            logger.exception("Step %s (%s) crashed", step["id"], step["type"])
            for state in batch:
                if state.alive and state.next_step == index:
                    state.fail(step["id"], internal_error(step["id"], exc))
        _settle_unfinished(batch, index, step["id"], ctx)
    for state in states:
        if state.alive:
            state.outcome = "completed"


def _settle_unfinished(batch: list[EntityState], index: int, step_id: str, ctx) -> None:
    """An entity a step left where it was, alive, was not handled: a cancel stopped the step
    before it (it ends cancelled), or the step lost it (it fails, so that no entity that
    skipped the rest of the workflow is ever recorded as completed)."""
    unfinished = [state for state in batch if state.alive and state.next_step == index]
    if not unfinished:
        return
    if ctx.is_cancelled():
        for state in unfinished:
            state.outcome = "cancelled"
        return
    logger.error("Step %s left %d entities unhandled", step_id, len(unfinished))
    for state in unfinished:
        state.fail(step_id, f"Internal error in step {step_id}: it did not handle the entity.")
