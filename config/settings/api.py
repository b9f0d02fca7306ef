"""Django REST framework, API limits and the OpenAPI schema."""

from config.env import env_int, env_str

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "config.api.authentication.ApiKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": [
        "config.api.permissions.ModelPermissions",
        "config.api.query.KnownQueryParameters",
    ],
    "DEFAULT_PAGINATION_CLASS": "config.api.pagination.CursorPagination",
    # JSON only: the admin is the product's UI and /api/docs its API explorer. DRF's
    # browsable renderer (`?format=api`) answered errors as HTML and re-checked a POST's
    # permissions with a GET's query string (a 500 on `?format=api&limit=10`).
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_CONTENT_NEGOTIATION_CLASS": "config.api.negotiation.ContentNegotiation",
    "DEFAULT_PARSER_CLASSES": ["config.api.parsers.JSONParser"],
    "EXCEPTION_HANDLER": "config.api.exceptions.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "config.api.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
    "DEFAULT_THROTTLE_CLASSES": ["config.api.throttling.ApiKeyRateThrottle"],
}

# Requests per API key, e.g. "600/min" (empty: no limit); counted in the shared cache.
API_RATE_LIMIT = env_str("API_RATE_LIMIT", "1200/min")
# The largest API request body (a bulk create of 10,000 entities is a few MB).
API_MAX_BODY_BYTES = env_int("API_MAX_BODY_BYTES", 32 * 1024 * 1024, minimum=1024)
# The largest `data` of one entity, as JSON.
ENTITY_MAX_DATA_BYTES = env_int("ENTITY_MAX_DATA_BYTES", 256 * 1024, minimum=1024)
# The largest page of a list, as JSON: a page is cut short (its `Link` continuing after the
# last item served) where the next item would pass it.
API_MAX_PAGE_BYTES = env_int("API_MAX_PAGE_BYTES", 4 * 1024 * 1024, minimum=1024)

SPECTACULAR_SETTINGS = {
    "TITLE": "Workflows API",
    "DESCRIPTION": (
        "Create, configure, and run multi-step AI workflows on your entities. "
        "Authenticate with `Authorization: Bearer <api key>`."
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # Like every /api/v1 endpoint, the schema takes a key (or an admin session); any key
    # may read it, whatever its model permissions.
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    # /api/docs keeps the key given to Authorize across reloads (in the browser's storage).
    "SWAGGER_UI_SETTINGS": {"deepLinking": True, "persistAuthorization": True},
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    # A serializer's description is its own docstring, never StrictSerializer's.
    "GET_LIB_DOC_EXCLUDES": "config.api.openapi.lib_doc_excludes",
    "ENUM_NAME_OVERRIDES": {
        "EntityStatusEnum": "entities.models.Entity.Status",
        "WorkflowStatusEnum": "workflows.models.Workflow.Status",
        "RunStatusEnum": "jobs.models.RunStatus",
        "ItemStatusEnum": "jobs.models.ItemStatus",
        "LogLevelEnum": "jobs.models.RunLog.Level",
        "ReviewStatusEnum": "jobs.waits.review.models.ReviewStatus",
        "ExperimentStatusEnum": "jobs.experiments.models.EXPERIMENT_STATUSES",  # no `failed`
        "ScorerTypeEnum": ["rules", "judge", "human"],  # an experiment's scorers
        "ResultSideOutcomeEnum": ["completed", "stopped", "failed"],  # an experiment side
        "OutcomeEnum": ["completed", "failed", "stopped", "skipped"],  # a /test step (its name)
    },
    "SCHEMA_PATH_PREFIX": r"/api/v1",
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "workflows.openapi.add_step_type_components",
        "config.api.openapi.add_error_responses",
        "config.api.openapi.add_servers",
        "config.api.openapi.to_openapi_30",  # last: everything above as OpenAPI 3.0.3
    ],
}
