"""The admin on the embedded defaults (SQLite, `manage.py demo`'s engine): every page staff
reach by links from the index answers, with a row of each kind the demo makes.

The suite's admin tests run on PostgreSQL; a lookup SQLite's backend does not have (JSON
containment, DISTINCT ON) is a 500 only there, on the first page a new user opens. Here the
demo's data, runs, reviews, waits, an experiment with a human scorer and a schedule are made
on a SQLite database in a process of its own, and its admin is walked with Django's test
client, one page of each kind (a model's object pages stand for all of its objects; each
set of query parameters is a kind of its own)."""

import pytest

from tests.reliability.test_embedded_defaults import on_sqlite

SCRIPT = r"""
import html
import json
import re
from unittest import mock
from urllib.parse import parse_qsl, urljoin, urlsplit

from django.contrib.admin.utils import quote
from django.contrib.auth import get_user_model
from django.test import Client

from entities.services import entities_bulk_create
from jobs.demo import DEMO_STEPS, demo_seed
from jobs.experiments.services import experiment_start
from jobs.models import Review, Run
from jobs.waits.event.services import EventIn, events_send
from jobs.waits.review.services import reviews_decide
from tests.factories import experiment_run_inline, make_workflow, run_inline, start_run
from workflows.services import workflow_update

# No worker: what would be queued is run below, or not at all.
mock.patch("celery.app.base.Celery.send_task").start()

demo = demo_seed()
product = demo["entity_type"]
ids = entities_bulk_create(
    entity_type=product, items=[{"data": {"title": f"Item {i}", "price": i}} for i in range(4)]
)
run_inline(start_run(demo["workflow"], ids).pk)
run_inline(start_run(demo["batch_workflow"], ids[:2]).pk)  # waits for its provider batch
delayed = make_workflow(product, [
    {"id": "pause", "type": "delay", "config": {"minutes": 5}},
    {"id": "pub", "type": "publish", "config": {}},
], name="Delayed")
run_inline(start_run(delayed, ids[2:]).pk)
reviewed = make_workflow(product, [
    {"id": "tidy", "type": "transform", "config": {"operations": [
        {"op": "set", "field": "slug", "value": "{{ entity.title | lower }}"}]}},
    {"id": "check", "type": "review", "config": {"instructions": "{{ entity.slug }}?"}},
    {"id": "shipped", "type": "wait_for_event", "config": {
        "event": "shipped", "key": "{{ entity.slug }}"}},
    {"id": "pub", "type": "publish", "config": {}},
], name="Reviewed", triggers=[{"on": "schedule", "cron": "0 3 * * *"}])
parked = start_run(reviewed, ids)
run_inline(parked.pk)
user = get_user_model().objects.get(username=demo["username"])
decided = list(Review.objects.filter(run=parked).values_list("pk", flat=True)[:2])
reviews_decide(review_ids=decided, decision="approve", user=user)
events_send(events=[EventIn(name="shipped", key="nothing")])
workflow = workflow_update(
    workflow_id=demo["workflow"].pk,
    steps=[{**step, "id": step["id"] + "2"} for step in DEMO_STEPS],
    draft=True,
)
versions = {v.number: v for v in workflow.versions.all()}
experiment = experiment_run_inline(experiment_start(
    workflow=workflow,
    baseline=versions[1],
    candidate=versions[2],
    scorers=[{"type": "human", "name": "people"}, {"type": "rules", "name": "priced",
             "rules": [{"field": "price", "type": "number"}]}],
    entity_ids=ids[:2],
))

client = Client()
client.raise_request_exception = False
client.force_login(user)
SKIP = re.compile(r"/logout/|/delete/|/password/|/jsi18n/|/r/\d+/")


def kind(path):
    link = urlsplit(path)
    page = re.sub(r"^(/admin/[^/]+/[^/]+/)(?!add/)[^/]+/", r"\1<id>/", link.path)
    return page + "?" + "&".join(sorted({key for key, _ in parse_qsl(link.query)}))


queue, seen, problems = ["/admin/"], set(), []
while queue:
    path = queue.pop(0)
    if kind(path) in seen:
        continue
    seen.add(kind(path))
    answer = client.get(path)
    if answer.status_code >= 400:
        problems.append(f"{path}: {answer.status_code}")
    if answer.status_code != 200 or "html" not in answer.get("Content-Type", ""):
        continue
    for href in re.findall(r'href="([^"#]*)"', answer.content.decode()):
        link = urlsplit(urljoin(path, html.unescape(href)))
        if link.path.startswith("/admin/") and not SKIP.search(link.path):
            queue.append(link.path + ("?" + link.query if link.query else ""))

# Every run's page: one of each kind of wait (a review, a provider batch, a delay), each
# kind's part of the page its own.
for run_id in Run.objects.values_list("pk", flat=True):
    path = f"/admin/jobs/run/{quote(run_id)}/change/"
    if (status := client.get(path).status_code) != 200:
        problems.append(f"{path}: {status}")

# A pick in the human scorer's queue, then the queue with one comparison fewer.
compare = f"/admin/jobs/experiment/{quote(experiment.pk)}/compare/people/"
first = experiment.results.order_by("position").first()
picked = client.post(compare, {"result": first.pk, "choice": "A"})
left = client.get(compare)
print(json.dumps({
    "seen": sorted(seen),
    "problems": problems,
    "picked": picked.status_code,
    "left": [left.status_code, re.findall(r"\d+ comparisons? left", left.content.decode())],
}))
"""


@pytest.mark.long
def test_every_admin_page_answers_on_sqlite(tmp_path):
    result = on_sqlite(tmp_path, SCRIPT)
    assert not result["problems"], "\n".join(result["problems"])
    seen = set(result["seen"])
    assert len(seen) > 100
    assert {
        "/admin/jobs/experiment/<id>/change/?",
        "/admin/jobs/experiment/<id>/compare/people/?",
        "/admin/jobs/review/?",
        "/admin/jobs/run/<id>/change/?",
        "/admin/entities/entity/<id>/change/?",
        "/admin/workflows/workflow/<id>/change/?",
    } <= seen
    assert result["picked"] == 302
    assert result["left"] == [200, ["1 comparison left"]]  # two comparisons, one picked


SEARCH_SCRIPT = r"""
import json
import re

from django.contrib.auth import get_user_model
from django.test import Client

from entities.models import Entity
from entities.services import entities_bulk_create, entity_type_create
from jobs.entity_search import entity_search

product = entity_type_create(name="product")
ids = entities_bulk_create(entity_type=product, items=[
    {"data": {"title": "Crème brûlée torch"}},
    {"data": {"title": "Küchenmesser", "note": 'a "quoted" \\ word'}},
    {"data": {"title": "Plain"}},
])
client = Client()
client.force_login(get_user_model().objects.create_superuser("boss"))


def listed(text):
    page = client.get("/admin/entities/entity/", {"q": text}).content.decode()
    return sorted(set(re.findall(r"ent_[0-9a-z]+", page)) & set(ids))


def matched(text):
    return sorted(Entity.objects.filter(data__icontains=text).values_list("pk", flat=True))


texts = ["crème", "CRÈME", "brûlée torch", "BRÛLÉE", "Küchen", "KÜCHEN", '"quoted"', "\\", "torch"]
print(json.dumps({
    "ids": ids,
    "listed": {text: listed(text) for text in texts},
    "matched": {text: matched(text) for text in texts},
    "form": [e.pk for e in entity_search({"q": "Crème"}, product.pk, by_data=True).shown],
}))
"""


def test_entities_are_found_by_text_that_is_not_ascii_on_sqlite(tmp_path):
    """SQLite keeps the data as Django wrote it, `é` as `\\u00e9`: a search for `crème` in
    the entity list, or in a run form's entity search, found nothing there; and its LIKE
    folds the case of ASCII letters only, so `CRÈME` found nothing either."""
    result = on_sqlite(tmp_path, SEARCH_SCRIPT)
    torch, knife, _ = result["ids"]
    expected = {
        "crème": [torch],
        "CRÈME": [torch],
        "brûlée torch": [torch],
        "BRÛLÉE": [torch],
        "Küchen": [knife],
        "KÜCHEN": [knife],
        '"quoted"': [knife],
        "\\": [knife],
        "torch": [torch],
    }
    assert result["matched"] == expected
    assert result["listed"] == expected
    assert result["form"] == [torch]
