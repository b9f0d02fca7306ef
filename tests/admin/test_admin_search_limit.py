"""An admin search reads what it could match (a text in every entity's data), so its
statements stop after ADMIN_SEARCH_TIMEOUT_S: the list comes back without the search, the
run form says so and starts nothing. The search is made slow here by holding the entities'
table locked from another connection (a statement waiting for the lock is stopped as one
reading a million rows is)."""

import contextlib
import json
import threading

import psycopg
import pytest
from django.contrib.admin.utils import quote
from django.db import connection

from entities.models import Entity
from jobs.experiments.models import Experiment
from jobs.models import Run
from tests.factories import make_entities, make_versions, make_workflow

pytestmark = pytest.mark.django_db(transaction=True)

TRANSFORM = [
    {"id": "t", "type": "transform", "config": {"operations": [{"op": "trim", "field": "title"}]}}
]


@contextlib.contextmanager
def _entities_locked(for_s: float):
    """The entities' table locked by another connection for `for_s` seconds at most."""
    params = connection.get_connection_params()
    locked, release = threading.Event(), threading.Event()

    def hold():
        with psycopg.connect(
            dbname=params["dbname"], user=params["user"], host=params["host"], port=params["port"]
        ) as other:
            other.execute("LOCK TABLE entities_entity IN ACCESS EXCLUSIVE MODE")
            locked.set()
            release.wait(for_s)
            other.rollback()

    holder = threading.Thread(target=hold)
    holder.start()
    assert locked.wait(10)
    try:
        yield
    finally:
        release.set()
        holder.join()


@pytest.fixture
def slow_searches(settings):
    settings.ADMIN_SEARCH_TIMEOUT_S = 0.3


def test_a_search_of_the_entities_past_its_time_shows_the_list_without_it(
    staff, product_type, slow_searches
):
    ids = make_entities(product_type, 3)
    url = "/admin/entities/entity/?status=draft&q=Item"
    assert all(pk in staff.get(url).content.decode() for pk in ids)  # in time: found
    with _entities_locked(for_s=5):
        response = staff.get(url)
    assert response.status_code == 302
    assert response["Location"] == "/admin/entities/entity/?status=draft"
    page = staff.get(response["Location"]).content.decode()
    assert "took more than 0.3 seconds and was stopped" in page
    assert all(pk in page for pk in ids)  # the list, its filter kept


@pytest.mark.parametrize(
    ("asked", "left", "said"),
    [
        ("status=draft&o=-5", "status=draft", "ordering"),
        ("p=2&status=draft", "status=draft", "page"),
        ("q=Item&o=2", "", "search and ordering (for 'Item')"),
    ],
)
def test_an_ordering_or_a_page_past_its_time_is_stopped_too(
    staff, product_type, slow_searches, asked, left, said
):
    make_entities(product_type, 3)
    with _entities_locked(for_s=5):
        response = staff.get(f"/admin/entities/entity/?{asked}")
    assert response.status_code == 302
    assert response["Location"] == f"/admin/entities/entity/?{left}"
    page = staff.get(response["Location"]).content.decode()
    assert f"The list&#x27;s {said.replace(chr(39), '&#x27;')} took more than 0.3" in page


def test_an_action_posted_from_a_searched_list_is_not_limited(staff, product_type, slow_searches):
    """A delete of the entities a search found writes for as long as it takes."""
    ids = make_entities(product_type, 2)
    with _entities_locked(for_s=1.5):  # past the 0.3 s a list's statements get
        response = staff.post(
            "/admin/entities/entity/?q=Item",
            {"action": "delete_selected", "_selected_action": ids, "post": "yes"},
        )
    assert response.status_code == 302
    assert "took more than" not in staff.get(response["Location"]).content.decode()
    assert not Entity.objects.filter(pk__in=ids).exists()


def test_the_run_forms_search_past_its_time_says_so_and_runs_nothing(
    staff, product_type, slow_searches
):
    make_entities(product_type, 3)
    workflow = make_workflow(product_type, TRANSFORM)
    run_page = f"/admin/workflows/workflow/{quote(workflow.pk)}/run/"
    assert "<strong>3</strong> matches" in staff.get(f"{run_page}?q=Item").content.decode()
    with _entities_locked(for_s=1.5):
        page = staff.get(f"{run_page}?q=Item").content.decode()
    assert "took more than 0.3 seconds and was stopped" in page
    assert "Run on all" in page and "matches" not in page.split("Run on all")[-1][:40]
    with _entities_locked(for_s=1.5):
        response = staff.post(run_page, {"q": "Item", "matches": "1"})
    assert response.status_code == 302 and response["Location"] == run_page
    assert not Run.objects.exists()
    assert "took more than 0.3 seconds" in staff.get(run_page).content.decode()


def test_an_experiment_on_a_search_past_its_time_is_refused_saying_so(
    staff, product_type, slow_searches
):
    workflow, _, _ = make_versions(product_type, name="Describe")
    make_entities(product_type, 3)
    form = {
        "q": "Item",
        "status": "",
        "entities": "matches",
        "sample": "2",
        "baseline": "1",
        "candidate": "2",
        "scorers": json.dumps([{"type": "rules", "name": "s", "rules": [{"field": "title"}]}]),
        "max_cost_usd": "",
        "max_tokens": "",
    }
    with _entities_locked(for_s=1.5):
        page = staff.post(f"/admin/workflows/workflow/{quote(workflow.pk)}/experiment/", form)
    assert page.status_code == 200
    assert "took more than 0.3 seconds and was stopped" in page.content.decode()
    assert not Experiment.objects.exists()
