"""A run over 10,000 entities (transform, validate, condition, publish) through the API and
real workers, against a hand-written psycopg script doing the same reads, transformations
and writes on the same database.

The workers are warmed up first with a run of one chunk (their first task opens their
database connections and compiles the templates, as happens once in a worker's life), then
the run and the script take turns five times, each turn on a freshly vacuumed database; the
figure is the median of the ratios."""

import json
import statistics
import time

import httpx
import psycopg
from django.utils.text import slugify

from benchmarks.harness import ENV, wait_for_run

ENTITIES = 10_000
REPEAT = 5
STEPS = [
    {
        "id": "tidy",
        "type": "transform",
        "config": {
            "operations": [
                {"op": "trim", "field": "title"},
                {"op": "set", "field": "slug", "value": "{{ entity.brand }} {{ entity.title }}"},
                {"op": "slugify", "field": "slug"},
            ]
        },
    },
    {
        "id": "check",
        "type": "validate",
        "config": {
            "rules": [
                {"field": "title", "required": True, "type": "string", "maxLength": 200},
                {"field": "price", "type": "number", "minimum": 0},
            ]
        },
    },
    {
        "id": "cheap",
        "type": "condition",
        "config": {"if": {"field": "price", "operator": "lt", "value": 9000}},
    },
    {"id": "pub", "type": "publish", "config": {}},
]


def make_entities(entity_type, count: int = ENTITIES) -> list[str]:
    from entities.services import entities_bulk_create

    return entities_bulk_create(
        entity_type=entity_type,
        items=[
            {"data": {"title": f"  Item {i} ", "brand": "Acme", "price": i}} for i in range(count)
        ],
    )


def baseline(entity_ids: list[str], batch: int = 400) -> float:
    """The floor: read, transform, check and write back, batch by batch, in plain psycopg."""
    started = time.perf_counter()
    with psycopg.connect(ENV["DATABASE_URL"]) as db:
        for first in range(0, len(entity_ids), batch):
            ids = entity_ids[first : first + batch]
            with db.transaction():
                rows = db.execute(
                    "SELECT id, data FROM entities_entity WHERE id = ANY(%s) FOR UPDATE", [ids]
                ).fetchall()
                updates = []
                for entity_id, data in rows:
                    data["title"] = data["title"].strip()
                    data["slug"] = slugify(f"{data['brand']} {data['title']}")
                    valid = (
                        isinstance(data["title"], str)
                        and len(data["title"]) <= 200
                        and (isinstance(data["price"], int | float) and data["price"] >= 0)
                    )
                    if valid and data["price"] < 9000:
                        updates.append((json.dumps(data), entity_id))
                with db.cursor() as cursor:
                    cursor.executemany(
                        "UPDATE entities_entity SET data = %s::jsonb, status = 'published', "
                        "published_at = now(), updated_at = now(), version = version + 1 "
                        "WHERE id = %s",
                        updates,
                    )
    return time.perf_counter() - started


def vacuum() -> None:
    """Start each turn from the same state: the earlier turns' (and benchmarks') dead rows
    vacuumed and statistics fresh, so autovacuum does not wake up in the middle of a turn
    and take a core from one side only."""
    with psycopg.connect(ENV["DATABASE_URL"], autocommit=True) as db:
        db.execute("VACUUM (ANALYZE)")


def run_workflow(client: httpx.Client, workflow_id: str, entity_ids: list[str]) -> float:
    """Start a run through the API and wait for it; its status is checked, its time returned.
    The client is made once, as an API consumer's is: building one (its TLS context) takes
    longer than some chunks."""
    started = time.perf_counter()
    response = client.post(f"/api/v1/workflows/{workflow_id}/run", json={"entityIds": entity_ids})
    response.raise_for_status()
    run = wait_for_run(response.json()["runId"])
    elapsed = time.perf_counter() - started
    assert run.status == "completed", run.status
    return elapsed


def run(base_url: str, key: str) -> dict:
    from entities.models import Entity
    from entities.services import entity_type_create
    from workflows.services import workflow_create

    entity_type = entity_type_create(name=f"pipeline-{time.time_ns()}")
    workflow = workflow_create(name="pipeline", entity_type=entity_type, steps=STEPS)
    client = httpx.Client(
        base_url=base_url, headers={"Authorization": f"Bearer {key}"}, timeout=120
    )
    with client:
        run_workflow(client, workflow.pk, make_entities(entity_type, 400))  # warm-up
        runs, scripts = [], []
        for _ in range(REPEAT):
            ours_ids, floor_ids = make_entities(entity_type), make_entities(entity_type)
            vacuum()
            scripts.append(baseline(floor_ids))
            runs.append(run_workflow(client, workflow.pk, ours_ids))
            published = Entity.objects.filter(pk__in=ours_ids, status="published").count()
            floor_published = Entity.objects.filter(pk__in=floor_ids, status="published").count()
            assert published == floor_published == 9000, (published, floor_published)
    ratios = sorted(ours / floor for ours, floor in zip(runs, scripts, strict=True))
    return {
        "entities": ENTITIES,
        "repeat": REPEAT,
        "run_s": round(statistics.median(runs), 2),
        "script_s": round(statistics.median(scripts), 2),
        "ratio": round(statistics.median(ratios), 2),
        "ratios": [round(ratio, 2) for ratio in ratios],
        "target_ratio": 2.0,
        "entities_per_s": round(ENTITIES / statistics.median(runs)),
    }
