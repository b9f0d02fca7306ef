"""Reverting a run: a new run (type `revert`) that gives each entity the run changed back
the values it had before, read from the run's revisions (`entities.revisions`).

The revert is a run like any other: its items are made in batches in entity order from the
reverted run's revisions (`jobs.filter_runs`, keyset on the (run, entity) index: memory is
flat whatever the size), its chunks claimed under leases, and each entity's new version
written in the transaction that ends its item (`jobs.engine.outcomes`), so a chunk
delivered twice reverts no entity twice. Only the step loop differs: instead of the
workflow's steps, `revert_states` sets each working copy to its values before the run.

An entity changed by anything after the run, or by anything else between two of the run's
commits of it, is left as it is (its item `skipped`, naming the version) unless `force`.
The new versions are revisions with source `revert` and the revert's run id, so reverting a
revert redoes the original changes. Being a run of the reverted workflow, its changes do
not trigger that workflow (the outbox's loop guard), and no step (no notify) runs.
"""

import datetime
from collections import defaultdict
from itertools import pairwise

from django.db import transaction

from config.api.errors import Conflict
from config.api.fields import to_millis
from entities.commits import PublishedAt
from entities.models import EntityRevision
from entities.revisions import change_undo
from entities.run_changes import run_revisions_of
from jobs.engine.states import ENTITY_GONE
from jobs.filter_runs import run_start_in_batches
from jobs.models import Run, RunLog, TriggerType
from workflows.steps.runtime import EntityState, Outcome


def revert_of(run: Run) -> str | None:
    """The run a revert reverts (None for other runs)."""
    trigger = run.trigger or {}
    return trigger.get("runId") if trigger.get("type") == TriggerType.REVERT else None


def revert_forced(run: Run) -> bool:
    """Whether a revert reverts entities changed since the run too (`force`). An unforced
    one commits only where the entity is still at the version it checked (the chunk's
    committer is given `changed_since`): an edit landing between its check and its commit
    skips the entity, as one made before the check does."""
    return bool((run.trigger or {}).get("force"))


def changed_since(version: int, left: int) -> str:
    """An entity's item error when a revert skips it: changed since the run."""
    return (
        f"Changed since the run: the entity is at version {version}, the run left version {left}."
    )


def changed_during(version: int, first: int, last: int) -> str:
    """An entity's item error when a revert skips it: written by something else between two
    of the run's commits of it."""
    return (
        f"Changed during the run: version {version} was written by something else between "
        f"the run's versions {first} and {last}."
    )


@transaction.atomic
def run_revert(*, run_id: str, force: bool = False, created_by=None) -> Run:
    """Start a revert of `run_id`: 409 while that run is open, or if it changed nothing
    (that is still kept)."""
    original = Run.objects.select_related("workflow", "workflow_version").get(pk=run_id)
    if not original.is_ended:
        raise Conflict("The run is still open; revert it once it has ended.", code="run_not_ended")
    if not EntityRevision.objects.filter(run_id=run_id).exists():
        raise Conflict(
            "The run changed no entity (whose revisions are still kept): nothing to revert.",
            code="nothing_to_revert",
        )
    # The run changed at most its items' entities: counting those it did would walk them
    # all in the request; the batches find them, and the last one sets the total.
    most = original.total or original.items_made
    run = run_start_in_batches(
        workflow=original.workflow,
        version=original.workflow_version,
        entities=most,
        items_limit=most,
        created_by=created_by,
        trigger={"type": TriggerType.REVERT, "runId": original.pk, "force": force},
    )
    RunLog.objects.create(
        run_id=run.pk,
        message=f"Revert of {original.pk}: the entities it changed"
        + (", forced over later changes." if force else "; those changed since are skipped."),
    )
    return run


def revert_states(
    *,
    run: Run,
    states: list[EntityState],
    logs: list[RunLog],
    published: dict[str, PublishedAt],
) -> None:
    """Give each working copy the values its entity had before the reverted run, where that
    run's fields changed (status and publishedAt too: `published` gets the entities whose
    publishedAt their commit gives back); end the others: skipped if changed since (unless
    the revert is forced). The chunk's finish writes them and `logs`
    (`jobs.engine.outcomes`)."""
    reverted, force = revert_of(run), revert_forced(run)
    for state in states:
        if state.error == ENTITY_GONE:  # deleted since: nothing to give back, no failure
            _skip(state, "Deleted since the run: nothing to revert.")
    alive = [state for state in states if state.alive]
    revisions: dict[str, list] = defaultdict(list)
    for entity_id, version, changes in run_revisions_of(
        reverted, [state.entity_id for state in alive]
    ):
        revisions[entity_id].append((version, changes))
    for state in alive:
        # The run's revisions of an entity are kept or pruned together (`revisions_prune`),
        # so those found are all it made and the first holds each field's value before it.
        # The revision before that one is no check: it is pruned by age as often as not (an
        # entity created long before the run), which is no reason to skip the entity.
        made = revisions.get(state.entity_id)
        if not made:
            _skip(state, "The run's revisions of this entity are no longer kept.")
            continue
        first, last = made[0][0], made[-1][0]
        if state.version != last and not force:
            _skip(state, changed_since(state.version, last))
            continue
        # Versions are consecutive: a gap between the run's is a write by something else
        # while the run held the entity (an edit while it waited at a review). What that
        # write changed came after the run's first change of each field, so undoing the
        # run from that first change would undo the write too.
        between = _written_between(made)
        if between is not None and not force:
            _skip(state, changed_during(between, first, last))
            continue
        state.data, status, published_ms = _before(state.data, made)
        if status is not None and status != state.status:
            state.publish_status = state.status = status
        if published_ms is not _UNCHANGED and (
            state.publish_status is not None
            or state.stored is None
            or to_millis(state.stored[1]) != published_ms
        ):
            # A commit writes publishedAt with a status: the one the entity has, if the run
            # changed its publishedAt alone (it published a published entity again).
            state.publish_status = state.status
            published[state.entity_id] = PublishedAt(_from_millis(published_ms))
        state.outcome = Outcome.COMPLETED
    reverted_count = sum(state.outcome == Outcome.COMPLETED for state in alive)
    logs.append(
        RunLog(
            run_id=run.pk,
            message=f"Skipped {len(alive) - reverted_count} entities changed since (or "
            "during) the run; "
            f"reverting {reverted_count} (one changed before its commit is skipped there): "
            "see the items.",
        )
    )


def _skip(state: EntityState, reason: str) -> None:
    state.outcome, state.error = Outcome.STOPPED, reason


def _written_between(made: list) -> int | None:
    """The first version between the run's first and last revisions of an entity that is
    not the run's (None: the run wrote every version from its first to its last)."""
    for (version, _), (following, _) in pairwise(made):
        if following != version + 1:
            return version + 1
    return None


_UNCHANGED = object()  # the run did not change publishedAt
_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)


def _from_millis(ms: int | None) -> datetime.datetime | None:
    """A time the revisions keep in ms (exactly: no float on the way)."""
    return None if ms is None else _EPOCH + datetime.timedelta(milliseconds=ms)


def _before(data: dict, made: list) -> tuple[dict, str | None, object]:
    """`data` with each field the run changed back at its value before the run (the run's
    first change of it), the status before the run if the run changed it, and publishedAt
    before the run, in ms (`_UNCHANGED` if the run left it)."""
    data, status, published, seen = dict(data), None, _UNCHANGED, set()
    for _, changes in made:
        for change in changes:
            field = change["field"]
            if field in seen:
                continue
            seen.add(field)
            status, published = change_undo(change, data, status, published)
    return data, status, published
