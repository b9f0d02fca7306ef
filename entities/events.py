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

# The layer above says which kinds of event on entities of a type anything listens to (the
# triggers of its active workflows): a change nothing listens to is not recorded, and a run
# committing 400 entities then works out no changed keys. Until it says, all are recorded.
_listened: Callable[[str], Collection[str]] | None = None


def events_listened_by(answer: Callable[[str], Collection[str]]) -> None:
    """Register `answer(entity_type_id)`: the kinds of event listened to on that type. It
    runs inside the change's transaction, so a listener that exists by then sees it."""
    global _listened
    _listened = answer


def event_listened(kind: str, entity_type_id: str) -> bool:
    return _listened is None or kind in _listened(entity_type_id)


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
    updated: one row per set of keys alike. Call inside the transaction of the change."""
    if not changes or not event_listened(kind, entity_type_id):
        return
    by_fields: dict[tuple[str, ...], list[str]] = defaultdict(list)
    for entity_id, fields in changes.items():
        by_fields[fields].append(entity_id)
    EntityEvent.objects.bulk_create(
        EntityEvent(
            kind=kind,
            entity_type_id=entity_type_id,
            entity_ids=ids,
            size=len(ids),
            fields=list(fields),
            origin_workflow_id=origin.workflow_id if origin else "",
            depth=origin.depth if origin else 0,
            origin_run_id=origin.run_id if origin else "",
        )
        for fields, ids in by_fields.items()
    )
    transaction.on_commit(lambda: entity_events_recorded.send(sender=EntityEvent))
