"""Test data built through the services, so tests exercise the code users hit."""

from itertools import count

from config.api.services import api_key_create, api_user_get_or_create
from entities import services as entity_services
from entities.models import EntityType

_seq = count(1)

PRODUCT_SCHEMA = {
    "type": "object",
    "properties": {
        "title": {"type": "string", "minLength": 1},
        "price": {"type": "number", "minimum": 0},
        "seo": {"type": "object", "properties": {"title": {"type": "string"}}},
    },
    "required": ["title"],
}


def make_key(username: str | None = None, *, read_only: bool = False) -> str:
    user = api_user_get_or_create(username=username or f"user{next(_seq)}", read_only=read_only)
    return api_key_create(user=user, read_only=read_only)[1]


def make_entity_type(*, name: str | None = None, schema=PRODUCT_SCHEMA) -> EntityType:
    return entity_services.entity_type_create(
        name=name or f"product-{next(_seq)}", description="Things we sell", schema=schema
    )


def make_entities(entity_type: EntityType, n: int, **extra) -> list[str]:
    items = [{"data": {"title": f"Item {i}", "price": i, **extra}} for i in range(n)]
    return entity_services.entities_bulk_create(entity_type=entity_type, items=items)
