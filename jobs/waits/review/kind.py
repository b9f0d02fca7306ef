"""The `review` kind of wait: a `review` step parks each entity and a Review shows a person
what the run made of it (`services` decides, `views`/`urls` are its API, `admin` its page);
expired reviews are decided on each tick as the step's `onTimeout` says."""

import hashlib
from collections import Counter
from datetime import datetime, timedelta

from django.db.models import QuerySet
from django.utils import timezone
from rest_framework.serializers import CharField, Field

from config.api.ids import new_id
from config.bulk import rows_insert, rows_insert_returning
from jobs.waits.base import Parked, RunPageLink, RunPagePart, WaitKind
from jobs.waits.review.models import Review, ReviewInstructions, ReviewStatus
from jobs.waits.review.selectors import reviews_url, run_reviews_pending
from jobs.waits.review.services import DECIDE_MAX_IDS, reviews_expire_decide
from workflows.steps.review import ReviewRequest
from workflows.usage import Usage


class ReviewWait(WaitKind):
    """A person approves or rejects; an unanswered review expires as its step says."""

    request_type = ReviewRequest
    urls = "jobs.waits.review.urls"
    admin = "jobs.waits.review.admin"

    def create(self, parked: list[Parked]) -> None:
        """A review per wait, holding the run's changes (not a copy of the entity) and its
        instructions: one row the run's reviews share for each distinct text, but for a
        text rendered from the entity that no other review parked with it reads, stored in
        the review (a row of its own would be one more write per review, shared by none).
        Instructions that do not depend on the entity are shared however few reviews are
        parked at once (an entity at a time, after a trickle of events). One INSERT of the
        shared texts (none when every text is an entity's own) and one of the reviews (no
        model instances)."""
        now = timezone.now()
        instructions = _instructions_shared(parked)
        rows = []
        for entry in parked:
            changes, removed = entry.state_changes()
            request = entry.request
            shared = instructions.get((entry.wait.run_id, request.instructions))
            rows.append(
                {
                    "id": new_id("rev"),
                    "wait": entry.wait.pk,
                    "run": entry.wait.run_id,
                    "entity_id": entry.wait.entity_id,
                    "step_id": entry.wait.step_id,
                    "status": ReviewStatus.PENDING,
                    "instructions": shared,
                    "instructions_text": request.instructions if shared is None else "",
                    "fields": request.fields,
                    "group": request.group or "",
                    "on_timeout": request.on_timeout,
                    "on_reject": request.on_reject,
                    "changes": changes,
                    "removed": removed,
                    "created_at": now,
                    "expires_at": (
                        now + timedelta(minutes=request.timeout_minutes)
                        if request.timeout_minutes
                        else None
                    ),
                    "decided_by": "",
                    "comment": "",
                }
            )
        rows_insert(Review, rows, fields=list(rows[0]))

    def tick(self, *, now: datetime) -> int:
        """Decide the reviews whose time ran out, as their step's `onTimeout` says."""
        expired = 0
        while True:
            # Not the reviews of a run being cancelled: its cancel ends them in batches, and
            # a full batch of them, skipped, would end this tick before any other run's.
            batch = list(
                Review.objects.filter(status=ReviewStatus.PENDING, expires_at__lte=now)
                .filter(run__cancel_requested_at__isnull=True)
                .order_by("expires_at")
                .values_list("pk", flat=True)[:DECIDE_MAX_IDS]
            )
            if not batch:
                return expired
            decided = reviews_expire_decide(review_ids=batch, now=now)
            expired += len(decided.decided)
            if not decided.decided:
                return expired  # every one was decided by someone else meanwhile

    def described_fields(self) -> dict[str, Field]:
        return {"reviewId": CharField(read_only=True, help_text="The review it waits for.")}

    def describe(self, wait_ids: list[str]) -> dict[str, dict]:
        return {
            wait_id: {"reviewId": pk}
            for pk, wait_id in Review.objects.filter(wait_id__in=wait_ids).values_list(
                "pk", "wait_id"
            )
        }

    def run_records(self, run_id: str) -> list[QuerySet]:
        return [
            Review.objects.filter(run_id=run_id),
            ReviewInstructions.objects.filter(run_id=run_id),
        ]

    def run_page(self, run) -> RunPagePart | None:
        if not run_reviews_pending(run_id=run.pk):
            return None
        link = RunPageLink("review them", reviews_url(run=run.pk), "run-reviews-link")
        return RunPagePart(waiting_for="for review", links=(link,))

    def cancel(self, *, run_id: str, wait_ids: list[str]) -> dict[str, Usage]:
        Review.objects.filter(wait_id__in=wait_ids, status=ReviewStatus.PENDING).update(
            status=ReviewStatus.CANCELLED, decided_at=timezone.now()
        )
        return {}  # a person's decision costs no model call


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _instructions_shared(parked: list[Parked]) -> dict[tuple[str, str], int]:
    """(run id, text) -> the id of its `ReviewInstructions` row, made if new, for each text
    the same for all the run's entities or read by more than one of `parked` (the others
    are stored in their review). Two chunks of a run parking the same text at once meet on
    the row's unique constraint: one inserts, the other finds it. The rows inserted give
    their ids; only texts the run had already (or another chunk inserted meanwhile) are
    read."""
    readers = Counter((entry.wait.run_id, entry.request.instructions) for entry in parked)
    texts = {
        (entry.wait.run_id, entry.request.instructions)
        for entry in parked
        if not entry.request.instructions_own
        or readers[entry.wait.run_id, entry.request.instructions] > 1
    }
    if not texts:
        return {}
    by_digest = {(run_id, _digest(text)): (run_id, text) for run_id, text in texts}
    ids = {
        (run_id, digest): pk
        for pk, run_id, digest in rows_insert_returning(
            ReviewInstructions,
            (
                {"run": run_id, "digest": digest, "text": by_digest[run_id, digest][1]}
                for run_id, digest in by_digest
            ),
            fields=["run", "digest", "text"],
            returning=["id", "run", "digest"],
            ignore_conflicts=True,
        )
    }
    missing = [key for key in by_digest if key not in ids]
    if missing:
        ids.update(
            ((run_id, digest), pk)
            for pk, run_id, digest in ReviewInstructions.objects.filter(
                run_id__in={run_id for run_id, _ in missing},
                digest__any=list({digest for _, digest in missing}),
            ).values_list("pk", "run_id", "digest")
        )
    return {by_digest[key]: pk for key, pk in ids.items() if key in by_digest}
