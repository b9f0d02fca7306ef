"""Demo data for the embedded defaults: a user, an API key, products and a workflow."""

import secrets
from datetime import timedelta

from django.contrib.auth import get_user_model
from django.db import transaction

from config.api.models import ApiKey
from config.api.services import api_key_create, api_key_revoke
from entities.models import EntityType
from entities.services import entities_bulk_create, entity_type_create
from jobs.engine.recovery import runs_resume_stalled
from jobs.experiments.services import experiments_resume_stalled
from workflows.models import Workflow
from workflows.services import workflow_create

DEMO_USERNAME = "demo"
PRODUCT_SCHEMA = {
    "type": "object",
    "properties": {
        "title": {"type": "string", "minLength": 1, "maxLength": 200},
        "brand": {"type": "string"},
        "price": {"type": "number", "minimum": 0},
        "description": {"type": "string"},
    },
    "required": ["title", "price"],
}
PRODUCTS = [
    ("Trail Running Shoe", "Northpeak", 129.0),
    ("Ceramic Pour-Over Set", "Kiln & Co", 48.5),
    ("Wool Beanie", "Fjellstrom", 25.0),
    ("Cast Iron Skillet 26 cm", "Hearthworks", 59.0),
    ("Noise-Cancelling Headphones", "Quietly", 249.0),
    ("Linen Shirt", "Coastline", 79.0),
    ("Bamboo Cutting Board", "Greenleaf", 32.0),
    ("Stainless Water Bottle 750 ml", "Hydra", 29.9),
    ("LED Desk Lamp", "Lumo", 64.0),
    ("Yoga Mat 5 mm", "Asana Supply", 45.0),
    ("Espresso Grinder", "Kiln & Co", 189.0),
    ("Rain Jacket", "Northpeak", 159.0),
]


DEMO_WORKFLOW = "Describe and publish products"
DEMO_STEPS = [
    {
        "id": "describe",
        "type": "ai_generate",
        "config": {
            "prompt": "Write a two-sentence description of {{ entity.title }} "
            "by {{ entity.brand }} (price {{ entity.price }}).",
            "outputField": "description",
        },
    },
    {
        "id": "tidy",
        "type": "transform",
        "config": {
            "operations": [
                {"op": "trim", "field": "description"},
                {"op": "set", "field": "slug", "value": "{{ entity.brand }} {{ entity.title }}"},
                {"op": "slugify", "field": "slug"},
            ]
        },
    },
    {
        "id": "affordable",
        "type": "condition",
        "config": {"if": {"field": "price", "operator": "lt", "value": 200}},
    },
    {
        "id": "check",
        "type": "validate",
        "config": {"rules": [{"field": "description", "required": True, "minLength": 20}]},
    },
    {"id": "publish", "type": "publish", "config": {}},
    {
        "id": "tell",
        "type": "notify",
        "config": {
            "channel": "email",
            "to": "merchandising@example.com",
            "subject": "Published: {{ entity.title }}",
            "message": "{{ entity.title }} is live at /products/{{ entity.slug }}.",
        },
    },
]


# The same description at half the price: the chunk's requests go to the provider as one
# batch job; the entities wait (the run page lists the batch) until celery beat finds it
# ended (the local stand-in answers a few seconds after submission).
DEMO_KEY_NAME = "demo"
DEMO_BATCH_WORKFLOW = "Describe products in batch (half price)"
DEMO_BATCH_STEPS = [
    {**DEMO_STEPS[0], "config": {**DEMO_STEPS[0]["config"], "mode": "batch"}},
    {"id": "publish", "type": "publish", "config": {}},
]


@transaction.atomic
def demo_seed() -> dict:
    """Create (or refresh) the demo user and data; returns the credentials to print."""
    user, _ = get_user_model().objects.get_or_create(
        username=DEMO_USERNAME, defaults={"is_staff": True, "is_superuser": True}
    )
    password = secrets.token_urlsafe(9)
    user.set_password(password)
    user.is_staff = user.is_superuser = True
    user.save()
    # The key printed is the demo's key, as the password printed is its password: the ones
    # printed by earlier starts stop working (they were not kept, one more each start).
    for earlier in ApiKey.objects.active().filter(user=user, name=DEMO_KEY_NAME):
        api_key_revoke(api_key=earlier)
    _, raw_key = api_key_create(user=user, name=DEMO_KEY_NAME)

    entity_type = EntityType.objects.filter(name="product").first()
    if entity_type is None:
        entity_type = entity_type_create(
            name="product", description="Products in the demo shop", schema=PRODUCT_SCHEMA
        )
        entities_bulk_create(
            entity_type=entity_type,
            items=[
                {"data": {"title": title, "brand": brand, "price": price}}
                for title, brand, price in PRODUCTS
            ],
        )
    workflow = Workflow.objects.filter(name=DEMO_WORKFLOW, entity_type=entity_type).first()
    if workflow is None:
        workflow = workflow_create(
            name=DEMO_WORKFLOW,
            description="Write a description with the AI provider, check it, publish, notify.",
            entity_type=entity_type,
            steps=DEMO_STEPS,
            created_by=user,
        )
    batch_workflow = Workflow.objects.filter(
        name=DEMO_BATCH_WORKFLOW, entity_type=entity_type
    ).first() or workflow_create(
        name=DEMO_BATCH_WORKFLOW,
        description="Describe with the AI provider's batch mode (half the price), then publish.",
        entity_type=entity_type,
        steps=DEMO_BATCH_STEPS,
        created_by=user,
    )
    return {
        "workflow": workflow,
        "batch_workflow": batch_workflow,
        "username": user.username,
        "password": password,
        "api_key": raw_key,
        "entity_type": entity_type,
    }


def held_work_requeue() -> int:
    """Queue again, at once, the unfinished chunks of every open run and experiment: for
    `manage.py demo` on its filesystem broker, before it starts its processes. That broker
    hands a message out by deleting its file, so the chunks the demo's last processes held
    (stopped with Ctrl-C mid-chunk, or killed) are gone with them, where Redis gives them
    back; the stalled-run check would queue them only `RUN_STALL_AFTER_S` (10 minutes) later,
    the run showing no progress meanwhile. No process of the demo runs now, so every
    unfinished chunk is one nobody works on; one still queued runs twice, which a chunk's
    leases make harmless. Returns the number of chunks queued."""
    now = timedelta(microseconds=1)  # everything open, however recent its progress
    why = "Queued again as the demo started (its processes before were stopped)"
    return runs_resume_stalled(stalled_after=now, why=why) + experiments_resume_stalled(
        stalled_after=now
    )
