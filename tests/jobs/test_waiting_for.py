"""A run's items say what each waiting entity waits for, its times in ms like every timestamp
the API serves."""

import time
from datetime import UTC, datetime

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.utils.formats import date_format
from django.utils.timezone import localtime

from jobs.models import Run
from tests.conftest import Api
from tests.factories import make_entities, make_key, make_workflow, run_inline, start_run

pytestmark = pytest.mark.django_db
PUBLISH = {"type": "publish", "config": {}}


def waiting_items(api, workflow, ids, capture) -> list[dict]:
    run = start_run(workflow, ids)
    with capture(execute=True):
        run_inline(run.pk)
    run = Run.objects.get(pk=run.pk)
    assert run.waiting == len(ids), list(run.items.values_list("status", "error"))
    return api.get(f"/api/v1/workflows/{workflow.pk}/runs/{run.pk}/items").json()


@pytest.mark.parametrize(
    ("step", "kind", "field", "minutes"),
    [
        ({"type": "delay", "config": {"minutes": 30}}, "delay", "until", 30),
        (
            {
                "type": "wait_for_event",
                "config": {"event": "price.ok", "key": "{{ entity.title }}", "timeoutMinutes": 45},
            },
            "event",
            "timeoutAt",
            45,
        ),
    ],
)
def test_waiting_items_show_their_time_in_ms(
    api, product_type, django_capture_on_commit_callbacks, step, kind, field, minutes
):
    ids = make_entities(product_type, 2)
    before = time.time() * 1000
    items = waiting_items(
        api, make_workflow(product_type, [step, PUBLISH]), ids, django_capture_on_commit_callbacks
    )
    after = time.time() * 1000
    for item in items:
        assert item["status"] == "waiting" and item["waitingFor"]["kind"] == kind
        at = item["waitingFor"][field]
        assert isinstance(at, int), at
        assert before + minutes * 60_000 - 1000 <= at <= after + minutes * 60_000 + 1000


def test_an_event_wait_without_a_timeout_shows_none(
    api, product_type, django_capture_on_commit_callbacks
):
    step = {"type": "wait_for_event", "config": {"event": "price.ok", "key": "{{ entity.title }}"}}
    items = waiting_items(
        api,
        make_workflow(product_type, [step, PUBLISH]),
        make_entities(product_type, 1),
        django_capture_on_commit_callbacks,
    )
    assert items[0]["waitingFor"]["timeoutAt"] is None


@pytest.mark.parametrize(
    ("step", "field"),
    [
        ({"type": "delay", "config": {"minutes": 30}}, "until"),
        (
            {
                "type": "wait_for_event",
                "config": {"event": "price.ok", "key": "{{ entity.title }}", "timeoutMinutes": 30},
            },
            "timeoutAt",
        ),
    ],
)
def test_the_run_page_shows_a_waiting_entitys_time_as_a_date_not_in_ms(
    api, admin_client, product_type, django_capture_on_commit_callbacks, step, field
):
    """The admin's run page said `delay: until 1796682270000`: the API's milliseconds, which
    a person reads as nothing."""
    workflow = make_workflow(product_type, [step, PUBLISH])
    [item] = waiting_items(
        api, workflow, make_entities(product_type, 1), django_capture_on_commit_callbacks
    )
    at = item["waitingFor"][field]
    run = Run.objects.get(workflow=workflow)
    page = admin_client.get(f"/admin/jobs/run/{run.pk}/change/").content.decode()
    assert str(at) not in page
    when = localtime(datetime.fromtimestamp(at / 1000, tz=UTC))
    assert f"{field} {date_format(when, 'DATETIME_FORMAT')}" in page


EVENT_STEP = {
    "type": "wait_for_event",
    "config": {"event": "price.ok", "key": "{{ entity.title }}"},
}


@pytest.mark.parametrize(
    ("perms", "key"),
    [(["jobs.view_run"], None), (["jobs.view_run", "entities.view_entity"], "Item 0")],
)
def test_an_event_waits_key_is_shown_to_who_may_read_entities(
    product_type, django_capture_on_commit_callbacks, perms, key
):
    """The key is rendered from the entity's data (`{{ entity.title }}`): a run's items,
    read with `jobs.view_run`, showed it to keys that may not read entities."""
    workflow = make_workflow(product_type, [EVENT_STEP, PUBLISH])
    reader = Api(make_key(perms=perms))
    [item] = waiting_items(
        reader, workflow, make_entities(product_type, 1), django_capture_on_commit_callbacks
    )
    assert item["waitingFor"]["kind"] == "event" and item["waitingFor"]["event"] == "price.ok"
    assert item["waitingFor"]["key"] == key


@pytest.mark.parametrize(
    ("perms", "shown"), [(["view_run"], False), (["view_run", "view_entity"], True)]
)
def test_the_run_page_shows_an_event_waits_key_to_who_may_read_entities(
    api, client, product_type, django_capture_on_commit_callbacks, perms, shown
):
    workflow = make_workflow(product_type, [EVENT_STEP, PUBLISH])
    waiting_items(api, workflow, make_entities(product_type, 1), django_capture_on_commit_callbacks)
    staff = get_user_model().objects.create(username="clerk", is_staff=True)
    staff.user_permissions.set(Permission.objects.filter(codename__in=perms))
    client.force_login(staff)
    run = Run.objects.get(workflow=workflow)
    page = client.get(f"/admin/jobs/run/{run.pk}/change/").content.decode()
    assert "event price.ok" in page
    assert ("Item 0" in page) is shown
