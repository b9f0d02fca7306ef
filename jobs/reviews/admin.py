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
from django.utils.http import urlencode

from config.api.errors import DomainError, FieldError, InvalidInput
from config.api.parsers import depth_problem
from config.api.storable import unstorable
from jobs.models import Review, ReviewStatus
from jobs.reviews import selectors
from jobs.waits import review as reviews
from workflows.models import Workflow
from workflows.steps.runtime import MISSING, get_path, set_path

REVIEWS_SHOWN = 100


class FieldRow:
    """One field of a review as the page shows it: before, after, and the text edited."""

    def __init__(self, path: str, before, after):
        self.path, self.before, self.after = path, before, after
        self.changed = before != after
        self.is_text = isinstance(after, str) or after is None
        self.text = after if isinstance(after, str) else "" if after is None else _json(after)

    def shown(self, value) -> str:
        return value if isinstance(value, str) else "—" if value is None else _json(value)

    @property
    def before_text(self) -> str:
        return self.shown(self.before)

    @property
    def after_text(self) -> str:
        return self.shown(self.after)


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
        queue = list(
            selectors.review_list(
                status=status, workflow_id=workflow_id or None, run_id=run_id or None
            )
            .select_related("run__workflow")
            .order_by("-pk")[:REVIEWS_SHOWN]
        )
        current = selectors.entities_data(entity_ids=[review.entity_id for review in queue])
        for review in queue:
            stored = current.get(review.entity_id)
            proposed = review.proposed_on(stored)
            review.rows = [
                FieldRow(path, get_path(stored or {}, path), get_path(proposed, path))
                for path in review.fields
            ]
        context = {
            **self.admin_site.each_context(request),
            "title": "Reviews",
            "opts": self.model._meta,
            "reviews": queue,
            "reviews_shown": REVIEWS_SHOWN,
            "status": status,
            "statuses": ReviewStatus.values,
            "workflow_id": workflow_id,
            "run_id": run_id,
            "workflows": Workflow.objects.filter(runs__reviews__isnull=False)
            .distinct()
            .order_by("name"),
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
        if value == before:
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


def reviews_url(**query) -> str:
    """The Reviews page, filtered (`run=`, `workflow=`, `status=`)."""
    return reverse("admin:jobs_review_changelist") + ("?" + urlencode(query) if query else "")
