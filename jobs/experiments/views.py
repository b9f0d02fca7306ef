from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from config.api.errors import NotFound
from config.api.idempotency import SCHEMA_PARAMETER, idempotent
from config.api.serializers import validated
from jobs.experiments.models import WORKERS_ONLY, Experiment
from jobs.experiments.selectors import entities_waiting
from jobs.experiments.serializers import (
    ExperimentResultQuerySerializer,
    ExperimentResultSerializer,
    ExperimentSerializer,
    ExperimentStartedSerializer,
    ExperimentStartSerializer,
)
from jobs.experiments.start import experiment_create
from workflows.models import Workflow


class WorkflowExperimentViewSet(viewsets.GenericViewSet):
    # `POST /workflows/:id/experiments`: both versions over a sample, in shadow mode.

    queryset = Workflow.objects.all()
    serializer_class = ExperimentStartSerializer
    # An experiment calls models (it costs money) and reads entities into its results.
    action_permissions = {
        "create": ["workflows.view_workflow", "jobs.add_experiment", "entities.view_entity"]
    }

    @extend_schema(
        summary="Compare two versions of a workflow on a sample of entities",
        description="Both versions run on every entity in shadow mode (model calls are made; "
        "nothing is written or sent, a review counts as approved, no wait is held), and the "
        "scorers judge each entity's two sides. Cancel it through its job.",
        request=ExperimentStartSerializer,
        responses={202: ExperimentStartedSerializer},
        parameters=[SCHEMA_PARAMETER],
    )
    @idempotent
    def create(self, request, workflow_id=None):
        workflow = Workflow.objects.filter(pk=workflow_id).first()
        if workflow is None:
            raise NotFound(f"No workflow {workflow_id!r} exists.")
        experiment = experiment_create(
            workflow=workflow, body=request.data, created_by=request.user
        )
        return Response(
            {"id": experiment.pk, "jobId": experiment.job.pk}, status=status.HTTP_202_ACCEPTED
        )


@extend_schema_view(
    list=extend_schema(summary="List experiments"),
    retrieve=extend_schema(summary="Get an experiment: its arms and scores"),
)
class ExperimentViewSet(viewsets.ReadOnlyModelViewSet):
    serializer_class = ExperimentSerializer
    queryset = (
        Experiment.objects.select_related("baseline", "candidate", "job")
        .defer(*WORKERS_ONLY)
        .annotate(entities_waiting=entities_waiting())
    )
    # Results carry entity data.
    action_permissions = {"results": ["jobs.view_experiment", "entities.view_entity"]}

    @extend_schema(
        summary="List an experiment's results, one per entity",
        parameters=[ExperimentResultQuerySerializer],
        responses=ExperimentResultSerializer(many=True),
    )
    @action(detail=True, methods=["get"])
    def results(self, request, pk=None):
        experiment = self.get_object()
        query = validated(ExperimentResultQuerySerializer, request.query_params)
        results = experiment.results.all()
        for name in ("regressed", "changed"):
            if name in query:
                results = results.filter(**{name: query[name]})
        page = self.paginate_queryset(results)
        return self.get_paginated_response(ExperimentResultSerializer(page, many=True).data)
