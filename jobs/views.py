from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import viewsets
from rest_framework.decorators import action

from config.api.errors import NotFound
from config.api.serializers import validated
from jobs.models import Run
from jobs.serializers import RunItemQuerySerializer, RunItemSerializer, RunSerializer


@extend_schema_view(
    list=extend_schema(summary="List a workflow's runs"),
    retrieve=extend_schema(summary="Get run status"),
)
class RunViewSet(viewsets.ReadOnlyModelViewSet):
    """Runs of one workflow: `/workflows/:id/runs[/:runId[/items]]`."""

    serializer_class = RunSerializer
    queryset = Run.objects.none()

    def get_queryset(self):
        return Run.objects.filter(workflow_id=self.kwargs["workflow_id"]).select_related(
            "job", "workflow_version"
        )

    def list(self, request, *args, **kwargs):
        from workflows.models import Workflow

        if not Workflow.objects.filter(pk=kwargs["workflow_id"]).exists():
            raise NotFound(f"No workflow {kwargs['workflow_id']!r} exists.")
        return super().list(request, *args, **kwargs)

    @extend_schema(
        summary="List a run's items, one per entity",
        parameters=[RunItemQuerySerializer],
        responses=RunItemSerializer(many=True),
    )
    @action(detail=True, methods=["get"])
    def items(self, request, workflow_id=None, pk=None):
        run = self.get_object()
        query = validated(RunItemQuerySerializer, request.query_params)
        items = run.items.all()
        if query.get("status"):
            items = items.filter(status=query["status"])
        page = self.paginate_queryset(items)
        return self.get_paginated_response(RunItemSerializer(page, many=True).data)
