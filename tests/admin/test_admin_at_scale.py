"""The admin's pages as staff meet them over large tables: a page's queries do not grow with
the rows it shows, and no list reads a whole table of records to draw its filters."""

import re
from datetime import timedelta

import pytest
from django.contrib import admin
from django.contrib.admin.utils import quote
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from config import admin_paginator
from entities.admin import EntityAdmin
from entities.models import Entity
from jobs.experiments.models import Experiment
from jobs.models import Job, Review, Run, ScheduleFire
from jobs.waits.event.models import Event
from jobs.waits.review.selectors import review_list
from tests.admin.test_review_pages import parked
from tests.factories import make_entities, make_workflow
from workflows.models import WorkflowVersion

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


def _plan(queryset) -> str:
    """The plan PostgreSQL would choose for a page of `queryset` were sorting rows its last
    resort (on a test's few rows it sorts them all rather than read an index)."""
    sql, params = queryset[:100].query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_sort = off")
        cursor.execute(f"EXPLAIN {sql}", params)
        return "\n".join(row[0] for row in cursor.fetchall())


@pytest.mark.parametrize(
    "model",
    [Entity, Run, Job, Event, ScheduleFire, Experiment, WorkflowVersion],
    ids=lambda model: model.__name__,
)
def test_a_list_of_records_reads_its_page_in_an_index_order(rf, admin_user, model):
    """A page of a list is the first rows of an index, not all the table's rows sorted (the
    schedule fires, by tick: a quarter of a second at 500,000 fires, growing with them)."""
    request = rf.get("/")
    request.user = admin_user
    changelist = admin.site.get_model_admin(model).get_changelist_instance(request)
    plan = _plan(changelist.get_queryset(request))
    assert not re.search(r"(^|->  )Sort ", plan, re.M), plan


@pytest.mark.parametrize(
    "url",
    [
        "/admin/entities/entity/?status__exact=draft",
        "/admin/jobs/run/?status__exact=completed",
        "/admin/jobs/job/?type__exact=workflow_run",
        "/admin/jobs/event/?q=key",
        "/admin/jobs/schedulefire/?outcome__exact=started",
        "/admin/jobs/experiment/?status__exact=completed",
    ],
)
def test_a_filtered_list_of_records_counts_its_matches_only(staff, url):
    """Django counts the whole table too, for "N results (M total)": at 1,000,000 entities
    a second count of them all on every filtered page."""
    counts = [sql for sql in _queries(staff, url) if "COUNT(*)" in sql]
    assert len(counts) == 1, counts


def test_the_run_form_counts_the_types_entities_once(staff, product_type):
    """The type's entities were counted twice on the unsearched form (its total, and the
    matches of no search): at 1,000,000 entities, a second each."""
    make_entities(product_type, 3)
    workflow = make_workflow(product_type, [{"type": "publish", "config": {}}])
    queries = _queries(staff, f"/admin/workflows/workflow/{quote(workflow.pk)}/run/")
    assert len([sql for sql in queries if "COUNT(*)" in sql]) == 1
    page = staff.get(f"/admin/workflows/workflow/{quote(workflow.pk)}/run/").content.decode()
    assert "(3 in all)" in page and "Run on all 3 entities" in page


def test_run_workflow_on_every_entity_selected_reads_the_ids_posted_only(staff, product_type):
    """ "Select all N entities" handed the action every entity of the list: it read the type of
    each into memory (1,000,000 rows) to check they were of one type. It runs on the ids
    posted (the page's ticks), and checks those."""
    ids = make_entities(product_type, 4)
    make_workflow(product_type, [{"type": "publish", "config": {}}])
    form = {"action": "run_workflow", "select_across": "1", "_selected_action": ids[:2]}
    with CaptureQueriesContext(connection) as captured:
        page = staff.post("/admin/entities/entity/", form).content.decode()
    assert "Run a workflow on the 2 selected entities." in page
    entity_reads = [  # besides the list's own count (or estimate) of its rows
        q["sql"]
        for q in captured
        if 'FROM "entities_entity"' in q["sql"]
        and "COUNT(*)" not in q["sql"]
        and not q["sql"].startswith("EXPLAIN")
    ]
    assert entity_reads and all(" IN (" in sql for sql in entity_reads), entity_reads


def _event(name: str, key: str, sent_id: str = "") -> Event:
    expires = timezone.now() + timedelta(hours=1)
    return Event.objects.create(name=name, key=key, sent_id=sent_id, expires_at=expires)


def test_the_events_name_filter_reads_each_name_once_from_an_index(staff):
    """Its choices were a DISTINCT over every event kept (a read of all of them on each page);
    they are read a name at a time from the index that leads with it."""
    for name in ("price.approved", "stock.low", "price.approved", "order.paid"):
        _event(name, "k")
    queries = _queries(staff, "/admin/jobs/event/")
    assert not [sql for sql in queries if "DISTINCT" in sql and "jobs_event" in sql]
    page = staff.get("/admin/jobs/event/").content.decode()
    names = re.findall(r'href="\?name=([^"&]+)"', page)
    assert names == ["order.paid", "price.approved", "stock.low"]
    assert re.search(r"1 event\b", staff.get("/admin/jobs/event/?name=stock.low").content.decode())


def test_an_event_is_searched_by_its_key_or_sent_id_through_an_index(rf, admin_user):
    """The search compared each event's key and sender's id upper-cased (`=key` is iexact),
    which no index holds: a read of every event kept. Keys and ids are matched exactly, as
    the API matches them."""
    _event("price.approved", "sku-7", sent_id="s-1")
    _event("price.approved", "SKU-7")
    request = rf.get("/", {"q": "sku-7"})
    request.user = admin_user
    changelist = admin.site.get_model_admin(Event).get_changelist_instance(request)
    found = changelist.get_queryset(request)
    assert [event.key for event in found] == ["sku-7"]
    sql, params = found.query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute(f"EXPLAIN {sql}", params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "Seq Scan" not in plan, plan


def test_a_list_of_many_rows_counts_them_by_the_planners_estimate(staff, product_type, monkeypatch):
    """A COUNT(*) of every entity, or of every one of a type (the list filtered by its type,
    all of them when there is one), on each page of the list: a tenth of a second at
    1,000,000 entities warm, a second cold. From ESTIMATE_FROM rows as the planner estimates
    them the page reads that estimate and says "about"; a search, estimated at a few rows,
    is counted exactly."""
    monkeypatch.setattr(admin_paginator, "ESTIMATE_FROM", 3)
    ids = make_entities(product_type, 3)
    Entity.objects.filter(pk=ids[0]).update(data={"title": "Walnut desk"})
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE entities_entity")
    for url in ("/admin/entities/entity/", "/admin/entities/entity/?status__exact=draft"):
        assert not [sql for sql in _queries(staff, url) if "COUNT(*)" in sql]
        assert "about 3 entities" in staff.get(url).content.decode()
    searched = staff.get("/admin/entities/entity/?q=walnut").content.decode()
    assert "1 entity" in searched and "about" not in searched


def test_the_list_deletes_at_most_deleted_at_once_entities_saying_so(
    staff, product_type, monkeypatch
):
    """ "Select all" of 1,000,000 entities then "Delete" read every one into memory and
    deleted them in one request (100,000 took 7 s and 240 MB more): more than
    `DELETED_AT_ONCE` are refused, on the confirmation and on its POST alike."""
    monkeypatch.setattr(EntityAdmin, "DELETED_AT_ONCE", 2)
    ids = make_entities(product_type, 3)
    body = {"action": "delete_selected", "select_across": "1", "_selected_action": ids[:1]}
    page = staff.post("/admin/entities/entity/", body).content.decode()
    assert "3 entities are selected: the admin deletes 2 at most at once" in page
    staff.post("/admin/entities/entity/", {**body, "post": "yes"})
    assert Entity.objects.count() == 3
    two = {"action": "delete_selected", "_selected_action": ids[:2], "post": "yes"}
    assert staff.post("/admin/entities/entity/", two).status_code == 302
    assert list(Entity.objects.values_list("pk", flat=True)) == ids[2:]


def _plan_of(queryset, *, off: str = "enable_seqscan") -> str:
    sql, params = queryset.query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(f"SET LOCAL {off} = off")
        cursor.execute(f"EXPLAIN {sql}", params)
        return "\n".join(row[0] for row in cursor.fetchall())


@pytest.mark.parametrize(
    "reviews",
    [
        lambda run_id: Review.objects.filter(run_id=run_id, status="pending")[:1],
        lambda run_id: review_list(status="pending", run_id=run_id).order_by("-pk")[:101],
    ],
    ids=["the run page's link", "the queue of the run"],
)
def test_a_runs_pending_reviews_are_found_without_reading_its_decided_ones(reviews):
    """The run page asks whether any review of the run waits, and the queue filtered by run
    lists its pending ones: with indexes of the run or of the status only, either read every
    review of the run, or every pending one (a whole-table scan at 600,000 reviews: 0.2 s on
    each view of a run)."""
    plan = _plan_of(reviews("run_1")).splitlines()
    [scan] = [index for index, line in enumerate(plan) if " on jobs_review " in line]
    details = plan[scan + 1 : scan + 3]  # its Index Cond, and a Filter if it filters
    assert "Index Cond" in details[0] and not [line for line in details if "Filter" in line]
