"""Recording entity changes in the outbox (`EntityEvent`), in the caller's transaction.

This layer knows nothing of workflows: it writes plain rows and, once they are committed,
sends `entity_events_recorded`, which the layer above listens to (to start gathering them
sooner than its periodic sweep would)."""

from collections import defaultdict
from collections.abc import Callable, Collection
from dataclasses import dataclass

from django.db import transaction
from django.dispatch import Signal

from entities.json_values import json_equal
from entities.models import EntityEvent

# Sent (no arguments) after a transaction that recorded events commits.
entity_events_recorded = Signal()


@dataclass(frozen=True)
class Listener:
    """Something of the layer above that acts on changes of entities (a workflow's trigger):
    `listener_id` hears the events of `kind` that changed one of `fields` (None: any)."""

    listener_id: str
    kind: str
    fields: frozenset[str] | None = None

    def hears(self, kind: str, fields: Collection[str]) -> bool:
        return self.kind == kind and (self.fields is None or not self.fields.isdisjoint(fields))


# The layer above says what listens to changes of entities of a type (the triggers of its
# active workflows): a change nothing listens to is not recorded, and a run committing 400
# entities then works out no changed keys. Until it says, all are recorded, for anyone.
_listeners: Callable[[str], Collection[Listener]] | None = None


def events_listened_by(answer: Callable[[str], Collection[Listener]]) -> None:
    """Register `answer(entity_type_id)`: the listeners to changes of entities of that type.
    It runs inside the change's transaction, so a listener that exists by then hears it,
    and one made after does not (each event names those that heard it)."""
    global _listeners
    _listeners = answer


def event_listened(kind: str, entity_type_id: str) -> bool:
    return _listeners is None or any(
        listener.kind == kind for listener in _listeners(entity_type_id)
    )


@dataclass(frozen=True)
class ChangeOrigin:
    """Who made a change when it is not a person: the run `run_id` of `workflow_id`, `depth`
    runs of triggers deep."""

    workflow_id: str
    depth: int = 0
    run_id: str = ""


def changed_keys(before: dict, after: dict) -> tuple[str, ...]:
    """The top-level keys whose value differs (added, changed or removed), sorted."""
    keys = {k for k, v in after.items() if k not in before or not json_equal(before[k], v)}
    keys.update(k for k in before if k not in after)
    return tuple(sorted(keys))


def events_record(
    *,
    kind: str,
    entity_type_id: str,
    changes: dict[str, tuple[str, ...]],
    origin: ChangeOrigin | None = None,
) -> None:
    """Record that the entities in `changes` (id -> the keys changed) were created or
    updated: one row per set of keys alike, naming the listeners that hear it now (the
    origin's own aside: a run's changes are not its workflow's to hear), and none for a set
    no listener hears. Call inside the transaction of the change."""
    if not changes:
        return
    listeners = None
    if _listeners is not None:
        origin_id = origin.workflow_id if origin else None
        listeners = [
            listener
            for listener in _listeners(entity_type_id)
            if listener.kind == kind and listener.listener_id != origin_id
        ]
        if not listeners:
            return
    by_fields: dict[tuple[str, ...], list[str]] = defaultdict(list)
    for entity_id, fields in changes.items():
        by_fields[fields].append(entity_id)
    events = []
    for fields, ids in by_fields.items():
        heard_by = None
        if listeners is not None:
            heard_by = sorted({x.listener_id for x in listeners if x.hears(kind, fields)})
            if not heard_by:
                continue
        events.append(
            EntityEvent(
                kind=kind,
                entity_type_id=entity_type_id,
                entity_ids=ids,
                size=len(ids),
                fields=list(fields),
                origin_workflow_id=origin.workflow_id if origin else "",
                depth=origin.depth if origin else 0,
                origin_run_id=origin.run_id if origin else "",
                listener_ids=heard_by,
            )
        )
    if events:
        EntityEvent.objects.bulk_create(events)
        transaction.on_commit(lambda: entity_events_recorded.send(sender=EntityEvent))
