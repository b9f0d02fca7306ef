from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response
from rest_framework.views import APIView

from config.api.idempotency import SCHEMA_PARAMETER, idempotent
from config.api.serializers import validated
from entities.selectors import entity_type_get
from workflows import selectors, services
from workflows.diff import steps_diff
from workflows.models import Workflow
from workflows.serializers import (
    StepTypeSerializer,
    VersionDiffQuerySerializer,
    VersionDiffSerializer,
    VersionPublishSerializer,
    WorkflowCreateSerializer,
    WorkflowDetailSerializer,
    WorkflowListQuerySerializer,
    WorkflowSerializer,
    WorkflowUpdateSerializer,
    WorkflowVersionSerializer,
)
from workflows.steps import registry

VERSION_PARAMETER = OpenApiParameter(
    "version", int, OpenApiParameter.PATH, description="A version number (1, 2, ...)."
)


@extend_schema_view(
    list=extend_schema(summary="List workflows", parameters=[WorkflowListQuerySerializer]),
    retrieve=extend_schema(summary="Get a workflow, with its steps"),
    create=extend_schema(
        summary="Create a workflow",
        request=WorkflowCreateSerializer,
        responses={201: WorkflowDetailSerializer},
        parameters=[SCHEMA_PARAMETER],
    ),
    partial_update=extend_schema(summary="Update a workflow", request=WorkflowUpdateSerializer),
    destroy=extend_schema(summary="Archive a workflow", responses={200: WorkflowDetailSerializer}),
)
class WorkflowViewSet(viewsets.ModelViewSet):
    # Workflow definitions. Running one (`/run`, `/test`, `/runs`) is the engine's: jobs.
    # (A comment, not a docstring: drf-spectacular would put it in every operation.)
    queryset = Workflow.objects.all()
    serializer_class = WorkflowDetailSerializer
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]
    # Publishing changes what every run, trigger and schedule executes: an edit of the workflow.
    action_permissions = {"publish": ["workflows.view_workflow", "workflows.change_workflow"]}

    def get_serializer_class(self):
        return WorkflowSerializer if self.action == "list" else WorkflowDetailSerializer

    def get_queryset(self):
        if self.action != "list":
            return selectors.workflow_detail_queryset()
        query = validated(WorkflowListQuerySerializer, self.request.query_params)
        return selectors.workflow_list(
            status=query.get("status"), entity_type_id=query.get("entityTypeId")
        )

    def _answer(self, workflow_id: str, status_code: int = status.HTTP_200_OK) -> Response:
        workflow = selectors.workflow_get(workflow_id=workflow_id)
        return Response(WorkflowDetailSerializer(workflow).data, status=status_code)

    @idempotent
    def create(self, request):
        data = validated(WorkflowCreateSerializer, request.data)
        workflow = services.workflow_create(
            name=data["name"],
            description=data.get("description", ""),
            entity_type=entity_type_get(entity_type_id=data["entityTypeId"], field="entityTypeId"),
            status=data["status"],
            steps=data["steps"],
            triggers=data.get("triggers"),
            created_by=request.user,
        )
        return self._answer(workflow.pk, status.HTTP_201_CREATED)

    def partial_update(self, request, pk=None):
        workflow = self.get_object()
        data = validated(WorkflowUpdateSerializer, request.data)
        services.workflow_update(workflow_id=workflow.pk, updated_by=request.user, **data)
        return self._answer(workflow.pk)

    def destroy(self, request, pk=None):
        """Workflows are archived, not deleted: their runs stay readable."""
        services.workflow_archive(workflow_id=self.get_object().pk)
        return self._answer(pk)

    @extend_schema(
        summary="List a workflow's versions, newest first",
        responses=WorkflowVersionSerializer(many=True),
    )
    @action(detail=True, methods=["get"])
    def versions(self, request, pk=None):
        workflow = self.get_object()
        page = self.paginate_queryset(selectors.version_list(workflow=workflow))
        return self.get_paginated_response(WorkflowVersionSerializer(page, many=True).data)

    # A version's URL takes any segment and the view checks it is a number, so that a key
    # without permissions gets its 403 before a 404.
    @extend_schema(
        summary="Get a version of a workflow",
        parameters=[VERSION_PARAMETER],
        responses=WorkflowVersionSerializer,
    )
    @action(detail=True, methods=["get"], url_path=r"versions/(?P<version>[^/.]+)")
    def version(self, request, pk=None, version=None):
        workflow = self.get_object()
        number = selectors.version_number(version)
        found = selectors.version_get(workflow=workflow, number=number)
        return Response(WorkflowVersionSerializer(found).data)

    @extend_schema(
        summary="What changed between two versions of a workflow",
        description="The changes that turn version `against` (by default the one before) into "
        "this one, step by step (matched by step id); config values are compared by path "
        "(`config.prompt`).",
        parameters=[VERSION_PARAMETER, VersionDiffQuerySerializer],
        responses=VersionDiffSerializer,
    )
    @action(detail=True, methods=["get"], url_path=r"versions/(?P<version>[^/.]+)/diff")
    def diff(self, request, pk=None, version=None):
        workflow = self.get_object()
        number = selectors.version_number(version)
        query = validated(VersionDiffQuerySerializer, request.query_params)
        after = selectors.version_get(workflow=workflow, number=number)
        against = query.get("against", number - 1)
        before = selectors.version_get(workflow=workflow, number=against) if against else None
        changes = steps_diff(before.steps if before else [], after.steps)
        return Response({"changes": [change.as_json() for change in changes]})

    @extend_schema(
        summary="Make a version the live one (publish a draft, or roll back)",
        description="Runs, triggers and schedules execute the live version from now on; runs "
        "already started keep theirs. Publishing the live version changes nothing. The body is "
        "optional: with `expectedLiveVersion`, only if that version is still live (409 "
        "`live_version_moved` otherwise).",
        parameters=[VERSION_PARAMETER],
        request=VersionPublishSerializer,
        responses=WorkflowDetailSerializer,
    )
    @action(detail=True, methods=["post"], url_path=r"versions/(?P<version>[^/.]+)/publish")
    def publish(self, request, pk=None, version=None):
        workflow = self.get_object()
        number = selectors.version_number(version)
        data = validated(VersionPublishSerializer, request.data)
        services.version_publish(
            workflow_id=workflow.pk, number=number, expected_live=data.get("expectedLiveVersion")
        )
        return self._answer(workflow.pk)


class StepTypeListView(APIView):
    """The step types, each with its config's JSON Schema and an example."""

    queryset = Workflow.objects.none()  # read permission: workflows.view_workflow

    @extend_schema(summary="List step types", responses=StepTypeSerializer(many=True))
    def get(self, request):
        return Response(StepTypeSerializer(list(registry), many=True).data)
