"""`wait_for_event` steps and `/api/v1/events`, driven in this process the way workers run
chunks: parked, woken by an event (sent after, or kept from before), timed out, refused."""

from datetime import timedelta

import pytest
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from entities.models import Entity
from jobs.engine.waits import run_waits_resume, waits_tick
from jobs.models import Run, RunItem, RunLog, Wait
from jobs.waits.event.models import Event, EventWait
from jobs.waits.event.services import EventIn, events_send, waits_time_out
from tests.conftest import Api
from tests.factories import make_entities, make_key, make_workflow, run_inline, start_run

pytestmark = pytest.mark.django_db

PUBLISH = {"id": "pub", "type": "publish", "config": {}}


def waiting_workflow(product_type, **config):
    step = {
        "id": "answer",
        "type": "wait_for_event",
        "config": {"event": "translation.done", "key": "{{ entity.title }}", **config},
    }
    return make_workflow(product_type, [step, PUBLISH])


def park(workflow, ids, capture) -> Run:
    run = start_run(workflow, ids)
    with capture(execute=True):
        run_inline(run.pk)
    return Run.objects.get(pk=run.pk)


def resume(run: Run) -> Run:
    run_waits_resume(run_id=run.pk)
    run_inline(run.pk)
    return Run.objects.get(pk=run.pk)


def test_an_event_wakes_the_entities_waiting_for_its_key_with_its_data(
    api, product_type, django_capture_on_commit_callbacks
):
    ids = make_entities(product_type, 3)  # titles Item 0..2
    run = park(
        waiting_workflow(product_type, outputField="translation"),
        ids,
        django_capture_on_commit_callbacks,
    )
    assert run.waiting == 3
    items = api.get(f"/api/v1/workflows/{run.workflow_id}/runs/{run.pk}/items").json()
    assert {item["waitingFor"]["key"] for item in items} == {"Item 0", "Item 1", "Item 2"}
    assert {item["waitingFor"]["event"] for item in items} == {"translation.done"}

    body = {"name": "translation.done", "key": "Item 1", "data": {"fr": "Article 1"}, "id": "t-1"}
    response = api.post("/api/v1/events", body)
    assert response.status_code == 200, response.json()
    assert response.json()["matched"] == 1
    again = api.post("/api/v1/events", body).json()  # the same id: wakes nothing twice
    assert again["matched"] == 0 and again["events"][0]["duplicate"] is True
    assert again["events"][0]["matched"] == 1

    run = resume(run)
    assert (run.completed, run.waiting) == (1, 2)
    entity = Entity.objects.get(pk=ids[1])
    assert entity.data["translation"] == {"fr": "Article 1"} and entity.status == "published"
    listed = api.get("/api/v1/events?name=translation.done&key=Item 1").json()
    assert [(e["sentId"], e["matched"]) for e in listed] == [("t-1", 1)]


def test_an_event_sent_before_the_entity_arrives_still_wakes_it(
    api, product_type, django_capture_on_commit_callbacks
):
    ids = make_entities(product_type, 2)
    sent = api.post(
        "/api/v1/events",
        {"events": [{"name": "translation.done", "key": "Item 0", "data": "early"}]},
    ).json()
    assert sent["matched"] == 0  # no one yet: kept
    run = park(waiting_workflow(product_type), ids, django_capture_on_commit_callbacks)
    assert Wait.objects.filter(run=run, status="resolved").count() == 1
    run = resume(run)
    assert (run.completed, run.waiting) == (1, 1)
    item = RunItem.objects.get(run=run, entity_id=ids[0])
    assert item.status == "completed"
    assert Event.objects.get().matched == 1


def test_an_expired_event_wakes_no_one(api, product_type, django_capture_on_commit_callbacks):
    ids = make_entities(product_type, 1)
    api.post("/api/v1/events", {"name": "translation.done", "key": "Item 0"})
    Event.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    run = park(waiting_workflow(product_type), ids, django_capture_on_commit_callbacks)
    assert run.waiting == 1 and not Wait.objects.filter(status="resolved").exists()


@pytest.mark.parametrize(
    ("on_timeout", "status", "error"),
    [("fail", "failed", "came in time"), ("stop", "skipped", ""), ("continue", "completed", "")],
)
def test_a_timeout_ends_the_wait_as_on_timeout_says(
    product_type, django_capture_on_commit_callbacks, on_timeout, status, error
):
    ids = make_entities(product_type, 2)
    workflow = waiting_workflow(product_type, timeoutMinutes=30, onTimeout=on_timeout)
    run = park(workflow, ids, django_capture_on_commit_callbacks)
    assert waits_tick() == 0  # not yet
    EventWait.objects.filter(pk__in=Wait.objects.filter(entity_id=ids[0]).values("pk")).update(
        timeout_at=timezone.now()
    )
    assert waits_tick() == 1
    run = resume(run)
    item = RunItem.objects.get(run=run, entity_id=ids[0])
    assert item.status == status and error in item.error
    assert run.waiting == 1


def test_timing_out_waits_takes_as_many_statements_for_3_entities_as_for_12(
    product_type, django_capture_on_commit_callbacks
):
    """Timeouts come in thousands (a run's entities parked together time out together):
    resolved one wait at a time, a tick took a millisecond or more per wait, holding the
    waits' queue (and every delay due meanwhile) for seconds per thousand."""

    def time_out(n: int) -> list[str]:
        workflow = waiting_workflow(product_type, timeoutMinutes=30, onTimeout="fail")
        run = park(workflow, make_entities(product_type, n), django_capture_on_commit_callbacks)
        EventWait.objects.filter(run_id=run.pk).update(timeout_at=timezone.now())
        with CaptureQueriesContext(connection) as captured:
            assert waits_time_out(now=timezone.now()) == n
        assert run.items.filter(status="waiting").count() == n  # resolved, to be resumed
        assert not Wait.objects.filter(run=run, status="waiting").exists()
        return [query["sql"] for query in captured.captured_queries]

    assert len(time_out(3)) == len(time_out(12))


def test_a_kind_whose_tick_fails_stops_no_other_kind_s_tick(
    product_type, django_capture_on_commit_callbacks, monkeypatch, caplog
):
    """Reviews tick first: a fault in theirs (or any kind's) left every kind after it
    unticked, each tick, until it was fixed: here a wait for an event timed out for ever."""
    from jobs.waits.base import kinds

    def broken(*, now):
        raise RuntimeError("the review kind broke")

    [entity_id] = make_entities(product_type, 1)
    workflow = waiting_workflow(product_type, timeoutMinutes=30, onTimeout="stop")
    park(workflow, [entity_id], django_capture_on_commit_callbacks)
    EventWait.objects.update(timeout_at=timezone.now())
    monkeypatch.setattr(kinds.get("review"), "tick", broken)
    with pytest.raises(RuntimeError, match="the review kind broke"):
        waits_tick()  # the task still fails, for the log and its retry
    assert Wait.objects.get(entity_id=entity_id).status == "resolved"
    assert "The 'review' waits' tick failed; the other kinds tick on." in caplog.text


def test_cancel_ends_waiting_entities_and_their_waits(
    api, product_type, django_capture_on_commit_callbacks
):
    from jobs.cancel import run_cancel

    ids = make_entities(product_type, 3)
    run = park(waiting_workflow(product_type), ids, django_capture_on_commit_callbacks)
    run_cancel(run_id=run.pk)
    run = Run.objects.get(pk=run.pk)
    assert (run.status, run.cancelled) == ("cancelled", 3)
    assert not EventWait.objects.exists()
    assert (
        api.post("/api/v1/events", {"name": "translation.done", "key": "Item 0"}).json()["matched"]
        == 0
    )


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "name"),
        ({"name": "Bad Name", "key": "a"}, "name"),
        ({"name": "x" * 101, "key": "a"}, "name"),
        ({"name": "ok", "key": ""}, "key"),
        ({"name": "ok", "key": "k" * 501}, "key"),
        ({"name": "ok", "key": 5}, "key"),
        ({"name": "ok", "key": "a", "extra": 1}, "extra"),
        ({"name": "ok", "key": "a", "events": [{"name": "ok", "key": "b"}]}, "key"),
        ({"events": []}, "events"),
        ({"events": [{"name": "ok"}]}, "events[0].key"),
        ({"events": [{"name": "ok", "key": "a"}] * 1001}, "events"),
        ({"name": "ok", "key": "a", "id": "i" * 201}, "id"),
    ],
)
def test_a_careless_send_is_a_400_naming_the_field(api, body, field):
    response = api.post("/api/v1/events", body)
    assert response.status_code == 400, response.json()
    fields = [detail["field"] for detail in response.json()["error"]["details"]]
    assert any(f.startswith(field) for f in fields), fields
    assert not Event.objects.exists()


def test_a_send_retried_with_its_idempotency_key_replays_the_first_and_wakes_no_later_entity(
    api, product_type, django_capture_on_commit_callbacks
):
    """The contract: writes that create work take `Idempotency-Key`. A send without an `id`
    retried with its key stored a second event, kept for the next entity reaching the step
    (another run's) with the first's news."""
    ids = make_entities(product_type, 1)
    body = {"name": "translation.done", "key": "Item 0", "data": "first"}
    earlier = park(waiting_workflow(product_type), ids, django_capture_on_commit_callbacks)
    first = api.post("/api/v1/events", body, HTTP_IDEMPOTENCY_KEY="send-1")
    assert first.status_code == 200 and first.json()["matched"] == 1
    later = park(waiting_workflow(product_type), ids, django_capture_on_commit_callbacks)
    again = api.post("/api/v1/events", body, HTTP_IDEMPOTENCY_KEY="send-1")
    assert again.status_code == 200 and again.json() == first.json()
    assert again["Idempotent-Replayed"] == "true"
    assert Event.objects.count() == 1
    assert Wait.objects.get(run=earlier).status == "resolved"
    assert Wait.objects.get(run=later).status == "waiting"
    other = api.post("/api/v1/events", {**body, "data": "x"}, HTTP_IDEMPOTENCY_KEY="send-1")
    assert other.status_code == 409 and Event.objects.count() == 1


def test_the_openapi_document_bounds_a_sends_events_as_the_api_does(api):
    """Served: 1 to 1,000 `events`; documented: any number, so a client built from the
    schema sent 1,001 and met a 400 its types never mentioned."""
    schemas = api.get("/api/v1/schema?format=json").json()["components"]["schemas"]
    events = schemas["EventSendRequest"]["properties"]["events"]
    assert (events.get("minItems"), events.get("maxItems")) == (1, 1000)
    assert events["items"] == {"$ref": "#/components/schemas/EventInRequest"}


@pytest.mark.parametrize(
    ("body", "missing"),
    [({"key": "k"}, ["name"]), ({"name": "paid"}, ["key"]), ({}, ["name", "key"])],
)
def test_a_missing_name_or_key_has_the_detail_code_required(api, body, missing):
    response = api.post("/api/v1/events", body)
    assert response.status_code == 400
    details = response.json()["error"]["details"]
    assert sorted((d["field"], d["code"]) for d in details) == sorted(
        (field, "required") for field in missing
    )


def test_a_read_only_key_may_list_but_not_send(read_only_api):
    assert read_only_api.post("/api/v1/events", {"name": "a", "key": "b"}).status_code == 403
    assert read_only_api.get("/api/v1/events").status_code == 200
    assert read_only_api.get("/api/v1/events?nme=a").status_code == 400  # unknown parameter


def test_the_events_list_pages_like_every_list(api):
    """Its query serializer refused `limit` and `cursor` as unknown fields: following the
    `Link` of a full page was a 400, so events past the first page could not be read."""
    events_send(events=[EventIn(name="price.ok", key=f"sku-{i}") for i in range(60)])
    first = api.get("/api/v1/events")
    assert first.status_code == 200 and len(first.json()) == 50
    link = first.headers["Link"]
    second = api.get(link[link.index("<") + 1 : link.index(">")])
    assert second.status_code == 200, second.content[:300]
    assert len(second.json()) == 10
    assert {e["key"] for e in first.json() + second.json()} == {f"sku-{i}" for i in range(60)}
    assert len(api.get("/api/v1/events", {"limit": "5", "name": "price.ok"}).json()) == 5
    assert api.get("/api/v1/events", {"limits": "5"}).status_code == 400  # unknown parameter


def test_a_key_for_events_only_sends_events_and_nothing_else(capsys):
    call_command("create_api_key", "answering-system", "--events-only")
    sender = Api(capsys.readouterr().out.strip())
    assert sender.post("/api/v1/events", {"name": "a", "key": "b"}).status_code == 200
    assert sender.get("/api/v1/events").status_code == 200
    assert sender.get("/api/v1/entities").status_code == 403
    assert sender.get("/api/v1/reviews").status_code == 403
    assert (
        Api(make_key(perms=["jobs.view_run"]))
        .post("/api/v1/events", {"name": "a", "key": "b"})
        .status_code
        == 403
    )


def test_retention_prunes_events_past_their_keep_time(api):
    from jobs.retention import retention_prune

    api.post("/api/v1/events", {"events": [{"name": "a", "key": str(n)} for n in range(3)]})
    Event.objects.filter(key="0").update(expires_at=timezone.now() - timedelta(days=1))
    pruned = retention_prune()
    assert pruned.rows["waits_event_prune"] == 1
    assert sorted(Event.objects.values_list("key", flat=True)) == ["1", "2"]


def test_an_events_id_is_taken_once_for_a_day_though_the_event_was_pruned_before(
    api, product_type, django_capture_on_commit_callbacks
):
    from jobs.retention import retention_prune

    ids = make_entities(product_type, 1)
    body = {"name": "translation.done", "key": "Item 0", "data": "first", "id": "t-1"}
    assert api.post("/api/v1/events", body).json()["matched"] == 0  # no one waits: kept
    # Three hours on: past its keep time and its listing's (EVENT_KEEP_MINUTES, 60), and
    # retention has run. An entity now reaches the step; the sender retries its send late.
    now = timezone.now()
    Event.objects.update(received_at=now - timedelta(hours=3), expires_at=now - timedelta(hours=2))
    retention_prune()
    run = park(waiting_workflow(product_type), ids, django_capture_on_commit_callbacks)
    again = api.post("/api/v1/events", body).json()
    assert again["events"][0]["duplicate"] is True and again["matched"] == 0
    assert Wait.objects.get(run=run).status == "waiting"  # not woken by the old news
    # A day on, the id is forgotten as an Idempotency-Key is, and the event pruned.
    Event.objects.update(received_at=now - timedelta(hours=25))
    assert retention_prune().rows["waits_event_prune"] == 1
    assert not Event.objects.exists()


def test_the_run_page_shows_what_each_waiting_entity_waits_for(
    admin_client, product_type, django_capture_on_commit_callbacks
):
    ids = make_entities(product_type, 2)
    run = park(waiting_workflow(product_type), ids, django_capture_on_commit_callbacks)
    page = admin_client.get(f"/admin/jobs/run/{run.pk}/change/").content.decode()
    assert "event: event translation.done, key Item 0" in page
    assert "key Item 1" in page


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "ok", "key": "a", "data": {"text": "x" * 2000}}, "data"),
        (
            {
                "events": [
                    {"name": "ok", "key": "a"},
                    {"name": "ok", "key": "b", "data": "y" * 2000},
                ]
            },
            "events[1].data",
        ),
    ],
)
def test_an_events_data_is_bounded_as_entity_data_is(api, settings, body, field):
    settings.ENTITY_MAX_DATA_BYTES = 1024
    response = api.post("/api/v1/events", body)
    assert response.status_code == 400, response.json()
    [detail] = response.json()["error"]["details"]
    assert (detail["field"], detail["code"]) == (field, "too_large")
    assert "limit is 1024" in detail["message"]
    assert not Event.objects.exists()
    body = {"name": "ok", "key": "a", "data": {"text": "x" * 900}}
    assert api.post("/api/v1/events", body).status_code == 200  # up to the limit


@pytest.mark.parametrize("on_timeout", ["fail", "stop"])
def test_a_timeout_says_so_without_quoting_the_key_rendered_from_the_entity(
    product_type, django_capture_on_commit_callbacks, on_timeout
):
    """An item's error and the run's log are read with `jobs.view_run` alone, which does not
    let anyone read entities (docs/api.md, Auth): a timeout quoted the key, rendered from
    the entity's data (`{{ entity.title }}`)."""
    [entity_id] = make_entities(product_type, 1)
    Entity.objects.filter(pk=entity_id).update(data={"title": "Secret title", "price": 1})
    workflow = waiting_workflow(product_type, timeoutMinutes=30, onTimeout=on_timeout)
    run = park(workflow, [entity_id], django_capture_on_commit_callbacks)
    EventWait.objects.update(timeout_at=timezone.now())
    assert waits_tick() == 1
    run = resume(run)
    item = RunItem.objects.get(run=run)
    said = [item.error, *RunLog.objects.filter(run=run).values_list("message", flat=True)]
    assert any("came in time" in text for text in said), said
    assert not any("Secret title" in text for text in said), said
