"""Claiming a chunk: lease its unfinished items to this delivery and read their entities;
items whose deliveries kept dying are failed instead. Also the run's heartbeat.

An item is leased by bumping `attempts`: every later write for it (a checkpoint, the final
status) is conditional on the item still carrying this delivery's attempt, so when a chunk
is delivered twice (a worker died, a visibility timeout passed) only one delivery acts on
each entity, and no entity is published or notified twice. "Claim" means this and only this.
"""

import json
from datetime import datetime, timedelta
from typing import NamedTuple

from django.conf import settings
from django.db import connection, transaction
from django.db.models import TextField
from django.db.models.functions import Cast
from django.utils import timezone

from entities.models import Entity
from jobs.models import ItemStatus, Run, RunItem

HEARTBEAT_EVERY = timedelta(seconds=5)


class Lease(NamedTuple):
    """A run item as claimed by this delivery of its chunk, with its entity as stored (JSON
    text, status, version, publishedAt), or None when the entity no longer exists."""

    pk: int
    entity_id: str
    attempts: int
    next_step: int
    state: dict | None
    entity: tuple[str, str, int, datetime | None] | None


def items_claim(run: Run, chunk: int) -> list[Lease]:
    """Lease the chunk's unfinished items to this delivery (attempts + 1) and read their
    entities; the lease is its own transaction. Items already delivered RUN_MAX_ATTEMPTS
    times are not leased again (see `items_give_up`).

    On PostgreSQL one statement does both: the rows are locked in id order (the order every
    lock on items is taken in), updated, and joined to their entities. Such a statement sees
    the entities as they were when it started, while an item it had to wait for is read as
    it is once the other transaction committed: when that was another delivery's publish,
    the item now has a checkpoint without data (it lives in the entity) and the joined
    entity is older. Those entities are read again after the claim. Elsewhere (SQLite,
    which runs one writer at a time) the claim and the read are two statements."""
    now = timezone.now()
    quote = connection.ops.quote_name
    items = quote(RunItem._meta.db_table)
    column = {name: quote(RunItem._meta.get_field(name).column) for name in _ITEM_COLUMNS}
    params = [
        ItemStatus.RUNNING,
        connection.ops.adapt_datetimefield_value(now),
        run.pk,
        chunk,
        ItemStatus.PENDING,
        ItemStatus.RUNNING,
        settings.RUN_MAX_ATTEMPTS,
    ]
    assignments = (
        f"SET {column['status']} = %s, {column['attempts']} = {column['attempts']} + 1, "
        f"{column['started_at']} = COALESCE({column['started_at']}, %s)"
    )
    unfinished = (
        f"{column['run']} = %s AND {column['chunk']} = %s AND {column['status']} IN (%s, %s) "
        f"AND {column['attempts']} < %s"
    )
    returning = "RETURNING " + ", ".join(
        column[name] for name in ("id", "entity_id", "attempts", "next_step", "state")
    )
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            entity = {
                name: quote(Entity._meta.get_field(name).column)
                for name in ("id", "data", "status", "version", "published_at")
            }
            cursor.execute(
                f"WITH claimed AS (UPDATE {items} {assignments} "  # noqa: S608
                f"WHERE {column['id']} IN (SELECT {column['id']} FROM {items} "
                f"WHERE {unfinished} ORDER BY {column['id']} FOR UPDATE) {returning}) "
                f"SELECT c.*, e.{entity['data']}::text, e.{entity['status']}, "
                f"e.{entity['version']}, e.{entity['published_at']} FROM claimed AS c "
                f"LEFT JOIN {quote(Entity._meta.db_table)} AS e "
                f"ON e.{entity['id']} = c.{column['entity_id']}",
                params,
            )
            rows = [
                (*row[:5], row[5:] if row[5] is not None else None) for row in cursor.fetchall()
            ]
        else:
            cursor.execute(f"UPDATE {items} {assignments} WHERE {unfinished} {returning}", params)
            claimed = cursor.fetchall()
            entities = entity_rows([row[1] for row in claimed])
            rows = [(*row, entities.get(row[1])) for row in claimed]
    leases = sorted(
        Lease(pk, entity_id, attempts, next_step, json.loads(state) if state else None, entity)
        for pk, entity_id, attempts, next_step, state, entity in rows
    )
    # A checkpoint without the data (only the run's changes, applied to the entity as stored
    # now): another delivery's publish may have committed it while this claim waited, after
    # the joined entity was read (see above). Read those entities again, where the entity
    # read is older than the version the checkpoint names (an entity back from a wait is
    # read once: its checkpoint names the version it was parked at, or an older one).
    reread = {lease.entity_id for lease in leases if _stale(lease)}
    if reread:
        entities = entity_rows(list(reread))
        leases = [
            lease._replace(entity=entities.get(lease.entity_id))
            if lease.entity_id in reread
            else lease
            for lease in leases
        ]
    if leases and (run.heartbeat_at is None or now - run.heartbeat_at > HEARTBEAT_EVERY):
        run_heartbeat(run.pk, now)  # else other chunks are showing the run moves
    return leases


def _stale(lease: Lease) -> bool:
    """Whether the entity joined to a checkpoint without data may be older than it."""
    if not lease.state or "data" in lease.state:
        return False
    if lease.entity is None or "version" not in lease.state:
        return True
    return lease.entity[2] < lease.state["version"]


_ITEM_COLUMNS = ("id", "run", "chunk", "entity_id", "status", "attempts", "next_step", "state")
_ITEM_COLUMNS += ("started_at",)


def entity_rows(entity_ids: list[str]) -> dict[str, tuple[str, str, int, datetime | None]]:
    """Entities as stored: id -> (data as JSON text, status, version, publishedAt)."""
    return {
        row[0]: row[1:]
        for row in Entity.objects.filter(pk__any=entity_ids).values_list(
            "id", Cast("data", TextField()), "status", "version", "published_at"
        )
    }


def run_heartbeat(run_id: str, now) -> None:
    """Show the run is moving. Left out while another chunk's transaction holds the run's
    row: that transaction moves the heartbeat itself, and waiting for it would make the
    workers take turns."""
    with transaction.atomic():
        Run.objects.filter(
            pk__in=Run.objects.filter(pk=run_id).select_for_update(skip_locked=True).values("pk")
        ).update(heartbeat_at=now)
