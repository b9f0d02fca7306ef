"""Every admin page staff reach by links from the index, in Chromium at 1280 px, with a row of
each model: none scrolls sideways, throws or logs a JavaScript error, or shows a Python repr."""

import re
from urllib.parse import urlsplit

import pytest
from django.contrib.auth.models import Group

from tests.admin.browsing import (
    inner_overflows,
    overflow,
    python_reprs,
    require_chromium,
    staff_page,
)
from tests.factories import (
    answer_by_prompt,
    experiment_run_inline,
    make_entities,
    make_key,
    make_versions,
    make_workflow,
    run_inline,
    start_run,
)

require_chromium()
pytestmark = pytest.mark.django_db(transaction=True)

# A condition nested ten groups deep (true for every entity): the widest step form, which
# must fit the steps inline without scrolling inside it.
DEEP = {"field": "title", "operator": "exists"}
for _ in range(5):
    DEEP = {"all": [{"any": [DEEP, {"field": "price", "operator": "gte", "value": 0}]}]}
NESTED = {"id": "deep", "type": "condition", "config": {"if": DEEP, "else": "stop"}}
REVIEWED = [
    NESTED,
    {
        "id": "tidy",
        "type": "transform",
        "config": {"operations": [{"op": "set", "field": "slug", "value": "{{ entity.title }}"}]},
    },
    {"id": "check", "type": "review", "config": {"instructions": "Right?", "fields": ["slug"]}},
    {"id": "pub", "type": "publish", "config": {}},
]
PUBLISHED = [
    NESTED,
    {
        "id": "flag",
        "type": "transform",
        "config": {
            "operations": [
                {"op": "set", "field": "done", "value": True},
                {"op": "set", "field": "note", "value": None},
            ]
        },
    },
    {"id": "pub", "type": "publish", "config": {}},
]
# Pages left alone: leaving, confirmations of deletes, the password forms of other users.
SKIP = re.compile(r"/logout/|/delete/|/password/|/jsi18n/|/r/\d+/")


def fixture_rows(product_type, openai_server):
    from jobs.experiments.services import experiment_start
    from jobs.schedules import schedule_fire

    ids = make_entities(product_type, 3)
    parked = start_run(make_workflow(product_type, REVIEWED, name="Reviewed"), ids[:2])
    run_inline(parked.pk)
    done = start_run(make_workflow(product_type, PUBLISHED, name="Flagged"), ids)
    run_inline(done.pk)
    nightly = make_workflow(
        product_type, PUBLISHED, name="Nightly", triggers=[{"on": "schedule", "cron": "0 3 * * *"}]
    )
    schedule_fire(workflow_id=nightly.pk, trigger_index=0)
    make_key("api-user")
    Group.objects.create(name="Editors")
    # An experiment with a human scorer: its page, and its blind comparison queue.
    workflow, baseline, candidate = make_versions(product_type)
    answer_by_prompt(openai_server)
    experiment_run_inline(
        experiment_start(
            workflow=workflow,
            baseline=baseline,
            candidate=candidate,
            scorers=[{"type": "human", "name": "people"}],
            entity_ids=ids[:2],
        )
    )


def page_kind(path: str) -> str:
    """One page of each kind: a model's object pages stand for all of its objects."""
    return re.sub(r"^(/admin/[^/]+/[^/]+/)(?!add/)[^/]+/", r"\1<id>/", path)


@pytest.mark.long
def test_every_admin_page_fits_1280_px_without_errors_or_reprs(
    browser, live_server, django_user_model, product_type, openai_server
):
    fixture_rows(product_type, openai_server)
    watched = staff_page(browser, live_server, django_user_model, width=1280)
    page = watched.page
    queue, seen, problems = ["/admin/"], set(), []
    while queue:
        path = queue.pop(0)
        if page_kind(path) in seen:
            continue
        seen.add(page_kind(path))
        response = page.goto(path)
        page.wait_for_load_state("load")
        if response.status >= 400:
            problems.append(f"{path}: HTTP {response.status}")
        if (width := overflow(page)) > 0:
            problems.append(f"{path}: scrolls {width} px sideways")
        if boxes := inner_overflows(page):
            problems.append(f"{path}: boxes scroll sideways inside it {boxes[:3]}")
        if reprs := python_reprs(page):
            problems.append(f"{path}: Python reprs {reprs[:3]}")
        for href in page.eval_on_selector_all("a[href]", "links => links.map(a => a.href)"):
            link = urlsplit(href)
            if link.path.startswith("/admin/") and not SKIP.search(link.path):
                queue.append(link.path)
    problems += watched.errors
    assert len(seen) > 25, sorted(seen)
    # The pages of experiments and versions are among them, and the form that starts one.
    assert {
        "/admin/jobs/experiment/<id>/change/",
        "/admin/jobs/experiment/<id>/compare/people/",
        "/admin/workflows/workflow/<id>/experiment/",
    } <= seen
    assert not problems, "\n".join(problems)
