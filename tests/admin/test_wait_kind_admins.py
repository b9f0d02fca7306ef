"""Each kind of wait's admin pages are registered (`WaitKind.admin`, loaded by `jobs/admin.py`
as Django's admin loads it, before the jobs app is ready): the events a service sent are
listed with what they woke."""

import pytest
from django.contrib import admin

from jobs.waits.event.models import Event
from jobs.waits.kinds import kinds
from jobs.waits.review.models import Review

pytestmark = pytest.mark.django_db


def test_every_kinds_admin_is_registered():
    assert [kind.name for kind in kinds if kind.admin] == ["review", "event"]
    assert admin.site.is_registered(Review) and admin.site.is_registered(Event)


def test_the_events_page_lists_the_events_sent(staff, api):
    assert (
        api.post("/api/v1/events", {"name": "price.approved", "key": "sku-7"}).json()["matched"]
        == 0
    )
    page = staff.get("/admin/jobs/event/")
    assert page.status_code == 200
    assert Event.objects.get().pk in page.content.decode() and "sku-7" in page.content.decode()
