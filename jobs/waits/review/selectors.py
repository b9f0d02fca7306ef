from django.db import connection
from django.db.models import Exists, OuterRef
from django.urls import reverse
from django.utils.http import urlencode

from config.api.errors import NotFound
from entities.models import Entity
from jobs.waits.review.models import Review, ReviewStatus
from workflows.models import Workflow, WorkflowVersion


def review_list(
    *,
    status: str | None = None,
    run_id: str | None = None,
    workflow_id: str | None = None,
    entity_id: str | None = None,
):
    """Reviews, with what their serializer reads (run, job); each filter that narrows most
    has an index ending in `-id`, so a page is an index range scan."""
    reviews = Review.objects.select_related("run__job", "instructions")
    if status:
        reviews = reviews.filter(status=status)
    if run_id:
        reviews = reviews.filter(run_id=run_id)
    if workflow_id:
        reviews = reviews.filter(run__workflow_id=workflow_id)
    if entity_id:
        reviews = reviews.filter(entity_id=entity_id)
    return reviews


def review_workflows():
    """The workflows whose reviews the Reviews page filters by, by name: those with a version
    holding a review step. Read from the definitions (a row a workflow), not from the reviews
    (the workflows joined to every review were a DISTINCT over all of them: half a second at
    300,000 reviews, on every page of the queue). Where JSON containment is not a lookup the
    database has (SQLite: the embedded defaults, a small deployment), from the reviews."""
    workflows = Workflow.objects.order_by("name").only("id", "name")
    if not connection.features.supports_json_field_contains:
        return workflows.filter(runs__reviews__isnull=False).distinct()
    with_review_step = WorkflowVersion.objects.filter(
        workflow=OuterRef("pk"), steps__contains=[{"type": "review"}]
    )
    return workflows.filter(Exists(with_review_step))


def review_get(*, review_id: str) -> Review:
    review = Review.objects.select_related("run__job", "instructions").filter(pk=review_id).first()
    if review is None:
        raise NotFound(f"No review {review_id!r} exists.")
    return review


def entities_data(*, entity_ids) -> dict[str, dict]:
    """The entities as stored now, id -> data, in one query (deleted ones are absent)."""
    return dict(Entity.objects.filter(pk__in=set(entity_ids)).values_list("pk", "data"))


def run_reviews_pending(*, run_id: str) -> bool:
    """Whether any review of the run waits for a decision."""
    return Review.objects.filter(run_id=run_id, status=ReviewStatus.PENDING).exists()


def reviews_url(**query) -> str:
    """The Reviews page, filtered (`run=`, `workflow=`, `status=`)."""
    return reverse("admin:jobs_review_changelist") + ("?" + urlencode(query) if query else "")
