"""The experiments API: start one (202 {id, jobId}), read it, its results and its job, cancel
it through its job; careless input is a 400 naming the problem and stores nothing."""

import json
import re

import pytest
from django.contrib.admin.utils import quote
from django.db import connection
from django.test.utils import CaptureQueriesContext
from openapi_schema_validator import OAS30Validator

from jobs.experiments.models import Experiment
from jobs.models import Job
from tests.factories import (
    SCORERS_OF_EACH_TYPE,
    answer_by_prompt,
    experiment_run_inline,
    make_entities,
    make_versions,
)
from workflows.usage import Usage

pytestmark = pytest.mark.django_db


@pytest.fixture
def setup(product_type, openai_server, settings):
    settings.EXPERIMENT_CHUNK_SIZE = 4
    workflow, _, _ = make_versions(product_type)
    ids = make_entities(product_type, 10)
    answer_by_prompt(openai_server)
    return workflow, ids


def _start(api, workflow, body):
    return api.post(f"/api/v1/workflows/{workflow.pk}/experiments", body)


def test_start_read_results_and_job(api, setup):
    workflow, ids = setup
    answer = _start(
        api, workflow, {"candidate": 2, "entityIds": ids, "scorers": SCORERS_OF_EACH_TYPE}
    )
    assert answer.status_code == 202, answer.json()
    body = answer.json()
    assert body["id"].startswith("exp_") and body["jobId"].startswith("job_")
    experiment = experiment_run_inline(Experiment.objects.get(pk=body["id"]))
    read = api.get(f"/api/v1/experiments/{experiment.pk}").json()
    assert read["baseline"] == 1 and read["candidate"] == 2
    assert read["status"] == "completed"
    assert read["progress"] == {"total": 10, "done": 10, "waiting": 0}
    assert read["arms"]["candidate"]["completed"] == 10
    scores = {score["name"]: score for score in read["scores"]}
    assert scores["judge"]["wins"] == 10
    assert scores["long enough"]["candidate"] == 1.0
    listed = api.get("/api/v1/experiments").json()
    assert [e["id"] for e in listed] == [experiment.pk]
    results = api.get(f"/api/v1/experiments/{experiment.pk}/results").json()
    assert sorted(r["entityId"] for r in results) == sorted(ids)  # newest first, as every list
    assert results[0]["verdicts"][1]["reason"] == "longer"
    path = f"/api/v1/experiments/{experiment.pk}/results"
    assert len(api.get(f"{path}?changed=true").json()) == 10
    assert api.get(f"{path}?regressed=true").json() == []
    assert len(api.get(f"{path}?regressed=false").json()) == 10
    job = api.get(f"/api/v1/jobs/{body['jobId']}").json()
    assert job["type"] == "experiment" and job["experimentId"] == experiment.pk
    assert job["status"] == "completed" and job["runId"] is None
    assert job["usage"]["inputTokens"] > 0
    assert api.get(f"/api/v1/jobs/{body['jobId']}/logs").json() == []
    jobs = api.get(f"/api/v1/jobs?workflowId={workflow.pk}&status=completed").json()
    assert [j["id"] for j in jobs] == [body["jobId"]]
    ended = api.post(f"/api/v1/jobs/{body['jobId']}/cancel")
    assert ended.status_code == 409 and ended.json()["error"]["code"] == "job_ended"


def test_cancel_through_the_job(api, setup):
    workflow, ids = setup
    body = _start(api, workflow, {"candidate": 2, "entityIds": ids, "scorers": []}).json()
    answer = api.post(f"/api/v1/jobs/{body['jobId']}/cancel")
    assert answer.status_code == 200
    assert answer.json()["status"] == "cancelled"
    assert answer.json()["progress"]["cancelled"] == 10
    experiment = experiment_run_inline(Experiment.objects.get(pk=body["id"]))
    assert experiment.results.count() == 0


def test_a_filter_sample(api, setup):
    workflow, ids = setup
    body = {"candidate": 2, "filter": {}, "sample": 3, "scorers": []}
    first = _start(api, workflow, body).json()
    second = _start(api, workflow, body).json()
    one, two = (Experiment.objects.get(pk=b["id"]) for b in (first, second))
    assert len(one.entity_ids) == 3 and set(one.entity_ids) <= set(ids)
    assert one.entity_ids == two.entity_ids  # seeded


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"candidate": 9}, "candidate"),
        ({"candidate": 2, "baseline": 7}, "baseline"),
        ({"candidate": "2"}, "candidate"),
        ({"candidate": 2, "surprise": 1}, "surprise"),
        ({"candidate": 2, "filter": {}}, "entityIds"),
        ({"candidate": 2, "entityIds": ["ent_nope"]}, "entityIds"),
        ({"candidate": 2, "sample": 5}, "sample"),
        ({"candidate": 2, "sample": 20_000, "filter": {}}, "sample"),
        ({"candidate": 2, "scorers": [{"type": "oracle", "name": "x"}]}, "scorers"),
        ({"candidate": 2, "scorers": [{"type": "human", "name": "x", "mode": "score"}]}, "scorers"),
        ({"candidate": 2, "scorers": [{"type": "rules", "name": "x"}]}, "scorers"),
        (
            {"candidate": 2, "scorers": [{"type": "rules", "name": "x", "rules": [{"f": 1}]}]},
            "scorers",
        ),
        (
            {"candidate": 2, "scorers": [{"type": "judge", "name": "x", "mode": "pairwise"}]},
            "scorers",
        ),
        (
            {
                "candidate": 2,
                "scorers": [
                    {"type": "judge", "name": "x", "mode": "score", "instructions": "{{ nope("}
                ],
            },
            "scorers",
        ),
        ({"candidate": 2, "scorers": [{"type": "human", "name": "x"}] * 2}, "scorers"),
        ({"candidate": 2, "budget": {"maxTokens": "lots"}}, "budget"),
    ],
)
def test_careless_input_is_a_400_that_stores_nothing(api, setup, body, field):
    workflow, ids = setup
    body = {"entityIds": ids, "scorers": [], **body}
    if "filter" in body and "sample" in body and body["sample"] == 20_000:
        body.pop("entityIds")
    answer = _start(api, workflow, body)
    assert answer.status_code == 400, answer.json()
    text = json.dumps(answer.json())
    assert field in text
    assert not Experiment.objects.exists() and not Job.objects.exists()


def test_an_id_named_twice_is_a_400_as_for_a_run(api, setup):
    """A careless client's repeated id is refused naming it (detail code `duplicate`), as
    `/run` and `/estimate` refuse it, not quietly run once."""
    workflow, ids = setup
    answer = _start(api, workflow, {"candidate": 2, "entityIds": [*ids, ids[0]], "scorers": []})
    assert answer.status_code == 400, answer.json()
    details = answer.json()["error"]["details"]
    assert [(d["field"], d["code"]) for d in details] == [("entityIds", "duplicate")]
    assert ids[0] in details[0]["message"]
    assert not Experiment.objects.exists() and not Job.objects.exists()


@pytest.mark.parametrize(
    ("scorer", "missing"),
    [
        ({"type": "judge", "name": "j", "mode": "score"}, ["instructions"]),
        ({"type": "judge", "name": "j", "instructions": "Better?"}, ["mode"]),
        ({"type": "judge", "name": "j"}, ["mode", "instructions"]),
        ({"type": "rules", "name": "r"}, ["rules"]),
    ],
)
def test_a_scorer_missing_a_field_its_type_needs_has_the_detail_code_required(
    api, setup, scorer, missing
):
    workflow, ids = setup
    answer = _start(api, workflow, {"candidate": 2, "entityIds": ids, "scorers": [scorer]})
    assert answer.status_code == 400
    details = answer.json()["error"]["details"]
    assert sorted((d["field"], d["code"]) for d in details) == sorted(
        (f"scorers[0].{field}", "required") for field in missing
    )


def test_permissions(api, read_only_api, setup):
    workflow, ids = setup
    body = {"candidate": 2, "entityIds": ids, "scorers": []}
    assert _start(read_only_api, workflow, body).status_code == 403
    missing = api.post("/api/v1/workflows/wf_00000000000000000000000000/experiments", body)
    assert missing.status_code == 404
    started = _start(api, workflow, body).json()
    assert read_only_api.get(f"/api/v1/experiments/{started['id']}").status_code == 200
    assert read_only_api.post(f"/api/v1/jobs/{started['jobId']}/cancel").status_code == 403
    assert api.get("/api/v1/experiments/exp_nope").status_code == 404


def test_idempotency_key_starts_one(api, setup):
    workflow, ids = setup
    body = {"candidate": 2, "entityIds": ids, "scorers": []}
    first = api.post(
        f"/api/v1/workflows/{workflow.pk}/experiments", body, HTTP_IDEMPOTENCY_KEY="k-1"
    )
    again = api.post(
        f"/api/v1/workflows/{workflow.pk}/experiments", body, HTTP_IDEMPOTENCY_KEY="k-1"
    )
    assert first.status_code == again.status_code == 202
    assert first.json() == again.json()
    assert Experiment.objects.count() == 1


def test_the_admin_lists_an_experiment_job(api, setup, admin_client):
    workflow, ids = setup
    started = _start(api, workflow, {"candidate": 2, "entityIds": ids, "scorers": []}).json()
    page = admin_client.get("/admin/jobs/job/")
    assert page.status_code == 200
    # Its experiment is a link to the experiment's page, as a run's job links its run.
    link = f'<a href="/admin/jobs/experiment/{quote(started["id"])}/change/">{started["id"]}</a>'
    assert link in page.content.decode()


def test_results_carry_entity_data_so_they_need_view_entity(api, setup):
    from tests.conftest import Api
    from tests.factories import make_key

    workflow, ids = setup
    started = _start(api, workflow, {"candidate": 2, "entityIds": ids, "scorers": []}).json()
    experiment_only = Api(make_key(perms=["jobs.view_experiment"]))
    assert experiment_only.get(f"/api/v1/experiments/{started['id']}").status_code == 200
    assert experiment_only.get(f"/api/v1/experiments/{started['id']}/results").status_code == 403
    both = Api(make_key(perms=["jobs.view_experiment", "entities.view_entity"]))
    assert both.get(f"/api/v1/experiments/{started['id']}/results").status_code == 200
    # Starting one takes the right to add experiments, read the workflow and its entities.
    no_entities = Api(make_key(perms=["jobs.add_experiment", "workflows.view_workflow"]))
    body = {"candidate": 2, "entityIds": ids, "scorers": []}
    assert _start(no_entities, workflow, body).status_code == 403


def test_an_ended_experiment_reads_its_stored_summary(api, setup, django_assert_max_num_queries):
    workflow, ids = setup
    scorers = [{"type": "human", "name": "people"}]
    started = _start(api, workflow, {"candidate": 2, "entityIds": ids, "scorers": scorers})
    experiment = experiment_run_inline(Experiment.objects.get(pk=started.json()["id"]))
    assert experiment.summary["arms"]["candidate"]["completed"] == 10
    with django_assert_max_num_queries(8):  # no read of its result rows
        listed = api.get("/api/v1/experiments").json()
    assert listed[0]["arms"] == experiment.summary["arms"]
    # A human pick after the end updates it.
    from jobs.experiments.human import human_decide

    result = experiment.results.first()
    human_decide(
        experiment_id=experiment.pk,
        result_id=result.pk,
        scorer="people",
        choice="tie",
        comment="",
        user_id=None,
    )
    [score] = api.get(f"/api/v1/experiments/{experiment.pk}").json()["scores"]
    assert score["ties"] == 1


JUDGE = {"type": "judge", "name": "j", "mode": "pairwise", "instructions": "Describe it."}


@pytest.mark.parametrize(
    ("judge", "budget", "status"),
    [
        # The judges' calls spend from the budget: a USD budget needs their model's price.
        ({"provider": "openai", "model": "my-private-judge"}, {"maxCostUsd": 0.5}, 400),
        ({"provider": "openai", "model": "my-private-judge"}, {"maxTokens": 10_000}, 202),
        ({"provider": "openai", "model": "gpt-5-mini"}, {"maxCostUsd": 0.5}, 202),
    ],
)
def test_a_usd_budget_takes_a_price_for_the_judges_model_too(api, setup, judge, budget, status):
    workflow, ids = setup
    body = {"candidate": 2, "entityIds": ids, "scorers": [{**JUDGE, **judge}], "budget": budget}
    answer = _start(api, workflow, body)
    assert answer.status_code == status, answer.json()
    if status == 400:
        [detail] = answer.json()["error"]["details"]
        assert (detail["field"], detail["code"]) == ("scorers[0].model", "unpriced_model")
        assert "my-private-judge" in detail["message"]
        assert not Experiment.objects.exists() and not Job.objects.exists()


@pytest.mark.parametrize("name", [".", "..", "..."])
def test_a_scorer_named_by_dots_alone_is_refused_naming_its_field(api, setup, name):
    """A human scorer's name is a part of its compare page's URL, where `.` and `..` are
    the page itself and the one above it: such a page could not be reached."""
    workflow, ids = setup
    body = {"candidate": 2, "entityIds": ids, "scorers": [{"type": "human", "name": name}]}
    answer = _start(api, workflow, body)
    assert answer.status_code == 400, answer.json()
    text = json.dumps(answer.json())
    assert "scorers[0].name" in text and "dots alone" in text, text
    assert not Experiment.objects.exists()


def test_a_scorer_name_with_dots_among_other_characters_is_taken(api, setup):
    workflow, ids = setup
    body = {"candidate": 2, "entityIds": ids, "scorers": [{"type": "human", "name": "v1.2 .."}]}
    assert _start(api, workflow, body).status_code == 202


def test_lists_and_reads_of_experiments_and_their_jobs_never_load_their_samples(api, setup):
    """An experiment's sampled ids (up to 10,000, a third of a megabyte of JSON) and its
    chunks' deliveries are its workers' business: a page of 500 experiments or jobs read
    them all before. The API's reads select neither."""
    workflow, ids = setup
    started = _start(api, workflow, {"candidate": 2, "entityIds": ids, "scorers": []}).json()
    paths = [
        "/api/v1/experiments",
        f"/api/v1/experiments/{started['id']}",
        "/api/v1/jobs",
        f"/api/v1/jobs/{started['jobId']}",
    ]
    for path in paths:
        with CaptureQueriesContext(connection) as queries:
            assert api.get(path).status_code == 200
        read = [
            q["sql"] for q in queries if re.search(r'"(entity_ids|chunk_deliveries)"', q["sql"])
        ]
        assert read == [], (path, read)


def test_a_page_of_experiments_is_not_cut_short_by_their_samples(api, setup, settings):
    """A page is cut where its JSON would pass API_MAX_PAGE_BYTES: an experiment's sample,
    never served, counted in its size, so a page of experiments over large samples held a
    few of them (about 12 of 10,000 entities each in the 4 MB default) whatever `limit`."""
    workflow, _ = setup
    ids = make_entities(workflow.entity_type, 300)
    for _ in range(3):
        _start(api, workflow, {"candidate": 2, "entityIds": ids, "scorers": []})
    served = len(api.get("/api/v1/experiments").content)
    settings.API_MAX_PAGE_BYTES = 2 * served  # well above the page served, below 3 samples
    assert len(json.dumps(ids)) * 3 > settings.API_MAX_PAGE_BYTES
    page = api.get("/api/v1/experiments?limit=3")
    assert len(page.json()) == 3 and "Link" not in page.headers
    jobs = api.get("/api/v1/jobs?limit=3")
    assert len(jobs.json()) == 3


def test_each_side_of_a_result_shows_its_usage_as_every_usage_of_the_api(api, setup):
    """`{inputTokens, cachedInputTokens, outputTokens, costUsd}`, as a run's, a job's and a
    test's usage (one sum, shown alike), not its stored shape (nano-dollars, zeros left
    out)."""
    workflow, ids = setup
    scored = {**JUDGE, "name": "scored", "mode": "score", "provider": "openai"}  # fails: error
    scorers = [*SCORERS_OF_EACH_TYPE, scored]
    body = _start(api, workflow, {"candidate": 2, "entityIds": ids, "scorers": scorers}).json()
    experiment = experiment_run_inline(Experiment.objects.get(pk=body["id"]))
    results = api.get(f"/api/v1/experiments/{experiment.pk}/results").json()
    assert {"error" in verdict for verdict in results[0]["verdicts"]} == {True, False}
    row = next(r for r in results if r["entityId"] == ids[0])
    stored = experiment.results.get(entity_id=ids[0])
    for arm in ("baseline", "candidate"):
        usage = row[arm]["usage"]
        assert usage == Usage.of(getattr(stored, arm)["usage"]).summary()
        assert set(usage) == {"inputTokens", "cachedInputTokens", "outputTokens", "costUsd"}
        assert usage["inputTokens"] > 0 and isinstance(usage["costUsd"], float)
    # ...and as the served schema describes a result (its sides and verdicts typed).
    document = api.get("/api/v1/schema?format=json").json()
    schema = {"$ref": "#/components/schemas/ExperimentResult", **document}
    validator = OAS30Validator(schema)
    for result in results:
        assert list(validator.iter_errors(result)) == []
    arms = api.get(f"/api/v1/experiments/{experiment.pk}").json()["arms"]
    assert arms["candidate"]["inputTokens"] == sum(
        r["candidate"]["usage"]["inputTokens"] for r in results
    )
