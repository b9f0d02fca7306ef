"""The admin's Reviews page: the queue staff work through, newest first, filterable by
workflow and run; each review shows its instructions and each field before and after, side
by side, editable before approving; many can be approved or rejected at once. Decisions go
through the same services as the API, with the same checks."""

import copy
import json

from django.contrib import admin, messages
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse

from config.api.errors import DomainError, FieldError, InvalidInput
from config.api.parsers import depth_problem
from config.api.storable import unstorable
from entities.json_values import json_equal
from entities.labels import entity_label
from jobs.waits.review import selectors
from jobs.waits.review import services as reviews
from jobs.waits.review.audit import decision_revisions, review_audit
from jobs.waits.review.models import Review, ReviewStatus
from jobs.waits.review.selectors import reviews_url
from workflows.steps.runtime import MISSING, get_path, set_path

REVIEWS_SHOWN = 100
# The queue shows each value (and the instructions) up to this many characters, and stops
# adding reviews once it shows this many in all: a page of large entities stays a few MB,
# not 60. A review opened alone (`?review=<id>`) shows everything, and is where a long
# value is edited.
VALUE_CHARS_SHOWN = 2_000
PAGE_CHARS_SHOWN = 1_000_000


class FieldRow:
    """One field of a review as the page shows it: before, after, and the text edited,
    each cut to `limit` characters (None: whole). A value longer than that is shown cut and
    not editable here (a cut text sent back would be taken as an edit)."""

    def __init__(self, path: str, before, after, limit: int | None = None):
        self.path, self.before, self.after, self.limit = path, before, after, limit
        self.changed = not json_equal(before, after)  # `true` to `1` is a change
        self.is_text = isinstance(after, str) or after is None
        self.text = after if isinstance(after, str) else "" if after is None else _json(after)
        self.before_full = self.shown(before)
        self.truncated = limit is not None and max(len(self.before_full), len(self.text)) > limit

    def shown(self, value) -> str:
        return value if isinstance(value, str) else "—" if value is None else _json(value)

    def _cut(self, text: str) -> str:
        return text if self.limit is None or len(text) <= self.limit else text[: self.limit]

    @property
    def before_text(self) -> str:
        return self._cut(self.before_full)

    @property
    def after_text(self) -> str:
        return self._cut(self.shown(self.after))

    @property
    def before_cut(self) -> bool:
        return len(self.before_text) < len(self.before_full)

    @property
    def after_cut(self) -> bool:
        return len(self.after_text) < len(self.shown(self.after))

    @property
    def size(self) -> int:
        return len(self.before_text) + len(self.after_text)


class AuditShown:
    """An audit row as the page shows it: each value as text (JSON unless a string), cut."""

    def __init__(self, row, limit: int | None):
        self.path, self.edited, self.changed = row.path, row.edited, row.changed
        self.before, self.proposed, self.decided = (
            _cut(_text(value), limit) for value in (row.before, row.proposed, row.decided)
        )


def _text(value) -> str:
    return value if isinstance(value, str) else "—" if value is None else _json(value)


def _cut(text: str, limit: int | None) -> str:
    return text if limit is None or len(text) <= limit else text[:limit]


def _json(value) -> str:
    return json.dumps(value, ensure_ascii=False, indent=1)


@admin.register(Review)
class ReviewAdmin(admin.ModelAdmin):
    """The Reviews page (replaces the changelist); reviews are decided, never edited."""

    def has_add_permission(self, request):
        return False

    def has_view_permission(self, request, obj=None):
        # A review shows entity data (before, after, instructions rendered from it).
        return super().has_view_permission(request, obj) and request.user.has_perm(
            "entities.view_entity"
        )

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("decide/", view(self.decide_view), name="jobs_review_decide"),
            path("decide-many/", view(self.decide_many_view), name="jobs_review_decide_many"),
            *super().get_urls(),
        ]

    def changelist_view(self, request, extra_context=None):
        if not self.has_view_permission(request):
            return redirect("admin:index")
        status = request.GET.get("status") or ReviewStatus.PENDING
        if status not in ReviewStatus.values:
            status = ReviewStatus.PENDING
        workflow_id, run_id = request.GET.get("workflow", ""), request.GET.get("run", "")
        review_id, before = request.GET.get("review", ""), request.GET.get("before", "")
        if review_id:  # one review, whole
            reviews_found = selectors.review_list().filter(pk=review_id)
            limit = None
        else:
            reviews_found = selectors.review_list(
                status=status, workflow_id=workflow_id or None, run_id=run_id or None
            )
            if before:
                reviews_found = reviews_found.filter(pk__lt=before)
            limit = VALUE_CHARS_SHOWN
        found = list(
            reviews_found.select_related("run__workflow").order_by("-pk")[: REVIEWS_SHOWN + 1]
        )
        queue, more = _shown(found[:REVIEWS_SHOWN], limit)
        more = more or len(found) > REVIEWS_SHOWN
        older = ""
        if more and queue:
            query = {"status": status, "workflow": workflow_id, "run": run_id}
            older = reviews_url(**{k: v for k, v in query.items() if v}, before=queue[-1].pk)
        context = {
            **self.admin_site.each_context(request),
            "title": "Reviews",
            "opts": self.model._meta,
            "reviews": queue,
            "reviews_shown": REVIEWS_SHOWN,
            "more": more,
            "older_url": older,
            "one_review": bool(review_id),
            "value_chars": VALUE_CHARS_SHOWN,
            "status": status,
            "statuses": ReviewStatus.values,
            "workflow_id": workflow_id,
            "run_id": run_id,
            "workflows": selectors.review_workflows(),
            "can_decide": request.user.has_perm("jobs.decide_review"),
            "back": request.get_full_path(),
            **(extra_context or {}),
        }
        return TemplateResponse(request, "admin/jobs/review/queue.html", context)

    def _back(self, request):
        back = request.POST.get("back", "")
        if back.startswith(reverse("admin:jobs_review_changelist")):
            return redirect(back)
        return redirect("admin:jobs_review_changelist")

    def decide_view(self, request):
        """One review: approve (with the values as edited on the page) or reject."""
        if request.method != "POST" or not self.has_view_permission(request):
            return self._back(request)
        review = Review.objects.filter(pk=request.POST.get("review", "")).first()
        decision = request.POST.get("decision")
        if review is None or decision not in reviews.DECISIONS:
            self.message_user(request, "No such review or decision.", messages.ERROR)
            return self._back(request)
        try:
            edits = _edits(review, request.POST) if decision == "approve" else None
            reviews.review_decide(
                review_id=review.pk,
                decision=decision,
                user=request.user,
                comment=request.POST.get("comment", ""),
                data=edits or None,
            )
        except DomainError as exc:
            self.message_user(request, f"{review.pk}: {exc.message}", messages.ERROR)
            return self._back(request)
        done = (
            "approved" + (" with edits" if edits else "") if decision == "approve" else "rejected"
        )
        self.message_user(request, f"Review {review.pk} {done}.", messages.SUCCESS)
        return self._back(request)

    def decide_many_view(self, request):
        """The selected reviews, approved or rejected as they are."""
        if request.method != "POST" or not self.has_view_permission(request):
            return self._back(request)
        ids = request.POST.getlist("ids")
        decision = request.POST.get("decision")
        if not ids or decision not in reviews.DECISIONS:
            self.message_user(request, "Select reviews first.", messages.WARNING)
            return self._back(request)
        try:
            result = reviews.reviews_decide(
                review_ids=ids,
                decision=decision,
                user=request.user,
                comment=request.POST.get("comment", ""),
            )
        except DomainError as exc:
            self.message_user(request, exc.message, messages.ERROR)
            return self._back(request)
        done = "approved" if decision == "approve" else "rejected"
        self.message_user(request, f"{len(result.decided)} reviews {done}.", messages.SUCCESS)
        for skipped in result.skipped:
            self.message_user(request, f"{skipped['id']}: {skipped['message']}", messages.WARNING)
        return self._back(request)


def _shown(found: list[Review], limit: int | None) -> tuple[list[Review], bool]:
    """The reviews the page shows, each with its rows (values cut to `limit`), up to
    PAGE_CHARS_SHOWN characters in all (at least one review); and whether some were left."""
    current = selectors.entities_data(entity_ids=[review.entity_id for review in found])
    revisions = decision_revisions(r for r in found if r.status != ReviewStatus.PENDING)
    shown, total = [], 0
    for review in found:
        stored = current.get(review.entity_id)
        proposed = review.proposed_on(stored)
        review.label = entity_label(stored)
        review.rows = [
            FieldRow(path, get_path(stored or {}, path), get_path(proposed, path), limit)
            for path in review.fields
        ]
        if review.status != ReviewStatus.PENDING:
            revision = revisions.get((review.entity_id, review.run_id))
            review.audit = [
                AuditShown(row, limit) for row in review_audit(review, stored, revision)
            ]
        instructions = review.instructions_rendered
        review.instructions_shown = _cut(instructions, limit)
        review.instructions_cut = len(review.instructions_shown) < len(instructions)
        review.truncated = review.instructions_cut or any(row.truncated for row in review.rows)
        size = len(review.instructions_shown) + sum(row.size for row in review.rows)
        if shown and total + size > PAGE_CHARS_SHOWN:
            return shown, True
        total += size
        shown.append(review)
    return shown, False


def _edits(review: Review, form) -> dict:
    """The top-level keys whose shown fields were changed on the page, with their new
    values (text as typed; other values as JSON)."""
    stored = selectors.entities_data(entity_ids=[review.entity_id]).get(review.entity_id)
    proposed = review.proposed_on(stored)
    edits: dict = {}
    for index, field_path in enumerate(review.fields):
        name = f"value-{index}"
        if name not in form:
            continue
        raw = form[name]
        if form.get(f"kind-{index}") == "text":
            value = raw
        else:
            # The API's bounds on a body (config/api/parsers.py), before and after decoding.
            if problem := depth_problem(raw):
                raise _invalid(field_path, problem)
            try:
                value = json.loads(raw)
            except ValueError:
                raise _invalid(field_path, "Is not valid JSON.") from None
            if found := unstorable(value):
                raise _invalid(field_path, found.message)
        before = get_path(proposed, field_path, MISSING)
        if before is MISSING and value in ("", None):
            continue  # an empty box for a field the copy does not have: no edit
        if json_equal(value, before):  # `1` edited to `true` or `1.0` is an edit
            continue
        top = field_path.split(".")[0]
        if top not in edits:
            edits[top] = copy.deepcopy(proposed.get(top))
        if "." in field_path:
            if not isinstance(edits[top], dict):
                edits[top] = {}
            holder = {top: edits[top]}
            set_path(holder, field_path, value)
            edits[top] = holder[top]
        else:
            edits[top] = value
    return edits


def _invalid(field: str, message: str):
    return InvalidInput(f"data.{field}: {message}", details=[FieldError(f"data.{field}", message)])
