"""How events and waiting entities meet when something goes wrong or comes late: a send
that died after storing its events, bulk sends naming the same runs in other orders, an
event matched by an entity parking after it, a run being cancelled."""

import threading
from datetime import timedelta
from unittest import mock

import pytest
from django.db import OperationalError, connection
from django.db.models import F
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from entities.models import Entity
from jobs.engine import waits as engine_waits
from jobs.engine.waits import waits_tick
from jobs.models import Run, Wait
from jobs.waits.event import services
from jobs.waits.event.models import Event, EventRecheck, EventWait
from tests.factories import make_entities, make_workflow
from tests.jobs.test_events import PUBLISH, park, resume, waiting_workflow

pytestmark = pytest.mark.django_db

SENT = {"name": "translation.done", "key": "Item 0", "data": "x", "id": "delivery-1"}


def _send_dies_after_storing(api, monkeypatch, body) -> None:
    """Send `body`, the request dying between storing the event and waking (a deadlock,
    gunicorn's timeout)."""

    def dies(*args, **kwargs):
        raise OperationalError("deadlock detected")

    with monkeypatch.context() as patched:
        patched.setattr(services, "_wake", dies)
        with pytest.raises(OperationalError):
            api.post("/api/v1/events", body)


def test_the_senders_retry_wakes_the_entities_a_send_that_died_did_not(
    api, product_type, django_capture_on_commit_callbacks, monkeypatch
):
    ids = make_entities(product_type, 1)
    run = park(
        waiting_workflow(product_type, outputField="translation"),
        ids,
        django_capture_on_commit_callbacks,
    )
    EventWait.objects.update(created_at=timezone.now() - timedelta(minutes=10))  # long parked
    _send_dies_after_storing(api, monkeypatch, SENT)
    first = Event.objects.get()
    assert first.matched == 0  # stored, kept, woke no one

    again = api.post("/api/v1/events", SENT).json()
    assert again["matched"] == 1
    assert again["events"] == [{"eventId": first.pk, "matched": 1, "duplicate": True}]
    assert list(Wait.objects.filter(run=run).values_list("status", flat=True)) == ["resolved"]
    # Sent a third time, it wakes nothing: the event woke its entity once, and is used up.
    third = api.post("/api/v1/events", SENT).json()
    assert third["matched"] == 0 and third["events"][0]["matched"] == 1
    run = resume(run)
    assert run.completed == 1
    assert Entity.objects.get(pk=ids[0]).data["translation"] == "x"
    assert Event.objects.count() == 1


def test_the_tick_wakes_the_entities_a_send_that_died_did_not(
    api, product_type, django_capture_on_commit_callbacks, monkeypatch
):
    ids = make_entities(product_type, 1)
    run = park(waiting_workflow(product_type), ids, django_capture_on_commit_callbacks)
    EventWait.objects.update(created_at=timezone.now() - timedelta(minutes=10))
    _send_dies_after_storing(api, monkeypatch, SENT)

    assert waits_tick() == 1  # no retry came: the tick looks again at the events come lately
    assert list(Wait.objects.filter(run=run).values_list("status", flat=True)) == ["resolved"]
    assert Event.objects.get().matched == 1
    assert waits_tick() == 0
    assert api.post("/api/v1/events", SENT).json()["matched"] == 0  # the retry, late


def test_a_tick_that_comes_late_still_wakes_the_entities_a_send_that_died_did_not(
    api, product_type, django_capture_on_commit_callbacks, monkeypatch
):
    """The waits' worker (or beat) was down for 10 minutes: the send that died meanwhile
    came more than RECHECK before the next tick, which looks back from the last tick that
    finished instead."""
    ids = make_entities(product_type, 1)
    run = park(waiting_workflow(product_type), ids, django_capture_on_commit_callbacks)
    EventWait.objects.update(created_at=timezone.now() - timedelta(minutes=20))
    assert waits_tick() == 0  # the last tick before the outage: nothing to do
    _send_dies_after_storing(api, monkeypatch, SENT)
    outage = timedelta(minutes=10)
    Event.objects.update(received_at=F("received_at") - outage)
    EventRecheck.objects.update(checked_through=F("checked_through") - outage)

    assert waits_tick() == 1
    assert list(Wait.objects.filter(run=run).values_list("status", flat=True)) == ["resolved"]
    assert Event.objects.get().matched == 1
    # That tick saw all it found: the next looks back from it, not from before the outage.
    assert timezone.now() - EventRecheck.objects.get().checked_through < outage


def test_a_tick_that_found_more_than_it_takes_leaves_the_look_to_the_next(
    api, product_type, django_capture_on_commit_callbacks, monkeypatch
):
    ids = make_entities(product_type, 2)  # titles Item 0 and Item 1: an event each
    run = park(waiting_workflow(product_type), ids, django_capture_on_commit_callbacks)
    EventWait.objects.update(created_at=timezone.now() - timedelta(minutes=20))
    assert waits_tick() == 0
    marked = EventRecheck.objects.get().checked_through
    for n in range(2):
        _send_dies_after_storing(api, monkeypatch, {**SENT, "key": f"Item {n}", "id": f"d-{n}"})
    monkeypatch.setattr(services, "RECHECK_MAX", 1)
    assert waits_tick() == 1  # one of the two, and the mark stays for the other
    assert EventRecheck.objects.get().checked_through == marked
    assert waits_tick() == 1
    assert list(Wait.objects.filter(run=run).values_list("status", flat=True)) == ["resolved"] * 2


def test_a_bulk_send_locks_its_runs_rows_once_whatever_the_order_of_its_events(
    api, product_type, django_capture_on_commit_callbacks
):
    step = {"id": "w", "type": "wait_for_event", "config": {"event": "e", "key": "{{ run.id }}"}}
    workflow = make_workflow(product_type, [step, PUBLISH])
    runs = [
        park(workflow, make_entities(product_type, 2), django_capture_on_commit_callbacks)
        for _ in range(3)
    ]
    events = [{"name": "e", "key": run.pk} for run in sorted(runs, key=lambda r: r.pk)[::-1]]
    with CaptureQueriesContext(connection) as captured:
        sent = api.post("/api/v1/events", {"events": events}).json()
    assert sent["matched"] == 6
    locks = [
        query["sql"]
        for query in captured.captured_queries
        if '"jobs_run"' in query["sql"] and " FOR " in query["sql"]
    ]
    # One lock of all three runs' rows for the wake, one for queueing their entities or
    # asking their resumes: each in id order, not run by run in the order the events came.
    assert len(locks) == 2, locks


def test_an_event_that_woke_entities_parked_after_it_is_not_kept_for_a_later_run(
    api, product_type, django_capture_on_commit_callbacks
):
    ids = make_entities(product_type, 3)  # titles Item 0..2
    for n in range(2):  # Item 0 and Item 1 get one each, before anyone waits
        sent = api.post("/api/v1/events", {"name": "translation.done", "key": f"Item {n}"})
        assert sent.json()["matched"] == 0
    step = {"id": "w", "type": "wait_for_event", "config": {"event": "translation.done"}}
    workflow = make_workflow(
        product_type, [{**step, "config": {**step["config"], "key": "Item 0"}}, PUBLISH]
    )
    first = park(workflow, ids, django_capture_on_commit_callbacks)
    # The three entities of the chunk wait for Item 0's event: parked together, all get it.
    assert list(Wait.objects.filter(run=first).values_list("status", flat=True)) == ["resolved"] * 3
    assert resume(first).completed == 3
    used, kept = Event.objects.order_by("key")
    assert (used.matched, used.expires_at <= timezone.now()) == (3, True)
    assert (kept.matched, kept.expires_at > timezone.now()) == (0, True)

    later = park(workflow, ids[:1], django_capture_on_commit_callbacks)
    assert list(Wait.objects.filter(run=later).values_list("status", flat=True)) == ["waiting"]
    waits_tick()
    assert Wait.objects.get(run=later).status == "waiting"  # nor by the tick's second look


def test_a_later_run_waits_for_the_next_event_not_the_one_an_earlier_run_used(
    api, product_type, django_capture_on_commit_callbacks
):
    ids = make_entities(product_type, 1)
    api.post("/api/v1/events", {"name": "translation.done", "key": "Item 0", "data": "v1"})
    workflow = waiting_workflow(product_type, outputField="translation")
    assert resume(park(workflow, ids, django_capture_on_commit_callbacks)).completed == 1
    later = park(workflow, ids, django_capture_on_commit_callbacks)
    assert later.waiting == 1
    sent = api.post("/api/v1/events", {"name": "translation.done", "key": "Item 0", "data": "v2"})
    assert sent.json()["matched"] == 1
    assert resume(later).completed == 1
    assert Entity.objects.get(pk=ids[0]).data["translation"] == "v2"


def test_events_kept_from_before_the_one_used_are_not_handed_to_a_later_run(
    api, product_type, django_capture_on_commit_callbacks
):
    """v1 then v2 come while no one waits: the first run gets v2, the newest; a later run
    waits for the next event, not for v1, older news than what was used."""
    ids = make_entities(product_type, 1)
    for data in ("v1", "v2"):
        api.post("/api/v1/events", {"name": "translation.done", "key": "Item 0", "data": data})
    workflow = waiting_workflow(product_type, outputField="translation")
    assert resume(park(workflow, ids, django_capture_on_commit_callbacks)).completed == 1
    assert Entity.objects.get(pk=ids[0]).data["translation"] == "v2"
    later = park(workflow, ids, django_capture_on_commit_callbacks)
    assert later.waiting == 1
    waits_tick()
    assert Wait.objects.get(run=later).status == "waiting"
    assert not Event.objects.filter(expires_at__gt=timezone.now()).exists()


def test_an_event_that_woke_an_entity_wakes_no_later_run_s_entity_when_clocks_differ(
    product_type, django_capture_on_commit_callbacks
):
    """The event is sent to a web machine 5 s ahead of the chunk's that parks a later run's
    entity on the same name and key a moment after: the used event is not kept for it (it
    was "no longer kept" as of the sender's clock, still ahead of the chunk's)."""
    workflow = waiting_workflow(product_type, outputField="translation")
    first = park(workflow, make_entities(product_type, 1), django_capture_on_commit_callbacks)
    ahead = timezone.now() + timedelta(seconds=5)
    [sent] = services.events_send(
        events=[services.EventIn(name="translation.done", key="Item 0", data="first run's")],
        now=ahead,
    )
    assert sent.matched == 1
    assert list(Wait.objects.filter(run=first).values_list("status", flat=True)) == ["resolved"]
    later = park(workflow, make_entities(product_type, 1), django_capture_on_commit_callbacks)
    assert list(Wait.objects.filter(run=later).values_list("status", flat=True)) == ["waiting"]
    waits_tick()
    assert Wait.objects.get(run=later).status == "waiting"  # nor by the tick's second look


def test_events_used_by_a_chunk_on_a_machine_ahead_are_not_kept_for_a_later_run(
    api, product_type, django_capture_on_commit_callbacks
):
    """v1 then v2 come while no one waits; the first run's entity parks on a machine 5 s
    ahead and gets v2, which with v1 is no longer kept: a later run's entity parked on a
    machine on time waits for the next event, though the first chunk's clock still reads a
    time to come."""
    for data in ("v1", "v2"):
        api.post("/api/v1/events", {"name": "translation.done", "key": "Item 0", "data": data})
    workflow = waiting_workflow(product_type, outputField="translation")
    ahead = timezone.now() + timedelta(seconds=5)
    with mock.patch("django.utils.timezone.now", return_value=ahead):
        first = park(workflow, make_entities(product_type, 1), django_capture_on_commit_callbacks)
    assert list(Wait.objects.filter(run=first).values_list("status", flat=True)) == ["resolved"]
    later = park(workflow, make_entities(product_type, 1), django_capture_on_commit_callbacks)
    assert list(Wait.objects.filter(run=later).values_list("status", flat=True)) == ["waiting"]


def test_a_retry_of_a_used_event_sent_to_a_machine_behind_wakes_no_later_entity(
    api, product_type, django_capture_on_commit_callbacks
):
    """The retry of a send (the same id) wakes with the first event only while it is kept;
    one that woke entities is not, whatever the clock of the machine the retry reaches."""
    workflow = waiting_workflow(product_type, outputField="translation")
    park(workflow, make_entities(product_type, 1), django_capture_on_commit_callbacks)
    assert api.post("/api/v1/events", SENT).json()["matched"] == 1
    later = park(workflow, make_entities(product_type, 1), django_capture_on_commit_callbacks)
    behind = timezone.now() - timedelta(seconds=5)
    [again] = services.events_send(
        events=[services.EventIn(name=SENT["name"], key=SENT["key"], sent_id=SENT["id"])],
        now=behind,
    )
    assert (again.duplicate, again.woken) == (True, 0)
    assert Wait.objects.get(run=later).status == "waiting"


def test_an_events_data_is_stored_once_in_each_wait_it_wakes(
    api, product_type, settings, django_capture_on_commit_callbacks
):
    settings.ENTITY_MAX_DATA_BYTES = 16 * 1024
    ids = make_entities(product_type, 50)
    step = {
        "id": "w",
        "type": "wait_for_event",
        "config": {"event": "import.done", "key": "{{ run.id }}", "outputField": "imported.x"},
    }
    note = {
        "id": "note",
        "type": "transform",
        "config": {
            "operations": [{"op": "set", "field": "seen", "value": "{{ steps.w.eventId }}"}]
        },
    }
    run = park(
        make_workflow(product_type, [step, note, PUBLISH]), ids, django_capture_on_commit_callbacks
    )
    blob = "".join(f"{n:08x}" for n in range(1500))  # 12,000 bytes of JSON text
    sent = api.post("/api/v1/events", {"name": "import.done", "key": run.pk, "data": {"b": blob}})
    assert sent.json()["matched"] == 50
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT sum(octet_length(resolution::text)) FROM jobs_wait WHERE run_id = %s",
            [run.pk],
        )
        (stored,) = cursor.fetchone()
    assert 50 * len(blob) < stored < 50 * (len(blob) + 300)  # one copy each, not two

    assert resume(run).completed == 50
    event_id = sent.json()["events"][0]["eventId"]
    for entity in Entity.objects.filter(pk__in=ids):
        assert entity.data["imported"] == {"x": {"b": blob}} and entity.data["seen"] == event_id


def test_an_event_wakes_no_entity_of_a_run_being_cancelled_and_stays_kept_for_others(
    api, product_type, django_capture_on_commit_callbacks
):
    from jobs.cancel import run_cancel

    workflow = waiting_workflow(product_type)
    doomed = park(workflow, make_entities(product_type, 1), django_capture_on_commit_callbacks)
    Run.objects.filter(pk=doomed.pk).update(cancel_requested_at=timezone.now())  # batches to come
    sent = api.post("/api/v1/events", {"name": "translation.done", "key": "Item 0"}).json()
    assert sent["matched"] == 0
    assert waits_tick() == 0  # nor does the tick's second look wake it
    assert Wait.objects.get(run=doomed).status == "waiting"
    assert Event.objects.get().expires_at > timezone.now()  # kept

    other = park(workflow, make_entities(product_type, 1), django_capture_on_commit_callbacks)
    assert Wait.objects.get(run=other).status == "resolved"
    assert Event.objects.get().matched == 1
    run_cancel(run_id=doomed.pk)
    assert Run.objects.get(pk=doomed.pk).cancelled == 1


def test_an_id_sent_twice_in_one_body_wakes_and_counts_once(
    api, product_type, django_capture_on_commit_callbacks
):
    ids = make_entities(product_type, 1)
    run = park(waiting_workflow(product_type), ids, django_capture_on_commit_callbacks)
    sent = api.post("/api/v1/events", {"events": [SENT, SENT]}).json()
    assert sent["matched"] == 1
    assert [(each["matched"], each["duplicate"]) for each in sent["events"]] == [
        (1, False),
        (1, True),
    ]
    assert Wait.objects.get(run=run).status == "resolved" and Event.objects.get().matched == 1


@pytest.mark.django_db(transaction=True)
def test_two_bulk_sends_naming_the_same_runs_in_other_orders_both_go_through(
    product_type, django_capture_on_commit_callbacks, monkeypatch
):
    step = {"id": "w", "type": "wait_for_event", "config": {"event": "e", "key": "{{ run.id }}"}}
    workflow = make_workflow(product_type, [step, PUBLISH])
    runs = sorted(
        (
            park(workflow, make_entities(product_type, 2), django_capture_on_commit_callbacks)
            for _ in range(2)
        ),
        key=lambda run: run.pk,
    )
    events = [services.EventIn("e", run.pk) for run in runs]
    # The first send stops after resolving its first set of waits, holding their rows, while
    # the second, its events in the other order, goes as far as it can.
    real = engine_waits._waits_resolve_alike
    paused, second_done = threading.Event(), threading.Event()

    def pausing(*args, **kwargs):
        rows = real(*args, **kwargs)
        if threading.current_thread().name == "first" and not paused.is_set():
            paused.set()
            second_done.wait(3)  # it cannot finish while this holds rows it needs
        return rows

    monkeypatch.setattr(engine_waits, "_waits_resolve_alike", pausing)
    outcomes = {}

    def send(name: str, order: list) -> None:
        try:
            if name == "second":
                assert paused.wait(10)
            outcomes[name] = sum(sent.matched for sent in services.events_send(events=order))
        except Exception as error:  # a deadlock, detected: one send fails
            outcomes[name] = error
        finally:
            if name == "second":
                second_done.set()
            connection.close()

    threads = [
        threading.Thread(target=send, args=("first", events), name="first"),
        threading.Thread(target=send, args=("second", events[::-1]), name="second"),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(outcomes.items()) == [("first", 4), ("second", 0)], outcomes
    assert set(Wait.objects.values_list("status", flat=True)) == {"resolved"}


def test_of_one_bulk_sends_events_of_a_name_and_key_the_last_wakes_the_waiting_entities(
    api, product_type, django_capture_on_commit_callbacks
):
    """A sender batching its news in order (`v1`, then `v2`) woke the entity with `v1`, the
    first, and `v2` was used up with it: the entity went on with stale data. The newest wins,
    as among the events kept for an entity reaching its step."""
    ids = make_entities(product_type, 1)
    run = park(
        waiting_workflow(product_type, outputField="translation"),
        ids,
        django_capture_on_commit_callbacks,
    )
    sent = api.post(
        "/api/v1/events",
        {
            "events": [
                {"name": "translation.done", "key": "Item 0", "data": "v1"},
                {"name": "translation.done", "key": "Item 0", "data": "v2"},
            ]
        },
    ).json()
    assert sent["matched"] == 1
    assert [each["matched"] for each in sent["events"]] == [0, 1]
    resume(run)
    assert Entity.objects.get(pk=ids[0]).data["translation"] == "v2"
