"""Deciding reviews (the API, the admin and an expiry alike): approving (with edits, or not)
lets the run go on, rejecting stops or fails the entity with its data as it was; each
decision resolves the review's wait (`jobs.engine.waits.waits_resolve`)."""

from dataclasses import replace
from datetime import datetime
from typing import NamedTuple

from django.db import transaction
from django.utils import timezone

from config.api.errors import Conflict, FieldError, Forbidden, InvalidInput, NotFound
from config.bulk import pks_update
from entities.models import Entity
from entities.schemas import data_problems, data_validator
from jobs.engine.waits import runs_lock, waits_resolve_sets
from jobs.models import RunLog
from jobs.waits.review.models import Review, ReviewStatus
from workflows.steps.waits import Resolution

DECIDE_MAX_IDS = 1000
DECISIONS = ("approve", "reject")


def may_decide(user, group: str, groups: set[str] | None = None) -> bool:
    """Superusers always may; others need the permission and, when the step names a
    `group`, to be in it (`groups`: the user's group names, when the caller has them)."""
    if user.is_superuser:
        return True
    if not user.has_perm("jobs.decide_review"):
        return False
    if not group:
        return True
    if groups is None:
        groups = set(user.groups.values_list("name", flat=True))
    return group in groups


class Pending(NamedTuple):
    """What deciding a review reads of it (no model instances: a bulk decision reads 1,000)."""

    pk: str
    status: str
    run_id: str
    wait_id: str
    step_id: str
    group: str
    on_timeout: str
    on_reject: str


class Decided(NamedTuple):
    decided: list[str]
    skipped: list[dict]  # {"id", "reason", "message"}


def reviews_decide(*, review_ids: list[str], decision: str, user, comment: str = "") -> Decided:
    """Approve or reject up to 1,000 reviews at once; the ones that cannot be decided (not
    found, no longer pending, not the user's to decide) are skipped, each with its reason."""
    if not 1 <= len(review_ids) <= DECIDE_MAX_IDS:
        message = f"Give 1 to {DECIDE_MAX_IDS} review ids, not {len(review_ids)}."
        raise InvalidInput(f"ids: {message}", details=[FieldError("ids", message)])
    unique = list(dict.fromkeys(review_ids))
    return _decide(unique, decision, who=user, comment=comment)


def review_decide(
    *, review_id: str, decision: str, user, comment: str = "", data: dict | None = None
) -> Review:
    """Approve (with `data`: top-level keys merged into the working copy) or reject one
    review; 404, 403 or 409 (no longer pending) as the API answers them."""
    result = _decide([review_id], decision, who=user, comment=comment, edits=data)
    if result.skipped:
        reason = result.skipped[0]
        if reason["reason"] == "not_found":
            raise NotFound(reason["message"])
        if reason["reason"] == "forbidden":
            raise Forbidden(reason["message"])
        raise Conflict(reason["message"], code="not_pending")
    return Review.objects.get(pk=review_id)


def reviews_expire_decide(*, review_ids: list[str], now: datetime) -> Decided:
    """Decide expired reviews as their step's `onTimeout` says (the kind's tick)."""
    return _decide(review_ids, None, who="", comment="", now=now)


def _decide(
    ids: list[str],
    decision: str | None,
    *,
    who,
    comment: str,
    edits: dict | None = None,
    now: datetime | None = None,
) -> Decided:
    """Decide `ids` (`decision` None: they expired, and their `onTimeout` decides). One
    statement per kind of outcome, whatever the number of reviews.

    The reviews are read without a lock and decided by an UPDATE that still requires them
    `pending`: of two decisions of a review at once, the second finds it decided and skips
    it (a row lock first would write every row twice). One with edits locks its review
    first: the edits must not land on a review someone else decided meanwhile."""
    now = now or timezone.now()
    query = Review.objects.filter(pk__any=ids)
    with transaction.atomic():
        if edits is None:  # read once, then their runs locked (a review's run never changes)
            rows = list(query.values_list(*Pending._fields))
            goes_on = runs_lock(run_ids={row[2] for row in rows})
        else:  # runs before reviews, the order a cancel locks them in
            goes_on = runs_lock(run_ids=query.values("run_id"))
            rows = list(query.select_for_update().order_by("pk").values_list(*Pending._fields))
        reviews = {row[0]: Pending(*row) for row in rows}
        skipped, deciding = [], []
        groups = set(who.groups.values_list("name", flat=True)) if who else set()
        for review_id in ids:
            review = reviews.get(review_id)
            if review is None:
                skipped.append(_skip(review_id, "not_found", f"No review {review_id!r} exists."))
            elif review.status != ReviewStatus.PENDING:
                skipped.append(
                    _skip(review_id, "not_pending", f"The review is already {review.status}.")
                )
            elif not goes_on.get(review.run_id):
                skipped.append(
                    _skip(review_id, "not_pending", "The review's run has ended or is cancelled.")
                )
            elif who and not may_decide(who, review.group, groups):
                skipped.append(
                    _skip(
                        review_id,
                        "forbidden",
                        "You may not decide this review"
                        + (f" (only the group {review.group!r} may)." if review.group else "."),
                    )
                )
            else:
                deciding.append(review)
        if not deciding:
            return Decided([], skipped)
        if edits is not None:
            _merge_edits(deciding[0].pk, edits)
        name = who.get_username() if who else ""
        who_id = str(who.pk) if who else ""
        # Reviews decided alike (the same decision, onTimeout and onReject) resolve alike.
        alike: dict[tuple, list[Pending]] = {}
        for review in deciding:
            alike.setdefault((review.on_timeout, review.on_reject), []).append(review)
        decided: set[str] = set()
        # Their waits resolved together once every group is written, so that every run's row
        # is locked once, in id order (`waits_resolve_sets`): resolved group by group, two
        # decisions grouping the same runs in other orders could deadlock.
        sets: list[tuple[list[str], Resolution]] = []
        runs: set[str] = set()
        for (on_timeout, on_reject), batch in sorted(alike.items()):
            status, resolution = _resolve(
                decision, on_timeout, on_reject, name, comment, edits if edits else None
            )
            if who_id:  # the entity's next version is this person's decision
                resolution = replace(resolution, decided_by=who_id)
            written = {
                pk
                for (pk,) in pks_update(
                    Review,
                    [review.pk for review in batch],
                    assign={
                        "status": status,
                        "decided_at": now,
                        "decided_by": name,
                        "comment": comment,
                    },
                    where={"status": ReviewStatus.PENDING},
                    returning=["id"],
                )
            }
            decided |= written
            if written:
                sets.append(
                    ([review.wait_id for review in batch if review.pk in written], resolution)
                )
                runs |= {review.run_id for review in batch if review.pk in written}
        if sets:
            waits_resolve_sets(sets=sets, run_ids=runs, now=now)
        for review in deciding:
            if review.pk not in decided:  # another decision took it since it was read
                skipped.append(_skip(review.pk, "not_pending", "The review is already decided."))
        deciding = [review for review in deciding if review.pk in decided]
        if deciding:
            _log(deciding, decision, name, now)
    return Decided([review.pk for review in deciding], skipped)


def _skip(review_id: str, reason: str, message: str) -> dict:
    return {"id": review_id, "reason": reason, "message": message}


def _merge_edits(review_id: str, edits: dict) -> None:
    """The reviewer's edits are top-level keys merged into the working copy, checked against
    the entity type's schema (a 400 names the field)."""
    review = Review.objects.select_related("run__workflow__entity_type").get(pk=review_id)
    current = Entity.objects.filter(pk=review.entity_id).values_list("data", flat=True).first()
    merged = {**review.proposed_on(current), **edits}
    schema = review.run.workflow.entity_type.schema
    problems = data_problems(data_validator(schema), merged, prefix="data")
    if problems:
        raise InvalidInput(f"{problems[0].field}: {problems[0].message}", details=problems)
    Review.objects.filter(pk=review_id).update(
        changes={**review.changes, **edits},
        removed=[key for key in review.removed if key not in edits],
        edits=edits,
        edited_proposal={
            "changes": {key: review.changes[key] for key in edits if key in review.changes},
            "removed": [key for key in review.removed if key in edits],
        },
    )


def _resolve(
    decision: str | None,
    on_timeout: str,
    on_reject: str,
    name: str,
    comment: str,
    edits: dict | None,
) -> tuple[str, Resolution]:
    """A review's new status, and its wait's resolution."""
    if decision is None:
        status = ReviewStatus.EXPIRED
        approved = on_timeout == Review.OnTimeout.APPROVE
        why = "The review expired unanswered" + (
            " and was approved (onTimeout)." if approved else " and was rejected (onTimeout)."
        )
    else:
        approved = decision == "approve"
        status = ReviewStatus.APPROVED if approved else ReviewStatus.REJECTED
        why = f"{'Approved' if approved else 'Rejected'} in review by {name}" + (
            f': "{comment}"' if comment else "."
        )
    output = {"approved": approved, "status": status.value, "by": name or None, "comment": comment}
    if approved:
        return status, Resolution("continue", data=edits or {}, output=output)
    if on_reject == Review.OnReject.FAIL:
        return status, Resolution("fail", error=why, output=output)
    return status, Resolution("stop", output=output, log=why)


def _log(reviews: list[Pending], decision: str | None, name: str, now: datetime) -> None:
    """One line per run and step for a decision, however many reviews it covered."""
    counts: dict[tuple[str, str], int] = {}
    for review in reviews:
        key = (review.run_id, review.step_id)
        counts[key] = counts.get(key, 0) + 1
    what = {"approve": "approved", "reject": "rejected", None: "expired"}[decision]
    RunLog.objects.bulk_create(
        RunLog(
            run_id=run_id,
            timestamp=now,
            step_id=step_id,
            message=f"{count} review{'' if count == 1 else 's'} {what}"
            + (f" by {name}." if name else "."),
        )
        for (run_id, step_id), count in counts.items()
    )
