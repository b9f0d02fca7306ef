"""The experiments' admin: an experiment's page (summary, arms, scores, both sides of each
entity with the differences marked, a filter to regressions, Publish candidate) and the human
scorers' blind comparison queue, whose picks are mapped back to the versions."""

import re

import pytest
from django.contrib.admin.utils import quote
from django.contrib.auth.models import Permission
from django.contrib.messages import get_messages
from django.db import connection
from django.test.utils import CaptureQueriesContext

from config.api.templatetags.admin_values import VALUE_CHARS_SHOWN
from jobs.experiments import summaries
from jobs.experiments.human import human_pending
from jobs.experiments.models import ExperimentResult, ExperimentStatus
from jobs.experiments.services import experiment_start
from tests.factories import make_entities, make_versions

pytestmark = pytest.mark.django_db


@pytest.fixture
def experiment(finished_experiment):
    return finished_experiment(6)


def _url(experiment, tail=""):
    return f"/admin/jobs/experiment/{quote(experiment.pk)}/{tail}"


def test_the_experiment_page_shows_both_sides_and_filters_regressions(admin_client, experiment):
    page = admin_client.get(_url(experiment, "change/"))
    assert page.status_code == 200
    html = page.content.decode()
    assert "Short one." in html and "A much longer and more detailed description." in html
    assert 'class="differ"' in html
    assert "Publish candidate (version 2)" in html
    # The candidate's longer text breaks the `short` rule the baseline passes: a regression.
    regressed = admin_client.get(_url(experiment, "change/") + "?show=regressed")
    assert regressed.content.decode().count("<br>regressed") == 6
    assert admin_client.get("/admin/jobs/experiment/").status_code == 200


def test_a_long_value_is_cut_to_what_a_cell_shows(admin_client, experiment):
    result = experiment.results.order_by("position").first()
    result.candidate["changes"] = [{"field": "description", "before": None, "after": "x" * 5000}]
    result.save(update_fields=["candidate"])
    html = admin_client.get(_url(experiment, "change/")).content.decode()
    assert "x" * VALUE_CHARS_SHOWN + "…" in html and "x" * (VALUE_CHARS_SHOWN + 1) not in html


def test_publish_candidate_makes_it_live(admin_client, experiment):
    url = f"/admin/workflows/workflow/{experiment.workflow_id}/versions/2/publish/"
    assert admin_client.post(url).status_code == 302
    experiment.workflow.refresh_from_db()
    assert experiment.workflow.version == 2
    html = admin_client.get(_url(experiment, "change/")).content.decode()
    assert "The candidate (version 2) is the live version." in html
    assert 'id="publish-candidate"' not in html


def test_publishing_a_candidate_over_a_version_it_was_not_compared_with_says_so(
    admin_client, experiment
):
    """Someone published another version since: the button would replace it unannounced."""
    from workflows.services import workflow_update

    workflow = experiment.workflow
    steps = [{k: v for k, v in step.items()} for step in workflow.versions.get(number=1).steps]
    steps[0]["config"] = {**steps[0]["config"], "prompt": "Another prompt: {{ entity.title }}"}
    workflow_update(workflow_id=workflow.pk, steps=steps)  # version 3, live
    html = admin_client.get(_url(experiment, "change/")).content.decode()
    assert "The live version is now 3, not the baseline (version 1)" in html
    assert 'id="publish-candidate"' in html
    assert '<input type="hidden" name="expected_live" value="3">' in html


def test_publishing_the_candidate_from_a_page_shown_before_another_went_live_is_refused(
    admin_client, experiment
):
    """The page showed version 1 live; version 3 was published since: the click is refused,
    naming it, and version 3 stays live."""
    from workflows.services import workflow_update

    html = admin_client.get(_url(experiment, "change/")).content.decode()
    assert '<input type="hidden" name="expected_live" value="1">' in html
    workflow = experiment.workflow
    steps = [dict(step) for step in workflow.versions.get(number=1).steps]
    steps[0]["config"] = {**steps[0]["config"], "prompt": "Another prompt: {{ entity.title }}"}
    workflow_update(workflow_id=workflow.pk, steps=steps)  # version 3, live
    url = f"/admin/workflows/workflow/{workflow.pk}/versions/2/publish/"
    refused = admin_client.post(url, {"expected_live": "1"}, follow=True)
    assert "The live version is 3, not 1" in refused.content.decode()
    workflow.refresh_from_db()
    assert workflow.version == 3


def test_the_human_queue_is_blind_and_mapped_back(admin_client, experiment):
    url = _url(experiment, "compare/people/")
    for _ in range(6):
        page = admin_client.get(url)
        html = page.content.decode()
        assert "baseline" not in html.split("comparison")[-1].lower().split("</table>")[0]
        result = page.context["result"]
        verdict = next(v for v in result.verdicts if v["name"] == "people")
        longer_is_a = verdict["candidateIsA"]
        # Always pick the longer text, whichever letter it has.
        choice = "A" if longer_is_a else "B"
        answer = admin_client.post(url, {"result": result.pk, "choice": choice, "comment": "ok"})
        assert answer.status_code == 302
    assert "Every comparison of people is decided." in admin_client.get(url).content.decode()
    for result in ExperimentResult.objects.filter(experiment=experiment):
        human = next(v for v in result.verdicts if v["name"] == "people")
        assert human["winner"] == "candidate" and human["reason"] == "ok"
    score = next(s for s in summaries.scores_summary(experiment) if s["name"] == "people")
    assert (score["wins"], score["losses"]) == (6, 0)


def test_a_decided_comparison_is_not_decided_twice(admin_client, experiment):
    result = experiment.results.first()
    url = _url(experiment, "compare/people/")
    admin_client.post(url, {"result": result.pk, "choice": "tie"})
    admin_client.post(url, {"result": result.pk, "choice": "A"})
    result.refresh_from_db()
    assert next(v for v in result.verdicts if v["name"] == "people")["winner"] == "tie"
    answer = admin_client.post(url, {"result": result.pk, "choice": "maybe"}, follow=True)
    assert "Pick A, B or tie." in answer.content.decode()


@pytest.mark.parametrize("scorer", ["nobody", "short"])
def test_a_queue_of_a_name_no_human_scorer_has_is_not_found(admin_client, experiment, scorer):
    """A name the experiment's human scorers lack (a typo, a rules scorer's) has no queue:
    a 404, not a page saying that every comparison of it is decided."""
    page = admin_client.get(_url(experiment, f"compare/{scorer}/"))
    assert page.status_code == 404
    assert "is decided" not in page.content.decode()


def _staff(client, django_user_model, *codenames: str):
    user = django_user_model.objects.create_user("viewer", password="x", is_staff=True)
    user.user_permissions.set(Permission.objects.filter(codename__in=codenames))
    client.force_login(user)
    return client


def test_a_read_only_user_cannot_decide(client, experiment, django_user_model):
    viewer = _staff(client, django_user_model, "view_experiment", "view_entity")
    url = _url(experiment, "compare/people/")
    assert viewer.get(url).status_code == 200
    result = experiment.results.first()
    assert viewer.post(url, {"result": result.pk, "choice": "A"}).status_code == 403


def test_without_view_entity_the_page_shows_no_entity_and_no_comparison(
    client, experiment, django_user_model
):
    # Both sides, labels and verdicts are entity data, as the API's results (403) are.
    viewer = _staff(client, django_user_model, "view_experiment", "change_experiment")
    page = viewer.get(_url(experiment, "change/"))
    assert page.status_code == 200
    html = page.content.decode()
    assert 'id="experiment-arms"' in html and 'id="experiment-scores"' in html
    assert 'id="experiment-entities-hidden"' in html
    for shown in ("Item ", "Short one.", "A much longer"):
        assert shown not in html
    assert _url(experiment, "compare/people/") not in html
    url = _url(experiment, "compare/people/")
    assert viewer.get(url).status_code == 403
    result = experiment.results.first()
    assert viewer.post(url, {"result": result.pk, "choice": "A"}).status_code == 403
    result.refresh_from_db()
    assert next(v for v in result.verdicts if v["name"] == "people")["winner"] is None


@pytest.mark.parametrize("result", ["999999", "9" * 25, "-1", "abc", "", "9" * 5000])
def test_a_pick_on_a_result_the_experiment_lacks_is_told_not_a_500(
    admin_client, experiment, result
):
    # A form shown before its result was pruned, or an edited field.
    admin_client.raise_request_exception = False
    url = _url(experiment, "compare/people/")
    answer = admin_client.post(url, {"result": result, "choice": "A"})
    assert answer.status_code == 302 and answer.url == url
    told = [str(m) for m in get_messages(answer.wsgi_request)]
    assert len(told) == 1 and "This experiment has no comparison" in told[0]
    assert len(told[0]) < 200
    assert human_pending(experiment, "people").count() == 6


def test_another_experiments_result_is_refused_and_left_undecided(
    admin_client, experiment, finished_experiment
):
    other = finished_experiment(2)
    theirs = other.results.first()
    answer = admin_client.post(
        _url(experiment, "compare/people/"), {"result": theirs.pk, "choice": "A"}, follow=True
    )
    assert "This experiment has no comparison" in answer.content.decode()
    theirs.refresh_from_db()
    assert next(v for v in theirs.verdicts if v["name"] == "people")["winner"] is None
    assert human_pending(experiment, "people").count() == 6
    assert human_pending(other, "people").count() == 2


def _side(changes: list[dict], data: dict, outcome: str = "completed") -> dict:
    return {
        "outcome": outcome,
        "error": None,
        "changes": changes,
        "data": data,
        "steps": [],
        "notes": [],
        "waits": [],
        "usage": {},
        "seconds": 0,
    }


def _cells(html: str, field: str) -> list[tuple[str, str]]:
    """The (class, text) of the baseline's and the candidate's cells of `field`'s row."""
    row = re.search(rf"<tr><td>{field}</td>(.*?)</tr>", html, re.S).group(1)
    return [
        (cls, text.strip())
        for cls, text in re.findall(r'<td class="([^"]*)">(.*?)</td>', row, re.S)
    ]


@pytest.fixture
def one_result(finished_experiment):
    """An experiment of one entity, and its result, whose sides a test sets."""
    experiment = finished_experiment(1)
    return experiment, experiment.results.get()


def test_sides_that_set_true_and_1_are_marked_as_different(admin_client, one_result):
    experiment, result = one_result
    result.baseline = _side(
        [{"field": "inStock", "before": None, "after": True}], {"title": "x", "inStock": True}
    )
    result.candidate = _side(
        [{"field": "inStock", "before": None, "after": 1}], {"title": "x", "inStock": 1}
    )
    result.save()
    html = admin_client.get(_url(experiment, "change/")).content.decode()
    assert _cells(html, "inStock") == [("differ", "true"), ("differ", "1")]


def test_a_status_one_side_left_unchanged_shows_as_that_side_left_it(admin_client, one_result):
    experiment, result = one_result
    published = {"field": "status", "before": "draft", "after": "published"}
    result.baseline = _side([], {"title": "x"})
    result.candidate = _side([published], {"title": "x"})
    result.save()
    html = admin_client.get(_url(experiment, "change/")).content.decode()
    assert _cells(html, "status") == [("differ", "draft"), ("differ", "published")]


def test_a_side_that_failed_before_it_ran_shows_the_values_it_started_from(
    admin_client, one_result
):
    experiment, result = one_result
    result.baseline = _side(
        [{"field": "price", "before": 5, "after": 6}], {"title": "x", "price": 6}
    )
    result.candidate = _side([], {}, outcome="failed")
    result.save()
    html = admin_client.get(_url(experiment, "change/")).content.decode()
    assert _cells(html, "price") == [("differ", "6"), ("differ", "5")]


@pytest.fixture
def open_experiment(product_type, openai_server):
    """An experiment started and not run yet (its chunks are queued only once the test's
    transaction commits, which it never does)."""
    workflow, baseline, candidate = make_versions(product_type)
    return experiment_start(
        workflow=workflow,
        baseline=baseline,
        candidate=candidate,
        scorers=[],
        entity_ids=make_entities(product_type, 3),
    )


def test_staff_who_may_cancel_its_job_cancel_an_open_experiment_from_its_page(
    client, open_experiment, django_user_model
):
    """As the API's cancel of its job (`jobs.change_job`): the page offers it while the
    experiment is open, and it ends `cancelled` at once."""
    staff = _staff(client, django_user_model, "view_experiment", "change_job")
    html = staff.get(_url(open_experiment, "change/")).content.decode()
    assert 'id="cancel-experiment"' in html
    answer = staff.post(_url(open_experiment, "cancel/"), follow=True)
    assert answer.redirect_chain[-1][0] == _url(open_experiment, "change/")
    assert "The experiment was cancelled." in answer.content.decode()
    open_experiment.refresh_from_db()
    assert open_experiment.status == ExperimentStatus.CANCELLED
    assert 'id="cancel-experiment"' not in answer.content.decode()
    again = staff.post(_url(open_experiment, "cancel/"), follow=True)
    assert "The experiment has already ended (cancelled)." in again.content.decode()


def test_staff_who_may_not_cancel_its_job_are_not_offered_it_nor_can_post_it(
    client, open_experiment, django_user_model
):
    viewer = _staff(client, django_user_model, "view_experiment", "change_experiment")
    assert (
        'id="cancel-experiment"'
        not in viewer.get(_url(open_experiment, "change/")).content.decode()
    )
    assert viewer.post(_url(open_experiment, "cancel/")).status_code == 403
    assert viewer.get(_url(open_experiment, "cancel/")).status_code == 405
    open_experiment.refresh_from_db()
    assert open_experiment.status == ExperimentStatus.PENDING


def test_the_experiments_and_jobs_lists_never_load_their_samples(admin_client, experiment):
    """A page of 100 experiments (or of their jobs) read each one's sampled ids, up to
    10,000 each, which no column shows."""
    for url in ("/admin/jobs/experiment/", "/admin/jobs/job/"):
        with CaptureQueriesContext(connection) as queries:
            assert admin_client.get(url).status_code == 200
        read = [
            q["sql"] for q in queries if re.search(r'"(entity_ids|chunk_deliveries)"', q["sql"])
        ]
        assert read == [], (url, read)
