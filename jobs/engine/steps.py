"""The step loop: takes a batch of entities through a workflow version's steps, step by step,
and guards each step, so that whatever a step does every entity ends with an outcome.

Step-major order (every entity through step 1, then step 2, ...) is what lets a step batch
its work for a whole chunk: one transaction to publish 100 entities, 16 model calls in flight.
Runs (with a `ChunkCommitter` as the engine) and the test endpoint (with `DryRun`) take this
same path. This is where a step type plugs in (`registry.get(type).run_batch`).
"""

import logging

from django.db import Error as DatabaseError

from workflows.steps import registry
from workflows.steps.base import internal_error
from workflows.steps.runtime import EntityState, Outcome, StepContext, StepEngine

logger = logging.getLogger(__name__)


def steps_run(
    *,
    states: list[EntityState],
    steps: list[dict],
    run_id: str,
    workflow_id: str,
    engine: StepEngine,
    dry_run: bool = False,
) -> None:
    """Run `steps` over `states`, resuming each entity at its `next_step`. Afterwards every
    state has an outcome: completed, stopped, failed or (once the run is cancelled)
    cancelled; or handed off, when another delivery of the chunk took it over."""
    for index, step in enumerate(steps):
        if engine.cancelled():
            break
        batch = [state for state in states if state.alive and state.next_step == index]
        if not batch:
            continue
        ctx = StepContext(
            run_id=run_id,
            workflow_id=workflow_id,
            step_id=step["id"],
            step_index=index,
            engine=engine,
            is_last_step=index == len(steps) - 1,
            dry_run=dry_run,
        )
        _step_run(step, batch, ctx)
    for state in states:
        if state.alive:
            # Past the last step, or stopped by a cancel before the next one.
            state.outcome = Outcome.CANCELLED if state.next_step < len(steps) else Outcome.COMPLETED


def _step_run(step: dict, batch: list[EntityState], ctx: StepContext) -> None:
    """One step for `batch`, guarded: the step type is looked up inside the guard (a stored
    version may name a type this deployment no longer has), any exception but a database
    error fails the entities the step had not finished, and an entity the step left at its
    step ends cancelled (the run was cancelled) or failed (a defect): never completed."""
    try:
        if step["type"] not in registry:
            raise UnknownStepType(step["type"])
        step_type = registry.get(step["type"])
        step_type.run_batch(batch, step_type.with_defaults(step["config"]), ctx)
    except DatabaseError:
        raise  # the database went away: the chunk is retried from its checkpoints
    except UnknownStepType as exc:
        logger.error("Step %s: %s", step["id"], exc)
        _fail_unfinished(batch, ctx, str(exc))
    except Exception as exc:
        # A defect in a step must fail its entities, not wedge the run in a retry loop.
        logger.exception("Step %s (%s) crashed", step["id"], step["type"])
        _fail_unfinished(batch, ctx, internal_error(step["id"], exc))
    left = [state for state in batch if state.alive and state.next_step == ctx.step_index]
    if left and not ctx.engine.cancelled():
        logger.error(
            "Step %s (%s) left %d entities unfinished", step["id"], step["type"], len(left)
        )
        _fail_unfinished(left, ctx, f"Internal error in step {step['id']}: it did not finish.")
    # Else they stay at this step: the loop ends them cancelled.


def _fail_unfinished(batch: list[EntityState], ctx: StepContext, message: str) -> None:
    for state in batch:
        if state.alive and state.next_step == ctx.step_index:
            state.fail(ctx.step_id, message)


class UnknownStepType(Exception):
    def __init__(self, type_name: str):
        super().__init__(
            f"Unknown step type {type_name!r}: this workflow version names a step type this "
            "deployment does not have."
        )
