import logging

from django.conf import settings
from django.db import connection
from drf_spectacular.settings import spectacular_settings
from drf_spectacular.utils import extend_schema, inline_serializer
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from config.celery import app as celery_app

logger = logging.getLogger(__name__)


def _failed(what: str, exc: Exception) -> str:
    """A failure as /healthz, which anyone may ask, answers it: its kind. The message names
    hosts, ports, database users and their errors: it goes to the log."""
    logger.warning("Health check: the %s is down: %s: %s", what, exc.__class__.__name__, exc)
    return f"error: {exc.__class__.__name__}"


def _database_state() -> str:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return "ok"
    except Exception as exc:  # any failure is the answer we report
        return _failed("database", exc)


def _broker_state() -> str:
    try:
        with celery_app.connection_for_write(settings.CELERY_BROKER_URL) as conn:
            conn.ensure_connection(max_retries=1, interval_start=0, timeout=2)
        return "ok"
    except Exception as exc:  # any failure is the answer we report
        return _failed("broker", exc)


class HealthView(APIView):
    """Liveness for load balancers: 200 when the database and the broker answer, else 503."""

    authentication_classes = []
    permission_classes = [AllowAny]

    @extend_schema(
        exclude=True,
        responses=inline_serializer(
            "Health",
            {
                "status": serializers.CharField(),
                "database": serializers.CharField(),
                "broker": serializers.CharField(),
            },
        ),
    )
    def get(self, request):
        database, broker = _database_state(), _broker_state()
        healthy = database == "ok" and broker == "ok"
        return Response(
            {"status": "ok" if healthy else "unavailable", "database": database, "broker": broker},
            status=200 if healthy else 503,
        )


class SchemaView(SpectacularAPIView):
    """The OpenAPI document (YAML, or JSON with `?format=json`); its errors are JSON like
    every other endpoint's."""

    def handle_exception(self, exc):
        # finalize_response renders with the request's negotiated renderer: make it JSON.
        self.request.accepted_renderer = JSONRenderer()
        self.request.accepted_media_type = "application/json"
        return super().handle_exception(exc)


def key_only_document() -> dict:
    """What /api/docs shows before it is authorized: no path and no component but the key
    scheme, so Swagger UI offers *Authorize*."""
    title = spectacular_settings.TITLE
    return {
        "openapi": "3.0.3",
        "info": {
            "title": title,
            "version": spectacular_settings.VERSION,
            "description": "Choose **Authorize** and give an API key (or log in to the admin) "
            "to load the API's operations.",
        },
        "paths": {},
        "components": {
            "securitySchemes": {
                "apiKey": {"type": "http", "scheme": "bearer", "description": "An API key."}
            }
        },
        "security": [{"apiKey": []}],
    }


class DocsSchemaView(SchemaView):
    """The schema as /api/docs loads it: the whole document to a key or an admin session, as
    /api/v1/schema; to anyone else only how to authorize (`key_only_document`). A wrong key is
    a 401, after which the page loads the key-only document again."""

    permission_classes = [AllowAny]

    @extend_schema(exclude=True)
    def get(self, request, *args, **kwargs):
        if request.user.is_authenticated:
            return super().get(request, *args, **kwargs)
        return Response(key_only_document())


class DocsView(SpectacularSwaggerSplitView):
    """/api/docs, Swagger UI: a public page whose script is a file of its own (`?script`), so the
    page keeps the Content-Security-Policy. It loads DocsSchemaView; once the visitor
    authorizes with a key, drf-spectacular's script downloads the schema again with it (for
    the schemes `_get_schema_auth_names` names), and the key is kept across reloads
    (`persistAuthorization`)."""

    permission_classes = [AllowAny]
    url_name = "api-docs-schema"

    def _get_schema_auth_names(self):
        return ["apiKey"]
