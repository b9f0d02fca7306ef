from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from config.api.errors import NotFound
from config.api.idempotency import SCHEMA_PARAMETER, idempotent
from config.api.serializers import EmptyBodySerializer, validated
from jobs import retries, reverts, selectors, services
from jobs.cancel import run_cancel
from jobs.costs import ids_sample, workflow_estimate
from jobs.engine.dry_run import workflow_test
from jobs.engine.waits import waits_describe
from jobs.experiments.services import experiment_cancel
from jobs.filter_runs import filter_run_estimate, run_start_over_filter
from jobs.inputs import (
    EstimateRequestSerializer,
    JobListQuerySerializer,
    LogQuerySerializer,
    RunItemQuerySerializer,
    RunRetrySerializer,
    RunRevertSerializer,
    RunStartSerializer,
)
from jobs.models import Job, Run
from jobs.serializers import (
    RUN_PREFETCH,
    EstimateSerializer,
    JobSerializer,
    RunItemSerializer,
    RunLogSerializer,
    RunSerializer,
    RunStartedSerializer,
)
from workflows.models import Workflow
from workflows.serializers import WorkflowTestResultSerializer, WorkflowTestSerializer


class WorkflowRunViewSet(viewsets.GenericViewSet):
    # The engine's endpoints on a workflow: `/workflows/:id/run` and `/workflows/:id/test`
    # (its definition is `workflows.views.WorkflowViewSet`). A comment, not a docstring:
    # drf-spectacular would put it in both operations.

    queryset = Workflow.objects.all()
    serializer_class = RunStartSerializer  # what DRF asks for on its own (an error page)
    # Running costs money and changes entities: it takes the right to start runs. A test
    # answers the entity's data as the steps leave it: reading it takes the right to read
    # entities. An estimate writes nothing: a read-only key may ask for one.
    action_permissions = {
        "run": ["workflows.view_workflow", "jobs.add_run"],
        "test": ["workflows.view_workflow", "jobs.add_run", "entities.view_entity"],
        "estimate": ["workflows.view_workflow"],
    }
    reading_actions = {"estimate"}

    @extend_schema(
        summary="Run a workflow on entities",
        request=RunStartSerializer,
        responses={202: RunStartedSerializer},
        parameters=[SCHEMA_PARAMETER],
    )
    @action(detail=True, methods=["post"])
    @idempotent
    def run(self, request, pk=None):
        workflow = self.get_object()
        data = validated(RunStartSerializer, request.data)
        version = services.run_version(workflow, data.get("version"))
        if "filter" in data:  # a run over a filter (its items are made in the background)
            run = run_start_over_filter(
                workflow_id=workflow.pk,
                entity_filter=dict(data["filter"]),
                limit=data.get("limit"),
                callback_url=data.get("callbackUrl", ""),
                callback_secret=data.get("callbackSecret", ""),
                created_by=request.user,
                budget=data.get("budget"),
                version=version,
            )
            return Response({"jobId": run.job.pk, "runId": run.pk}, status=status.HTTP_202_ACCEPTED)
        run = services.run_start(
            workflow_id=workflow.pk,
            entity_ids=data["entityIds"],
            callback_url=data.get("callbackUrl", ""),
            callback_secret=data.get("callbackSecret", ""),
            created_by=request.user,
            budget=data.get("budget"),
            version=version,
        )
        return Response({"jobId": run.job.pk, "runId": run.pk}, status=status.HTTP_202_ACCEPTED)

    @extend_schema(
        summary="Estimate what a run would use and cost (calls no model)",
        request=EstimateRequestSerializer,
        responses={200: EstimateSerializer},
    )
    @action(detail=True, methods=["post"])
    def estimate(self, request, pk=None):
        workflow = self.get_object()
        data = validated(EstimateRequestSerializer, request.data)
        if "filter" in data:
            return Response(
                filter_run_estimate(
                    workflow=workflow, entity_filter=dict(data["filter"]), limit=data.get("limit")
                )
            )
        ids = data["entityIds"]
        services.run_entities_check(workflow, ids)
        return Response(
            workflow_estimate(workflow=workflow, entities=len(ids), sample_ids=ids_sample(ids))
        )

    @extend_schema(
        summary="Test a workflow on one entity (commits and sends nothing)",
        request=WorkflowTestSerializer,
        responses={200: WorkflowTestResultSerializer},
    )
    @action(detail=True, methods=["post"])
    def test(self, request, pk=None):
        workflow = self.get_object()
        data = validated(WorkflowTestSerializer, request.data)
        version = services.run_version(workflow, data.get("version"))
        return Response(
            workflow_test(workflow=workflow, entity_id=data["entityId"], version=version)
        )


@extend_schema_view(
    list=extend_schema(summary="List a workflow's runs"),
    retrieve=extend_schema(summary="Get run status"),
)
class RunViewSet(viewsets.ReadOnlyModelViewSet):
    """Runs of one workflow: `/workflows/:id/runs[/:runId[/items]]`."""

    serializer_class = RunSerializer
    queryset = Run.objects.none()
    action_permissions = {"retry": ["jobs.add_run"], "revert": ["jobs.add_run"]}

    def get_queryset(self):
        return (
            Run.objects.filter(workflow_id=self.kwargs["workflow_id"])
            .select_related("job", "workflow_version")
            .prefetch_related(*RUN_PREFETCH)
        )

    def list(self, request, *args, **kwargs):
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
        waiting_for = waits_describe(
            items=page, entity_data=request.user.has_perm("entities.view_entity")
        )
        serializer = RunItemSerializer(page, many=True, context={"waiting_for": waiting_for})
        return self.get_paginated_response(serializer.data)

    @extend_schema(
        summary="Retry a run's failed entities in a new run",
        description="The retry inherits what is left of the run's budget (its budget minus "
        "what it spent). A run is retried once: a second retry, even concurrent, is a 409 "
        "`already_retried` naming the first; retry that run to go on. A revert is not retried "
        "(409 `revert_not_retried`): revert the run it reverted again.",
        request=RunRetrySerializer,
        responses={202: RunStartedSerializer},
        parameters=[SCHEMA_PARAMETER],
    )
    @action(detail=True, methods=["post"])
    @idempotent
    def retry(self, request, workflow_id=None, pk=None):
        original = self.get_object()
        data = validated(RunRetrySerializer, request.data)
        run = retries.run_retry(
            run_id=original.pk, created_by=request.user, use_latest_version=data["useLatestVersion"]
        )
        return Response({"jobId": run.job.pk, "runId": run.pk}, status=status.HTTP_202_ACCEPTED)

    @extend_schema(
        summary="Revert what a run changed, in a new run",
        description="A run of type `revert`: each entity the run changed gets back the values "
        "the run's fields had before it (status and publishedAt too), as a new version. An "
        "entity changed since (or by anything else between two of the run's commits) is "
        "skipped, its item naming the version, unless `force`. 409 "
        "`run_not_ended` while the run is open. Reverting a revert redoes the run's changes.",
        request=RunRevertSerializer,
        responses={202: RunStartedSerializer},
        parameters=[SCHEMA_PARAMETER],
    )
    @action(detail=True, methods=["post"])
    @idempotent
    def revert(self, request, workflow_id=None, pk=None):
        original = self.get_object()
        data = validated(RunRevertSerializer, request.data)
        run = reverts.run_revert(run_id=original.pk, force=data["force"], created_by=request.user)
        return Response({"jobId": run.job.pk, "runId": run.pk}, status=status.HTTP_202_ACCEPTED)


@extend_schema_view(
    list=extend_schema(summary="List jobs", parameters=[JobListQuerySerializer]),
    retrieve=extend_schema(summary="Get a job"),
)
class JobViewSet(viewsets.ReadOnlyModelViewSet):
    serializer_class = JobSerializer
    queryset = selectors.jobs_shown()
    action_permissions = {"cancel": ["jobs.change_job"]}

    def get_queryset(self):
        if self.action != "list":
            return self.queryset
        query = validated(JobListQuerySerializer, self.request.query_params)
        return selectors.job_list(status=query.get("status"), workflow_id=query.get("workflowId"))

    @extend_schema(
        summary="Read a job's log",
        parameters=[LogQuerySerializer],
        responses=RunLogSerializer(many=True),
    )
    @action(detail=True, methods=["get"])
    def logs(self, request, pk=None):
        job = self.get_object()
        query = validated(LogQuerySerializer, request.query_params)
        logs = selectors.job_log_list(
            job=job, level=query.get("level"), entity_id=query.get("entityId")
        )
        page = self.paginate_queryset(logs)
        return self.get_paginated_response(RunLogSerializer(page, many=True).data)

    @extend_schema(
        summary="Cancel a job",
        description="200 with the job `cancelled` when the cancel ended it at once; 202 with "
        "the job still `pending` or `running` (and `cancelRequestedAt` set) while its entities "
        "are ended in the background. No new step starts either way.",
        request=None,
        responses={200: JobSerializer, 202: JobSerializer},
    )
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        job = self.get_object()
        validated(EmptyBodySerializer, request.data)
        if job.type == Job.Type.EXPERIMENT:
            experiment_cancel(experiment_id=job.experiment_id)
            return Response(JobSerializer(selectors.job_get(job_id=job.pk)).data)
        run = run_cancel(run_id=job.run_id, cancelled_by=request.user.get_username())
        return Response(
            JobSerializer(selectors.job_get(job_id=job.pk)).data,
            status=status.HTTP_200_OK if run.is_ended else status.HTTP_202_ACCEPTED,
        )
