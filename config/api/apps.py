from django.apps import AppConfig


class ApiConfig(AppConfig):
    """API conventions shared by every endpoint: keys, errors, paging, ids, idempotency."""

    name = "config.api"
    label = "api"
    verbose_name = "API access"

    def ready(self) -> None:
        from config import bulk  # noqa: F401  registers the `any` lookup on every field
        from config.api.auth_backends import connect_signals

        connect_signals()
