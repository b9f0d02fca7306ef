import os

import pytest

from jobs import queue
from jobs.experiments import services as experiments
from tests.admin.browsing import CHROMIUM
from tests.factories import answer_by_prompt, experiment_run_inline, make_entities, make_versions

# What an experiment's admin pages are tried with: a rules scorer and a human one.
EXPERIMENT_SCORERS = [
    {"type": "rules", "name": "short", "rules": [{"field": "description", "maxLength": 20}]},
    {"type": "human", "name": "people"},
]


@pytest.fixture
def staff(client, django_user_model):
    django_user_model.objects.create_superuser("staff", "s@example.com", "pw-for-tests-1")
    client.login(username="staff", password="pw-for-tests-1")
    return client


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    # Playwright's sync API runs an event loop in this thread; the ORM calls the tests make
    # around it are synchronous and safe.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        yield browser
        browser.close()


@pytest.fixture
def finished_experiment(product_type, openai_server, settings, monkeypatch):
    """Makes an experiment of EXPERIMENT_SCORERS over `entities` new entities, a baseline and
    a candidate version answered by the fake OpenAI server, run to its end in this process.
    Its chunks are not queued: in a test whose data is committed (a browser's), a worker the
    session started would take them first and call its own model server."""
    settings.EXPERIMENT_CHUNK_SIZE = 5
    monkeypatch.setattr(queue, "experiment_chunks_enqueue", lambda *args, **kwargs: None)

    def make(entities: int):
        workflow, baseline, candidate = make_versions(product_type)
        ids = make_entities(product_type, entities)
        answer_by_prompt(openai_server)
        started = experiments.experiment_start(
            workflow=workflow,
            baseline=baseline,
            candidate=candidate,
            scorers=EXPERIMENT_SCORERS,
            entity_ids=ids,
        )
        return experiment_run_inline(started)

    return make


@pytest.fixture
def staff_with(client, django_user_model):
    """A staff member (not a superuser) with only the given permissions (`app.codename`),
    logged in: `staff_with("jobs.view_run", "jobs.add_run")`."""
    from django.contrib.auth.models import Permission

    def login(*perms: str):
        user = django_user_model.objects.create_user(
            "clerk", password="pw-for-tests-1", is_staff=True
        )
        for perm in perms:
            app, codename = perm.split(".")
            user.user_permissions.add(
                Permission.objects.get(content_type__app_label=app, codename=codename)
            )
        client.login(username="clerk", password="pw-for-tests-1")
        return client

    return login
