"""`/metrics`: the Prometheus text format (or OpenMetrics, as the scraper asks), for a key
with `jobs.view_metrics` or a client in an allowed network.

The counters and histograms are every process's (config.metrics, multiprocess mode); runs and
experiments by status and the entities waiting by kind of wait are read from the database at
scrape time, as the one place those facts are kept. The format is chosen by prometheus-client's
own negotiation (`choose_encoder`): the `Accept` headers scrapers send (`text/plain`,
`text/plain;version=0.0.4`, OpenMetrics, `*/*`) are all answered, never a 406.
"""

import ipaddress

from django.conf import settings
from django.db.models import Count
from django.http import HttpResponse
from drf_spectacular.utils import extend_schema
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import choose_encoder
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.permissions import BasePermission
from rest_framework.views import APIView

from config.api.authentication import ApiKeyAuthentication
from config.api.models import ApiKey
from config.metrics import registry_collect
from jobs.experiments.models import EXPERIMENT_STATUSES
from jobs.models import Experiment, Run, RunStatus, Wait, WaitStatus
from jobs.waits.base import kinds


class ByStatus:
    """A collector of the rows of a model in each status, from the database."""

    def __init__(self, model, statuses: list[str], name: str, documentation: str):
        self.model, self.statuses = model, statuses
        self.name, self.documentation = name, documentation

    def collect(self):
        rows = self.model.objects.values_list("status").annotate(n=Count("pk")).order_by()
        counts = dict(rows)
        family = GaugeMetricFamily(self.name, self.documentation, labels=["status"])
        for status in self.statuses:
            family.add_metric([status], counts.get(status, 0))
        yield family


def runs_by_status() -> ByStatus:
    return ByStatus(Run, RunStatus.values, "workflows_runs", "Runs, by status.")


def experiments_by_status() -> ByStatus:
    statuses = [value for value, _ in EXPERIMENT_STATUSES]  # no `failed`: none ends so
    return ByStatus(Experiment, statuses, "workflows_experiments", "Experiments, by status.")


class WaitsByKind:
    """A collector of the entities waiting now, by kind of wait (reviews not decided, delays
    not over, events not come, provider batches not answered), from the database: what an
    operator alerts on when a kind piles up. Only open runs hold waiting waits, so they are
    read through the open runs' index of their waits (`wait_run_status`), not the whole
    table of waits kept for RUNS_KEEP_DAYS."""

    def collect(self):
        open_runs = Run.objects.filter(status__in=RunStatus.open()).values("pk")
        rows = (
            Wait.objects.filter(run_id__in=open_runs, status=WaitStatus.WAITING)
            .values_list("kind")
            .annotate(n=Count("pk"))
            .order_by()
        )
        counts = dict(rows)
        family = GaugeMetricFamily(
            "workflows_waits", "Entities waiting now, by kind of wait.", labels=["kind"]
        )
        for kind in kinds:
            family.add_metric([kind.name], counts.get(kind.name, 0))
        yield family


def client_allowed(address: str) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in settings.METRICS_ALLOWED_NETWORKS)


METRICS_PERMISSION = "jobs.view_metrics"


class MetricsReader(BasePermission):
    """A key whose user has `jobs.view_metrics` (read-only keys do: it is a `view_`
    permission), or a client in METRICS_ALLOWED_NETWORKS."""

    def has_permission(self, request, view):
        if client_allowed(request.META.get("REMOTE_ADDR", "")):
            return True
        return (
            isinstance(request.auth, ApiKey)
            and not request.auth.events_only
            and request.user.has_perm(METRICS_PERMISSION)
        )


class AnswerInJson(BaseContentNegotiation):
    """Errors (401, 403) in JSON whatever the client accepts; the metrics themselves are in
    the format prometheus-client chooses for the `Accept` header."""

    def select_parser(self, request, parsers):
        return parsers[0] if parsers else None

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


class MetricsView(APIView):
    authentication_classes = [ApiKeyAuthentication]
    permission_classes = [MetricsReader]
    content_negotiation_class = AnswerInJson

    @extend_schema(exclude=True)
    def get(self, request):
        encoder, content_type = choose_encoder(request.META.get("HTTP_ACCEPT", ""))
        body = encoder(registry_collect(runs_by_status(), experiments_by_status(), WaitsByKind()))
        return HttpResponse(body, content_type=content_type)
