from django.apps import AppConfig


class EntitiesConfig(AppConfig):
    """The records workflows run on: entity types (with a JSON Schema) and entities."""

    name = "entities"
