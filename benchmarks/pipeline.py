"""A run over 10,000 entities (transform, validate, condition, publish) through the API and
real workers, against a hand-written psycopg script doing the same reads, transformations
and writes on the same database."""

import json
import time

import httpx
import psycopg
from django.utils.text import slugify

from benchmarks.harness import ENV, wait_for_run

ENTITIES = 10_000
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


def make_entities(entity_type) -> list[str]:
    from entities.services import entities_bulk_create

    return entities_bulk_create(
        entity_type=entity_type,
        items=[
            {"data": {"title": f"  Item {i} ", "brand": "Acme", "price": i}}
            for i in range(ENTITIES)
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


def run(base_url: str, key: str) -> dict:
    from entities.models import Entity
    from entities.services import entity_type_create
    from workflows.services import workflow_create

    entity_type = entity_type_create(name=f"pipeline-{time.time_ns()}")
    workflow = workflow_create(name="pipeline", entity_type=entity_type, steps=STEPS)
    ours_ids, floor_ids = make_entities(entity_type), make_entities(entity_type)

    floor_s = baseline(floor_ids)
    started = time.perf_counter()
    response = httpx.post(
        f"{base_url}/api/v1/workflows/{workflow.pk}/run",
        json={"entityIds": ours_ids},
        headers={"Authorization": f"Bearer {key}"},
        timeout=120,
    )
    response.raise_for_status()
    run = wait_for_run(response.json()["runId"])
    ours_s = time.perf_counter() - started

    assert run.status == "completed", run.status
    published = Entity.objects.filter(pk__in=ours_ids, status="published").count()
    floor_published = Entity.objects.filter(pk__in=floor_ids, status="published").count()
    assert published == floor_published == 9000, (published, floor_published)
    return {
        "entities": ENTITIES,
        "run_s": round(ours_s, 2),
        "script_s": round(floor_s, 2),
        "ratio": round(ours_s / floor_s, 2),
        "target_ratio": 2.0,
        "entities_per_s": round(ENTITIES / ours_s),
    }
