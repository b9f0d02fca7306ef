from django.apps import AppConfig
from django.db.backends.signals import connection_created


class EntitiesConfig(AppConfig):
    """The records workflows run on: entity types (with a JSON Schema) and entities."""

    name = "entities"

    def ready(self) -> None:
        # SQLite connections get the function the data's text search reads through.
        from entities.data_search import sqlite_functions_add

        connection_created.connect(sqlite_functions_add, dispatch_uid="entities.data_search")
