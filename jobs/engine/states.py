"""Working copies: each claimed item's entity (or its checkpoint) as the `EntityState` the
steps work on, and what a checkpoint keeps of a state to resume from.

A checkpoint keeps what the run changed, not copies of the entity: the top-level keys it set
(`changes`) and removed (`removed`) since it last committed. Resumed, they are applied to the
entity as stored then, which is what committing them would do anyway (`apply_changes`: an
edit made meanwhile to other keys survives). So an entity parked for a week costs its
changes, not two copies of its data. (Checkpoints of workers from before this kept `data`
and `committed`; they are still read.)"""

import json

from jobs.engine.leases import Lease
from workflows.steps.runtime import EntityState, changes_apply, json_copy
from workflows.usage import Usage

ENTITY_GONE = "The entity no longer exists."  # deleted since its item was made


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
            state.fail("", ENTITY_GONE)
        else:
            raw, status, version, published_at = entity
            data = saved["data"] if "data" in saved else json.loads(raw)
            if "changes" in saved:  # the run's changes, on the entity as stored now
                data = changes_apply(data, saved["changes"], saved.get("removed", ()))
            state = EntityState(
                entity_id=item.entity_id,
                status=saved.get("status", status),
                data=data,
                committed=saved.get("committed"),
                committed_json=None if "committed" in saved else raw,
                entity_type_schema=schema,
                version=version if "changes" in saved else saved.get("version", version),
                outputs=saved.get("outputs", {}),
                usage=saved.get("usage", {}),
                usage_counted=Usage.of(saved.get("counted")),
                next_step=item.next_step,
            )
            if state.version == version:  # else what was read is not the version written
                state.stored = (status, published_at)
        # A redelivery; an entity back from a wait is on its first delivery since parking.
        if item.attempts > saved.get("attempt", 0) + 1:
            state.log.append(
                ("warning", "", f"Resumed at step {item.next_step + 1} (attempt {item.attempts}).")
            )
        states.append(state)
    return states


def checkpoint_of(state: EntityState, *, with_data: bool) -> dict:
    """What a redelivered chunk resumes from: the run's changes to the entity (none right
    after a publish, when the working copy is what the entity holds)."""
    saved = {
        "outputs": state.outputs,
        "status": state.status,
        "version": state.version,
        "usage": state.usage,
        "counted": state.usage_counted.stored(),
    }
    if with_data:
        saved["changes"], saved["removed"] = state.changes()
    return saved


def state_of_entity(entity) -> EntityState:
    """A working copy of one `Entity` (its type selected with it), for a run of its own that
    commits nothing: `/test`, an experiment's sides."""
    return EntityState(
        entity_id=entity.pk,
        status=entity.status,
        data=json_copy(entity.data),
        committed=entity.data,
        entity_type_schema=entity.entity_type.schema,
        version=entity.version,
    )
