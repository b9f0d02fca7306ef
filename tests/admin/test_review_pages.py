"""The admin's Reviews page, through Django's test client: the queue, filters, a decision
with edits, bulk decisions, and the run page's link to its waiting entities."""

import html
import re

import pytest

from entities.models import Entity
from jobs.models import Review, Run
from jobs.waits.review import admin as review_admin
from tests.factories import make_entities, make_workflow, run_inline, start_run

pytestmark = pytest.mark.django_db

STEPS = [
    {
        "id": "tidy",
        "type": "transform",
        "config": {"operations": [{"op": "set", "field": "slug", "value": "{{ entity.title }}"}]},
    },
    {
        "id": "check",
        "type": "review",
        "config": {"instructions": "Is {{ entity.slug }} right?", "fields": ["slug", "price"]},
    },
    {"id": "pub", "type": "publish", "config": {}},
]


def parked(product_type, n=2, name="Tidy and review"):
    ids = make_entities(product_type, n)
    run = start_run(make_workflow(product_type, STEPS, name=name), ids)
    run_inline(run.pk)
    return Run.objects.get(pk=run.pk), ids


def test_the_queue_shows_each_review_side_by_side_newest_first(staff, product_type):
    run, _ = parked(product_type)
    page = staff.get("/admin/").content.decode()
    assert 'id="reviews-link"' in page
    page = staff.get("/admin/jobs/review/").content.decode()
    first, second = Review.objects.filter(run=run).order_by("pk")
    assert page.index(f'id="review-{second.pk}"') < page.index(f'id="review-{first.pk}"')
    assert "Is Item 0 right?" in page and "Is Item 1 right?" in page
    assert 'class="changed" data-field="slug"' in page  # the field the run changed
    assert 'class="" data-field="price"' in page  # shown, unchanged
    assert "2 pending reviews" in page
    [run_link] = set(re.findall(r'href="(/admin/jobs/run/[^"]+/change/)"', page))
    assert staff.get(run_link).status_code == 200  # the id is quoted as the admin's URLs are


def test_the_queue_filters_by_workflow_and_run(staff, product_type):
    run, _ = parked(product_type, n=1, name="First")
    other, _ = parked(product_type, n=1, name="Second")
    mine = Review.objects.get(run=run).pk
    theirs = Review.objects.get(run=other).pk
    by_run = staff.get(f"/admin/jobs/review/?run={run.pk}").content.decode()
    assert mine in by_run and theirs not in by_run
    by_workflow = staff.get(f"/admin/jobs/review/?workflow={other.workflow_id}").content.decode()
    assert theirs in by_workflow and mine not in by_workflow


def test_approving_with_an_edited_value_stores_the_edit(staff, product_type):
    run, _ = parked(product_type, n=1)
    review = Review.objects.get(run=run)
    response = staff.post(
        "/admin/jobs/review/decide/",
        {
            "review": review.pk,
            "decision": "approve",
            "kind-0": "text",
            "value-0": "hand-made",
            "kind-1": "json",
            "value-1": "0",
            "comment": "fixed the slug",
            "back": f"/admin/jobs/review/?run={run.pk}",
        },
    )
    assert response.status_code == 302 and response["Location"].endswith(f"?run={run.pk}")
    review.refresh_from_db()
    assert (review.status, review.edits, review.comment) == (
        "approved",
        {"slug": "hand-made"},
        "fixed the slug",
    )


@pytest.mark.parametrize(
    ("kind", "value", "message"),
    [
        ("json", "not json", "data.price: Is not valid JSON."),
        ("json", "-3", "data.price: must be at least 0"),
        ("json", '"cheap"', "data.price: must be of type number"),
    ],
)
def test_a_bad_edit_is_reported_and_decides_nothing(staff, product_type, kind, value, message):
    run, _ = parked(product_type, n=1)
    review = Review.objects.get(run=run)
    response = staff.post(
        "/admin/jobs/review/decide/",
        {"review": review.pk, "decision": "approve", "kind-1": kind, "value-1": value},
        follow=True,
    )
    assert message in html.unescape(response.content.decode())
    assert Review.objects.get(pk=review.pk).status == "pending"


def test_selected_reviews_are_decided_at_once(staff, product_type):
    run, _ = parked(product_type, n=3)
    chosen = list(Review.objects.filter(run=run).order_by("pk").values_list("pk", flat=True))[:2]
    response = staff.post(
        "/admin/jobs/review/decide-many/",
        {"ids": chosen, "decision": "reject", "comment": "not yet"},
        follow=True,
    )
    assert "2 reviews rejected." in response.content.decode()
    statuses = dict(Review.objects.filter(run=run).values_list("pk", "status"))
    assert [statuses[pk] for pk in chosen] == ["rejected", "rejected"]
    assert list(statuses.values()).count("pending") == 1


def test_the_run_page_says_how_many_wait_and_links_to_them(staff, product_type):
    run, _ = parked(product_type, n=3)
    page = staff.get(f"/admin/jobs/run/{run.pk}/change/").content.decode()
    assert "3 entities waiting for review" in page
    assert f'href="/admin/jobs/review/?run={run.pk}" id="run-reviews-link"' in page
    assert "0 / 3 (0 failed, 3 waiting)" in page
    assert staff.get(f"/admin/jobs/run/{run.pk}/progress/").json()["waiting"] == 3


def test_staff_without_the_decide_permission_see_the_queue_without_buttons(
    client, django_user_model, product_type
):
    from django.contrib.auth.models import Permission

    user = django_user_model.objects.create_user("viewer", password="pw-for-tests-1")
    user.is_staff = True
    user.save()
    # Reading a review is reading entity data: view_entity too.
    user.user_permissions.add(
        Permission.objects.get(codename="view_review"),
        Permission.objects.get(codename="view_entity"),
    )
    client.login(username="viewer", password="pw-for-tests-1")
    run, _ = parked(product_type, n=1)
    page = client.get("/admin/jobs/review/").content.decode()
    assert "Is Item 0 right?" in page and "Approve selected" not in page
    review = Review.objects.get(run=run)
    client.post("/admin/jobs/review/decide/", {"review": review.pk, "decision": "approve"})
    assert Review.objects.get(pk=review.pk).status == "pending"
    assert not Entity.objects.filter(status="published").exists()


LONG_STEPS = [
    {
        "id": "tidy",
        "type": "transform",
        "config": {"operations": [{"op": "set", "field": "notes", "value": "y" * 30_000}]},
    },
    {
        "id": "check",
        "type": "review",
        "config": {"instructions": "Ok?", "fields": ["notes", "title"]},
    },
]


def test_the_queue_of_large_reviews_is_bounded_and_each_seen_whole_alone(
    staff, product_type, monkeypatch
):
    monkeypatch.setattr(review_admin, "PAGE_CHARS_SHOWN", 20_000)  # about 5 reviews a page
    ids = make_entities(product_type, 30, notes="x" * 30_000)
    run = start_run(make_workflow(product_type, LONG_STEPS), ids)
    run_inline(run.pk)
    url, seen, pages = "/admin/jobs/review/", [], 0
    while url:
        response = staff.get(url)
        page = response.content.decode()
        assert len(response.content) < 200_000  # was 60 MB for 100 reviews of large entities
        assert "x" * 2_001 not in page and "y" * 2_001 not in page
        seen += re.findall(r'<section class="review" id="review-([^"]+)"', page)
        pages += 1
        older = re.search(r'<a href="([^"]+)" id="older-reviews">', page)
        url = html.unescape(older.group(1)) if older else None
    assert sorted(seen) == sorted(Review.objects.filter(run=run).values_list("pk", flat=True))
    assert pages >= 6
    # A cut value is not editable in the queue; the whole review is, on its own page.
    review = Review.objects.filter(run=run).order_by("-pk").first()
    queue = staff.get(f"/admin/jobs/review/?run={run.pk}").content.decode()
    assert f'href="?review={review.pk}" id="whole-{review.pk}"' in queue
    alone = staff.get(f"/admin/jobs/review/?review={review.pk}").content.decode()
    assert "y" * 30_000 in alone and "x" * 30_000 in alone
    assert alone.count('<section class="review"') == 1
    assert 'aria-label="notes"' in alone
    staff.post(
        "/admin/jobs/review/decide/",
        {
            "review": review.pk,
            "decision": "approve",
            "kind-0": "text",
            "value-0": "short",
        },
    )
    review.refresh_from_db()
    assert (review.status, review.edits) == ("approved", {"notes": "short"})


def test_approving_from_the_queue_leaves_a_cut_value_as_it_was(staff, product_type):
    [entity_id] = make_entities(product_type, 1, notes="x" * 30_000)
    run = start_run(make_workflow(product_type, LONG_STEPS), [entity_id])
    run_inline(run.pk)
    review = Review.objects.get(run=run)
    page = staff.get("/admin/jobs/review/").content.decode()
    assert 'aria-label="notes"' not in page and 'aria-label="title"' in page
    staff.post(
        "/admin/jobs/review/decide/",
        {"review": review.pk, "decision": "approve", "kind-1": "text", "value-1": "Item 0"},
    )
    review.refresh_from_db()
    assert review.status == "approved" and not review.edits
