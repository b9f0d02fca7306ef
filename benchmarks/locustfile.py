"""The API under load as an integration uses it, for locust (`benchmarks/load.py` runs it).

`ApiClient` is the mix: every user a client of its own with the API key as a bearer token,
reading far more than it writes: pages of entities by type and status (and the next page
by its `Link`), one entity, a workflow's runs and jobs, the step types; creating entities
one by one and in bulk, merging data into one, sending events; now and then a run of the
workflow over a few entity ids, polled until it ends, then its items. `TrivialClient` is its
floor: the same think time against `/bench/trivial` (the same key lookup, permission check
and throttle, no work).

Requests are named by route (`/api/v1/entities/:id`), so locust's stats group by endpoint.
Every request expects a 2xx: anything else is a failure, recorded with the start of its
body; a run's poll seeing it fail, or still open after RUN_TIMEOUT_S, is one too (the runs'
own times are read from the database by `benchmarks/load.py`).

Read from the environment: LOAD_API_KEY, LOAD_ENTITY_TYPE_ID, LOAD_WORKFLOW_ID and
LOAD_ENTITY_IDS (a file of the seeded entities' ids, one a line)."""

import os
import random
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit

from locust import FastHttpUser, between, task

API = "/api/v1"
THINK_S = (0.5, 1.5)  # between two tasks of one user: an integration, not a flood
PAGE = 50
BULK_ITEMS = 50
RUN_ENTITIES = 5
RUN_POLL_S = 0.5
RUN_TIMEOUT_S = 60
ENDED = {"completed", "failed", "cancelled"}

KEY = os.environ["LOAD_API_KEY"]
ENTITY_TYPE_ID = os.environ["LOAD_ENTITY_TYPE_ID"]
WORKFLOW_ID = os.environ["LOAD_WORKFLOW_ID"]
SEEDED = Path(os.environ["LOAD_ENTITY_IDS"]).read_text().split()


def _next_page(link: str | None) -> str | None:
    """The path and query of a `Link: <url>; rel="next"` header's url."""
    if not link or 'rel="next"' not in link:
        return None
    url = urlsplit(link[link.index("<") + 1 : link.index(">")])
    return f"{url.path}?{url.query}"


class _Client(FastHttpUser):
    abstract = True
    wait_time = between(*THINK_S)
    default_headers = {"Authorization": f"Bearer {KEY}"}

    def call(self, method: str, path: str, name: str, **kwargs):
        """The answer, or None: a non-2xx is a failure named by `name`, with its body's start."""
        with self.client.request(method, path, name=name, catch_response=True, **kwargs) as answer:
            if 200 <= answer.status_code < 300:
                answer.success()
                return answer
            answer.failure(f"{answer.status_code}: {(answer.text or '')[:300]}")
            return None


class TrivialClient(_Client):
    """The floor: an authenticated DRF GET doing nothing, at the same think time."""

    @task
    def trivial(self) -> None:
        self.call("GET", "/bench/trivial", "/bench/trivial")


class ApiClient(_Client):
    """An integration's mix: about three reads to one write (the run's polls add reads)."""

    def on_start(self) -> None:
        self.mine: list[str] = []  # the entities this client created

    def _entity_id(self) -> str:
        if self.mine and random.random() < 0.3:
            return random.choice(self.mine)
        return random.choice(SEEDED)

    def _entity_data(self) -> dict:
        number = random.randrange(1_000_000)
        return {"title": f"  Load item {number} ", "brand": "Acme", "price": number % 10_000}

    @task(20)
    def list_entities(self) -> None:
        status = random.choice(["draft", "published"])
        answer = self.call(
            "GET",
            f"{API}/entities?entityTypeId={ENTITY_TYPE_ID}&status={status}&limit={PAGE}",
            f"{API}/entities?entityTypeId&status",
        )
        following = _next_page(answer.headers.get("Link")) if answer else None
        if following and random.random() < 0.3:
            self.call("GET", following, f"{API}/entities?cursor")

    @task(25)
    def get_entity(self) -> None:
        self.call("GET", f"{API}/entities/{self._entity_id()}", f"{API}/entities/:id")

    @task(5)
    def create_entity(self) -> None:
        body = {"entityTypeId": ENTITY_TYPE_ID, "data": self._entity_data()}
        answer = self.call("POST", f"{API}/entities", f"{API}/entities", json=body)
        if answer:
            self.mine.append(answer.json()["id"])

    @task(1)
    def create_entities_bulk(self) -> None:
        body = {
            "entityTypeId": ENTITY_TYPE_ID,
            "items": [{"data": self._entity_data()} for _ in range(BULK_ITEMS)],
        }
        answer = self.call(
            "POST",
            f"{API}/entities/bulk",
            f"{API}/entities/bulk",
            json=body,
            headers={"Idempotency-Key": str(uuid.uuid4())},
        )
        if answer:
            self.mine.extend(answer.json()["ids"])

    @task(8)
    def patch_entity(self) -> None:
        body = {"data": {"price": random.randrange(10_000), "note": f"seen {time.time():.0f}"}}
        self.call("PATCH", f"{API}/entities/{self._entity_id()}", f"{API}/entities/:id", json=body)

    @task(8)
    def send_event(self) -> None:
        body = {"name": "order.paid", "key": f"order-{random.randrange(100_000)}", "data": {}}
        self.call("POST", f"{API}/events", f"{API}/events", json=body)

    @task(4)
    def list_runs(self) -> None:
        self.call("GET", f"{API}/workflows/{WORKFLOW_ID}/runs", f"{API}/workflows/:id/runs")

    @task(4)
    def list_jobs(self) -> None:
        self.call("GET", f"{API}/jobs?workflowId={WORKFLOW_ID}", f"{API}/jobs?workflowId")

    @task(2)
    def step_types(self) -> None:
        self.call("GET", f"{API}/step-types", f"{API}/step-types")

    @task(2)
    def run_workflow(self) -> None:
        """A run over a few entities, polled until it ends, then its items. A run that
        does not complete (or is still open after RUN_TIMEOUT_S) fails its last poll."""
        runs = f"{API}/workflows/{WORKFLOW_ID}/runs"
        body = {"entityIds": random.sample(SEEDED, RUN_ENTITIES)}
        started = time.perf_counter()
        answer = self.call(
            "POST",
            f"{API}/workflows/{WORKFLOW_ID}/run",
            f"{API}/workflows/:id/run",
            json=body,
            headers={"Idempotency-Key": str(uuid.uuid4())},
        )
        if not answer:
            return
        run_id = answer.json()["runId"]
        while True:
            time.sleep(RUN_POLL_S)
            late = time.perf_counter() - started > RUN_TIMEOUT_S
            with self.client.get(
                f"{runs}/{run_id}", name=f"{API}/workflows/:id/runs/:runId", catch_response=True
            ) as polled:
                if not 200 <= polled.status_code < 300:
                    polled.failure(f"{polled.status_code}: {(polled.text or '')[:300]}")
                    return
                status = polled.json()["status"]
                if status in ENDED - {"completed"}:
                    polled.failure(f"run {status}")
                    return
                if status != "completed" and late:
                    polled.failure(f"run still {status} after {RUN_TIMEOUT_S} s")
                    return
                polled.success()
            if status == "completed":
                break
        self.call("GET", f"{runs}/{run_id}/items", f"{API}/workflows/:id/runs/:runId/items")
