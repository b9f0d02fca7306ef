"""The admin's pages as staff meet them over large tables: a page's queries do not grow with
the rows it shows, and no list reads a whole table of records to draw its filters."""

import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from jobs.models import Review
from tests.admin.test_review_pages import parked
from tests.factories import make_workflow

pytestmark = pytest.mark.django_db

TRANSFORM = {"operations": [{"op": "set", "field": "slug", "value": "x"}]}


def _queries(client, url: str) -> list[str]:
    client.get(url)  # what a process caches for a while is read once, before
    with CaptureQueriesContext(connection) as captured:
        assert client.get(url).status_code == 200
    return [query["sql"] for query in captured]


def test_the_queue_of_decided_reviews_reads_their_revisions_in_one_query(staff, product_type):
    def decided(n: int) -> int:
        run, _ = parked(product_type, n=n)
        for review in Review.objects.filter(run=run):
            staff.post("/admin/jobs/review/decide/", {"review": review.pk, "decision": "reject"})
        return len(_queries(staff, f"/admin/jobs/review/?status=rejected&run={run.pk}"))

    assert decided(12) == decided(2)


def test_the_reviews_workflow_choices_are_read_from_the_workflows_not_their_reviews(
    staff, product_type
):
    """The choices were the workflows joined to every review (DISTINCT over all of them:
    half a second at 300,000 reviews); they are the workflows whose versions hold a review
    step, read from the definitions."""
    run, _ = parked(product_type, n=2, name="Reviewed")
    make_workflow(product_type, [{"id": "t", "type": "transform", "config": TRANSFORM}])
    queries = _queries(staff, "/admin/jobs/review/")
    assert not [
        sql for sql in queries if 'FROM "workflows_workflow"' in sql and "jobs_review" in sql
    ]
    page = staff.get("/admin/jobs/review/").content.decode()
    assert re.findall(r'<option value="(wf_[^"]+)"', page) == [run.workflow_id]
