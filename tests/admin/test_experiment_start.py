"""Starting an experiment from the admin: the workflow page's "Try a new version on a sample"
form picks entities by the run form's search (ticked, or a sample of the matches), and is made
into the API's body and started by the API's own checks, so a bad value is refused with the
API's message and nothing is stored."""

import json

import pytest
from django.contrib.admin.utils import quote
from django.contrib.auth.models import Permission

from entities.models import Entity
from jobs.experiments.models import Experiment
from tests.factories import make_entities, make_versions

pytestmark = pytest.mark.django_db

RULES = {
    "type": "rules",
    "name": "short",
    # As the form posts a rule: every option of the rule, those left empty too.
    "rules": [{"field": "description", "maxLength": 20, "pattern": "", "minimum": None}],
    "mode": "",
    "instructions": "",
    "provider": "",
    "fields": [],
}


@pytest.fixture
def tables(product_type):
    """A workflow of two versions over 30 entities, 3 of them oak tables."""
    workflow, _, _ = make_versions(product_type, name="Describe")
    ids = make_entities(product_type, 30)
    for index, pk in enumerate(ids[:3]):
        Entity.objects.filter(pk=pk).update(data={"title": f"Oak table {index}", "price": 2})
    return workflow, ids


def _url(workflow) -> str:
    return f"/admin/workflows/workflow/{quote(workflow.pk)}/experiment/"


def _form(**extra) -> dict:
    return {
        "q": "",
        "status": "",
        "entities": "matches",
        "sample": "2",
        "baseline": "1",
        "candidate": "2",
        "scorers": json.dumps([RULES]),
        "max_cost_usd": "",
        "max_tokens": "",
        **extra,
    }


def test_the_workflow_page_links_the_form_which_offers_the_versions_and_the_search(staff, tables):
    workflow, _ = tables
    page = staff.get(f"/admin/workflows/workflow/{quote(workflow.pk)}/change/").content.decode()
    assert f'href="{_url(workflow)}" id="try-version"' in page
    form = staff.get(_url(workflow), {"q": "oak"}).content.decode()
    assert "<strong>3</strong> matches" in form and form.count('name="entity_ids"') == 3
    assert '<option value="1" selected>version 1 (live)</option>' in form  # the baseline
    assert '<option value="2" selected>version 2</option>' in form  # the draft, to try


@pytest.mark.parametrize(
    ("codenames", "links"),
    [
        (["view_workflow"], set()),
        (["view_workflow", "view_entity", "add_experiment"], {"try-version"}),
        (["view_workflow", "add_run"], {"run-on-entities"}),
        (["view_workflow", "add_run", "view_entity"], {"run-on-entities", "test-on-entity"}),
    ],
)
def test_the_workflow_page_links_only_the_forms_its_reader_may_use(
    client, django_user_model, tables, codenames, links
):
    """Staff who may read a workflow but not start an experiment (or a run, or a test) are
    not sent by its page to a form that answers 403."""
    workflow, _ = tables
    user = django_user_model.objects.create_user("reader", password="pw-for-tests-1", is_staff=True)
    user.user_permissions.set(Permission.objects.filter(codename__in=codenames))
    client.force_login(user)
    page = client.get(f"/admin/workflows/workflow/{quote(workflow.pk)}/change/").content.decode()
    offered = {
        link
        for link in ("try-version", "run-on-entities", "test-on-entity")
        if f'id="{link}"' in page
    }
    assert offered == links
    for link, tail in (("try-version", "experiment/"), ("run-on-entities", "run/")):
        url = f"/admin/workflows/workflow/{quote(workflow.pk)}/{tail}"
        assert client.get(url).status_code == (200 if link in links else 403)


def test_a_sample_of_the_matches_of_a_search_starts_on_those_entities(staff, tables):
    workflow, ids = tables
    response = staff.post(_url(workflow), _form(q="oak table"))
    experiment = Experiment.objects.get()
    assert response.status_code == 302
    assert response["Location"] == f"/admin/jobs/experiment/{quote(experiment.pk)}/change/"
    assert experiment.total == 2 and set(experiment.entity_ids) <= set(ids[:3])
    assert (experiment.baseline.number, experiment.candidate.number) == (1, 2)
    # The form's empty options are not the API's: the scorer is stored as the API takes it.
    assert experiment.scorers == [
        {"type": "rules", "name": "short", "rules": [{"field": "description", "maxLength": 20}]}
    ]


def test_a_search_matching_more_than_a_filter_may_name_starts_a_sample_drawn_from_all(
    staff, tables, settings
):
    # Three oak tables, where a filter may name two: the sample is drawn from all three
    # instead of the list of matches being refused.
    settings.RUN_MAX_IDS = 2
    workflow, ids = tables
    response = staff.post(_url(workflow), _form(q="oak table", sample="2"))
    assert response.status_code == 302
    experiment = Experiment.objects.get()
    assert experiment.total == 2 and set(experiment.entity_ids) <= set(ids[:3])
    # With no sample size the matches themselves are the entities: refused, with the
    # API's message, and nothing stored.
    response = staff.post(_url(workflow), _form(q="oak table", sample=""))
    assert response.status_code == 200
    assert "Give 1 to 2 ids, not 3." in response.content.decode()
    assert Experiment.objects.count() == 1


def test_a_sample_drawn_from_a_search_too_broad_to_name_is_the_same_each_time(
    staff, tables, settings
):
    """The form's sample is seeded (docs/admin.md), also where the search matches more than a
    filter may name and the sample is drawn in the database: the same search and size start
    on the same entities."""
    settings.RUN_MAX_IDS = 5
    workflow, ids = tables
    for _ in range(2):
        assert staff.post(_url(workflow), _form(q="item", sample="3")).status_code == 302
    first, second = Experiment.objects.order_by("pk")
    assert first.total == 3 and set(first.entity_ids) <= set(ids[3:])
    assert first.entity_ids == second.entity_ids


def test_the_entities_ticked_and_a_budget_start_it(staff, tables):
    workflow, ids = tables
    staff.post(
        _url(workflow),
        {**_form(entities="ticked", max_tokens="5000"), "entity_ids": [ids[4], ids[7]]},
    )
    experiment = Experiment.objects.get()
    assert sorted(experiment.entity_ids) == sorted([ids[4], ids[7]])
    assert experiment.budget_max_tokens == 5000


def test_a_refused_form_keeps_every_entity_ticked_those_of_earlier_searches_apart(staff, tables):
    workflow, ids = tables
    # Ticked: an oak table the search shows, and two entities ticked in an earlier search.
    ticked = [ids[0], ids[20], ids[21]]
    response = staff.post(
        _url(workflow),
        {**_form(entities="ticked", q="oak", candidate="9"), "entity_ids": ticked},
    )
    page = response.content.decode()
    assert response.status_code == 200 and 'id="experiment-refused"' in page
    shown = page.split('id="entity-ticked-elsewhere"')[0]
    assert f'value="{ids[0]}" id="pick-{ids[0]}" checked' in shown
    assert f'value="{ids[1]}" id="pick-{ids[1]}">' in shown  # shown, not ticked
    apart = page.split('id="entity-ticked-elsewhere"')[1].split("</div>")[0]
    assert "hidden" not in apart.split(">")[0]
    for pk in ids[20:22]:
        assert f'name="entity_ids" value="{pk}" checked' in apart
    # Posted again as the page stands, they start it.
    staff.post(_url(workflow), {**_form(entities="ticked", q="oak"), "entity_ids": ticked})
    assert sorted(Experiment.objects.get().entity_ids) == sorted(ticked)


@pytest.mark.parametrize(
    ("form", "api_body"),
    [
        ({"sample": "20000"}, {"filter": {}, "sample": 20000}),
        ({"sample": "many"}, {"filter": {}, "sample": "many"}),
        ({"candidate": "9"}, {"filter": {}, "sample": 2, "candidate": 9}),
        ({"max_cost_usd": "-1"}, {"filter": {}, "sample": 2, "budget": {"maxCostUsd": -1}}),
        (
            {"scorers": json.dumps([{"type": "judge", "name": "j", "mode": "pairwise"}])},
            {
                "filter": {},
                "sample": 2,
                "scorers": [{"type": "judge", "name": "j", "mode": "pairwise"}],
            },
        ),
        ({"entities": "ticked"}, {"entityIds": []}),
    ],
)
def test_a_bad_value_is_refused_with_the_apis_message_and_nothing_is_stored(
    staff, api, tables, form, api_body
):
    workflow, _ = tables
    response = staff.post(_url(workflow), _form(**form))
    assert response.status_code == 200
    answer = api.post(
        f"/api/v1/workflows/{workflow.pk}/experiments",
        {"baseline": 1, "candidate": 2, "scorers": [], **api_body},
    )
    assert answer.status_code == 400
    message = answer.json()["error"]["message"]
    page = response.content.decode()
    assert f'<p class="errornote" id="experiment-refused">{message}</p>' in page.replace(
        "&#x27;", "'"
    )
    # ...and next to the field it is about.
    assert 'class="errorlist' in page
    assert not Experiment.objects.exists()


def test_a_search_nothing_matches_is_refused(staff, tables):
    workflow, _ = tables
    response = staff.post(_url(workflow), _form(q="no such words"))
    assert "No entity matches the search." in response.content.decode()
    assert not Experiment.objects.exists()


def test_staff_without_the_apis_permissions_may_not_start_one(client, django_user_model, tables):
    workflow, _ = tables
    user = django_user_model.objects.create_user("viewer", password="pw-for-tests-1", is_staff=True)
    client.force_login(user)
    assert client.get(_url(workflow)).status_code == 403
    assert client.post(_url(workflow), _form()).status_code == 403
    assert not Experiment.objects.exists()


def test_staff_with_exactly_the_apis_permissions_start_one(client, django_user_model, tables):
    workflow, _ = tables
    user = django_user_model.objects.create_user("tester", password="pw-for-tests-1", is_staff=True)
    user.user_permissions.set(
        Permission.objects.filter(
            codename__in=["view_workflow", "add_experiment", "view_entity", "view_experiment"]
        )
    )
    client.force_login(user)
    assert client.get(_url(workflow)).status_code == 200
    started = client.post(_url(workflow), _form())
    assert started.status_code == 302
    assert client.get(started["Location"]).status_code == 200
    assert Experiment.objects.get().created_by == user
