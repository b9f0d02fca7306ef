"""Working copies: each claimed item's entity (or its checkpoint) as the `EntityState` the
steps work on, and what a checkpoint keeps of a state to resume from."""

import json

from jobs.engine.leases import Lease
from workflows.steps.runtime import EntityState


def states_load(items: list[Lease], schema: dict | None) -> list[EntityState]:
    """Each item's entity as a working copy, or its checkpoint. The entity's JSON text is
    parsed for the working copy, and kept for the committed copy (parsed only if needed:
    several times cheaper than a deep copy)."""
    states = []
    for item in items:
        entity = item.entity
        saved = item.state or {}  # parsed from JSON: its data and committed are apart
        if entity is None:
            state = EntityState(entity_id=item.entity_id, status="", data={}, committed={})
            state.fail("", "The entity no longer exists.")
        else:
            raw, status, version = entity
            state = EntityState(
                entity_id=item.entity_id,
                status=saved.get("status", status),
                data=saved["data"] if "data" in saved else json.loads(raw),
                committed=saved.get("committed"),
                committed_json=None if "committed" in saved else raw,
                entity_type_schema=schema,
                version=saved.get("version", version),
                outputs=saved.get("outputs", {}),
                usage=saved.get("usage", {}),
                next_step=item.next_step,
            )
        # A redelivery; an entity back from a wait is on its first delivery since parking.
        if item.attempts > saved.get("attempt", 0) + 1:
            state.log.append(
                ("warning", "", f"Resumed at step {item.next_step + 1} (attempt {item.attempts}).")
            )
        states.append(state)
    return states


def checkpoint_of(state: EntityState, *, with_data: bool) -> dict:
    """What a redelivered chunk resumes from. Right after a publish the working copy is what
    the entity holds, so it is read back from the entity instead of being written twice."""
    saved = {
        "outputs": state.outputs,
        "status": state.status,
        "version": state.version,
        "usage": state.usage,
    }
    if with_data:
        saved.update(data=state.data, committed=state.base())
    return saved
