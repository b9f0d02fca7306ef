"""A decided review's audit on the Reviews page: per field the value stored before, what the
run proposed, what the reviewer decided, who and when; the queue pages past 100 reviews."""

import html
import re

import pytest
from django.utils import timezone

from entities.models import Entity
from jobs.cancel import run_cancel
from jobs.engine.waits import run_waits_resume
from jobs.models import Review
from jobs.waits.review.services import reviews_expire_decide
from tests.admin.test_review_pages import parked
from tests.factories import run_inline

pytestmark = pytest.mark.django_db


def _cells(page: str, review_id: str, field: str) -> list[str]:
    card = page[page.index(f'id="review-{review_id}"') :]
    row = card[card.index(f'data-field="{field}"') :]
    row = row[: row.index("</tr>")]
    return [html.unescape(cell) for cell in re.findall(r"<pre>(.*?)</pre>", row, re.S)]


def test_an_approved_review_shows_before_proposed_and_decided_with_who_and_when(
    staff, product_type
):
    run, [entity_id] = parked(product_type, n=1)
    review = Review.objects.get(run=run)
    staff.post(
        "/admin/jobs/review/decide/",
        {
            "review": review.pk,
            "decision": "approve",
            "kind-0": "text",
            "value-0": "hand-made",
            "kind-1": "json",
            "value-1": "0",
            "comment": "fixed the slug",
        },
    )
    for page in ("before the commit", "after it"):
        shown = staff.get("/admin/jobs/review/?status=approved").content.decode()
        # stored before: no slug; the run proposed "Item 0"; the reviewer decided "hand-made"
        assert _cells(shown, review.pk, "slug") == ["—", "Item 0", "hand-made"], page
        assert _cells(shown, review.pk, "price") == ["0", "0", "0"], page
        assert "edited by the reviewer" in shown
        assert re.search(r"Approved by <strong>staff</strong>\s+on \d{4}-\d\d-\d\d ", shown)
        assert "fixed the slug" in shown
        assert "<strong>Item 0 <a href=" in shown  # the card names the entity by its title
        run_waits_resume(run_id=run.pk)  # the worker resumes the entity and commits it
        run_inline(run.pk)
    assert Entity.objects.get(pk=entity_id).data["slug"] == "hand-made"


def test_a_rejected_review_shows_the_proposal_kept_out(staff, product_type):
    run, _ = parked(product_type, n=1)
    review = Review.objects.get(run=run)
    staff.post("/admin/jobs/review/decide/", {"review": review.pk, "decision": "reject"})
    shown = staff.get("/admin/jobs/review/?status=rejected").content.decode()
    assert _cells(shown, review.pk, "slug") == ["—", "Item 0", "—"]
    assert "Rejected by <strong>staff</strong>" in shown


def test_the_queue_pages_past_100_reviews(staff, product_type):
    parked(product_type, n=130)
    first = staff.get("/admin/jobs/review/").content.decode()
    assert first.count('class="review"') == 100
    older = html.unescape(re.search(r'href="([^"]+)" id="older-reviews"', first).group(1))
    second = staff.get(older).content.decode()
    assert second.count('class="review"') == 30
    seen = set(re.findall(r'id="review-(rev_[^"]+)"', first + second))
    assert seen == set(Review.objects.values_list("pk", flat=True))


def test_an_edit_of_0_to_0_point_0_is_marked_as_the_reviewers_edit(staff, product_type):
    """The decision takes `0` edited to `0.0` as an edit (a JSON value of another type), and
    so does its audit."""
    run, _ = parked(product_type, n=1)
    review = Review.objects.get(run=run)
    staff.post(
        "/admin/jobs/review/decide/",
        {"review": review.pk, "decision": "approve", "kind-1": "json", "value-1": "0.0"},
    )
    review.refresh_from_db()
    assert review.status == "approved" and review.edits == {"price": 0.0}
    page = staff.get(f"/admin/jobs/review/?review={review.pk}").content.decode()
    row = page[page.rindex("<tr", 0, page.index('data-field="price"')) :]
    row = row[: row.index("</tr>")]
    assert 'class="edited"' in row and "edited by the reviewer" in row, row


def test_a_review_cancelled_with_its_run_says_so(staff, product_type):
    run, _ = parked(product_type, n=1)
    run_cancel(run_id=run.pk, cancelled_by="staff")
    review = Review.objects.get(run=run)
    assert review.status == "cancelled" and review.decided_by == ""
    page = staff.get("/admin/jobs/review/?status=cancelled").content.decode()
    assert f'id="review-{review.pk}"' in page
    assert re.search(r"Cancelled with its run\s+on \d{4}-\d\d-\d\d ", page)
    assert "the timeout" not in page


def test_an_expired_review_says_the_timeout_decided_it(staff, product_type):
    run, _ = parked(product_type, n=1)
    review = Review.objects.get(run=run)
    reviews_expire_decide(review_ids=[review.pk], now=timezone.now())
    assert Review.objects.get(pk=review.pk).status == "expired"
    page = staff.get("/admin/jobs/review/?status=expired").content.decode()
    assert re.search(r"Expired: decided by <strong>the timeout</strong>\s+on ", page)
