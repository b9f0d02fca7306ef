from django.contrib import admin
from django.urls import include, path
from rest_framework.routers import SimpleRouter

from config.api.views import DocsSchemaView, DocsView, HealthView, SchemaView
from entities.views import EntityTypeViewSet, EntityViewSet
from jobs.experiments.views import ExperimentViewSet, WorkflowExperimentViewSet
from jobs.metrics import MetricsView
from jobs.views import JobViewSet, RunViewSet, WorkflowRunViewSet
from workflows.views import StepTypeListView, WorkflowViewSet

router = SimpleRouter(trailing_slash=False)
router.register("entity-types", EntityTypeViewSet, basename="entity-type")
router.register("entities", EntityViewSet, basename="entity")
router.register("workflows", WorkflowViewSet, basename="workflow")
router.register("workflows", WorkflowRunViewSet, basename="workflow-engine")
router.register("jobs", JobViewSet, basename="job")
router.register("experiments", ExperimentViewSet, basename="experiment")

api_v1 = [
    path("schema", SchemaView.as_view(), name="schema"),
    path("step-types", StepTypeListView.as_view(), name="step-types"),
    path("workflows/<str:workflow_id>/runs", RunViewSet.as_view({"get": "list"}), name="run-list"),
    path(
        "workflows/<str:workflow_id>/runs/<str:pk>",
        RunViewSet.as_view({"get": "retrieve"}),
        name="run-detail",
    ),
    path(
        "workflows/<str:workflow_id>/runs/<str:pk>/items",
        RunViewSet.as_view({"get": "items"}),
        name="run-items",
    ),
    path(
        "workflows/<str:workflow_id>/runs/<str:pk>/retry",
        RunViewSet.as_view({"post": "retry"}),
        name="run-retry",
    ),
    path(
        "workflows/<str:workflow_id>/runs/<str:pk>/revert",
        RunViewSet.as_view({"post": "revert"}),
        name="run-revert",
    ),
    path(
        "workflows/<str:workflow_id>/experiments",
        WorkflowExperimentViewSet.as_view({"post": "create"}),
        name="workflow-experiments",
    ),
    *router.urls,
    path("", include("jobs.waits.urls")),  # every kind of wait's API
]

urlpatterns = [
    path("api/v1/", include(api_v1)),
    # The page is public; the schema it loads takes an admin session or a key (given with
    # the page's Authorize button).
    path("api/docs", DocsView.as_view(), name="api-docs"),
    path("api/docs/schema", DocsSchemaView.as_view(), name="api-docs-schema"),
    path("healthz", HealthView.as_view(), name="healthz"),
    path("metrics", MetricsView.as_view(), name="metrics"),
    path("admin/", admin.site.urls),
]

handler404 = "config.error_pages.not_found"
handler500 = "config.error_pages.server_error"
