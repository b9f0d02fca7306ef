"""A decided review's audit, per field: the value stored before the decision, what the run
proposed, what the reviewer decided (the proposal with their edits; nothing when rejected),
read from the review and the entity's revision the decision committed."""

import copy
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.db.models import Q

from entities.json_values import json_equal
from entities.models import EntityRevision
from jobs.waits.review.models import Review, ReviewStatus
from workflows.steps.runtime import MISSING, changes_apply, get_path

DATA = "data."


@dataclass
class AuditRow:
    """One field of a decided review. Its values are compared as JSON values, as the decision
    took them (`0` edited to `0.0`, or `1` to `true`, is an edit)."""

    path: str
    before: Any
    proposed: Any
    decided: Any

    @property
    def edited(self) -> bool:
        return not json_equal(self.decided, self.proposed)

    @property
    def changed(self) -> bool:
        return not json_equal(self.decided, self.before)


def decision_revisions(reviews: Iterable[Review]) -> dict[tuple[str, str], EntityRevision]:
    """The revision each decided review's approval committed, by (entity id, run id): its
    entity's first revision made by a review in its run; in one query for a page of reviews
    (one each made the queue's queries grow with its reviews)."""
    pairs = {(review.entity_id, review.run_id) for review in reviews}
    if not pairs:
        return {}
    each = Q()
    for entity_id, run_id in pairs:
        each |= Q(entity_id=entity_id, run_id=run_id)
    # The first of each pair kept here, not by DISTINCT ON (PostgreSQL's alone: the embedded
    # defaults run SQLite); a review's run commits about one revision per entity.
    first: dict[tuple[str, str], EntityRevision] = {}
    for revision in EntityRevision.objects.filter(
        each, source=EntityRevision.Source.REVIEW
    ).order_by("version"):
        first.setdefault((revision.entity_id, revision.run_id), revision)
    return first


def stored_before(review: Review, stored: dict | None, revision: EntityRevision | None) -> dict:
    """The entity's data as it was before the decision: as stored now, with the changes of
    the revision the approval committed (`decision_revisions`) undone (none yet: the worker
    commits it shortly)."""
    data = copy.deepcopy(stored or {})
    if revision is None:
        return data
    for change in revision.changes:
        field = change.get("field", "")
        if not field.startswith(DATA):
            continue
        key = field.removeprefix(DATA)
        if "before" in change:
            data[key] = change["before"]
        else:
            data.pop(key, None)
    return data


def review_audit(
    review: Review, stored: dict | None, revision: EntityRevision | None
) -> list[AuditRow]:
    """One row per field the review showed; `revision` is its `decision_revisions`' (None:
    none yet)."""
    before = stored_before(review, stored, revision)
    changes, removed = dict(review.changes), list(review.removed)
    if review.edited_proposal:  # the edits replaced the run's proposal for their keys
        for key in review.edits or {}:
            changes.pop(key, None)
        changes.update(review.edited_proposal.get("changes", {}))
        removed += review.edited_proposal.get("removed", [])
    proposed = changes_apply(copy.deepcopy(before), changes, removed)
    approved = review.status == ReviewStatus.APPROVED or (
        review.status == ReviewStatus.EXPIRED and review.on_timeout == Review.OnTimeout.APPROVE
    )
    # Rejected (or expired to a rejection): nothing of the run kept.
    decided = changes_apply(copy.deepcopy(proposed), review.edits or {}, []) if approved else before
    return [
        AuditRow(
            path=path,
            before=_value(before, path),
            proposed=_value(proposed, path),
            decided=_value(decided, path),
        )
        for path in review.fields
    ]


def _value(data: dict, path: str) -> Any:
    value = get_path(data, path, MISSING)
    return None if value is MISSING else value
