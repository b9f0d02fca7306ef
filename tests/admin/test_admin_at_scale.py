"""The admin's pages as staff meet them over large tables: a page's queries do not grow with
the rows it shows, and no list reads a whole table of records to draw its filters."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from jobs.models import Review
from tests.admin.test_review_pages import parked

pytestmark = pytest.mark.django_db


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
