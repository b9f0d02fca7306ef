from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import status, viewsets
from rest_framework.response import Response
from rest_framework.views import APIView

from config.api.idempotency import SCHEMA_PARAMETER, idempotent
from config.api.serializers import validated
from entities.selectors import entity_type_get
from workflows import selectors, services
from workflows.models import Workflow
from workflows.serializers import (
    StepTypeSerializer,
    WorkflowCreateSerializer,
    WorkflowDetailSerializer,
    WorkflowListQuerySerializer,
    WorkflowSerializer,
    WorkflowUpdateSerializer,
)
from workflows.steps import registry


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
        services.workflow_update(workflow_id=workflow.pk, **data)
        return self._answer(workflow.pk)

    def destroy(self, request, pk=None):
        """Workflows are archived, not deleted: their runs stay readable."""
        services.workflow_archive(workflow_id=self.get_object().pk)
        return self._answer(pk)


class StepTypeListView(APIView):
    """The step types, each with its config's JSON Schema and an example."""

    queryset = Workflow.objects.none()  # read permission: workflows.view_workflow

    @extend_schema(summary="List step types", responses=StepTypeSerializer(many=True))
    def get(self, request):
        return Response(StepTypeSerializer(list(registry), many=True).data)
