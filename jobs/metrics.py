"""`/metrics`: the Prometheus text format, for a key or an allowed network.

The counters and histograms are every process's (config.metrics, multiprocess mode); runs by
status are read from the database at scrape time, as the one place that fact is kept.
"""

import ipaddress

from django.conf import settings
from django.db.models import Count
from django.http import HttpResponse
from drf_spectacular.utils import extend_schema
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.core import GaugeMetricFamily
from rest_framework.permissions import BasePermission
from rest_framework.views import APIView

from config.api.authentication import ApiKeyAuthentication
from config.api.models import ApiKey
from config.metrics import registry_collect
from jobs.models import Run, RunStatus


class RunsByStatus:
    """A collector of the runs in each status, from the database."""

    def collect(self):
        counts = dict(Run.objects.values_list("status").annotate(n=Count("id")).order_by())
        family = GaugeMetricFamily("workflows_runs", "Runs, by status.", labels=["status"])
        for status in RunStatus.values:
            family.add_metric([status], counts.get(status, 0))
        yield family


def client_allowed(address: str) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in settings.METRICS_ALLOWED_NETWORKS)


class KeyOrAllowedNetwork(BasePermission):
    """An API key (any, read-only included), or a client in METRICS_ALLOWED_NETWORKS."""

    def has_permission(self, request, view):
        return isinstance(request.auth, ApiKey) or client_allowed(
            request.META.get("REMOTE_ADDR", "")
        )


class MetricsView(APIView):
    authentication_classes = [ApiKeyAuthentication]
    permission_classes = [KeyOrAllowedNetwork]

    @extend_schema(exclude=True)
    def get(self, request):
        body = generate_latest(registry_collect(RunsByStatus()))
        return HttpResponse(body, content_type=CONTENT_TYPE_LATEST)
