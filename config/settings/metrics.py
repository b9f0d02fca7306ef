"""Where the Prometheus metrics of every process are kept, and who may read `/metrics`."""

import ipaddress
import os
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

from config.env import BASE_DIR, env_list, env_str

# prometheus-client's multiprocess mode reads this variable when it is first imported, so it
# is set here, before any module imports it. One folder per machine, shared by its web and
# worker processes (docs/runs.md, Metrics).
PROMETHEUS_MULTIPROC_DIR = env_str("PROMETHEUS_MULTIPROC_DIR", str(BASE_DIR / "var" / "prometheus"))
os.environ["PROMETHEUS_MULTIPROC_DIR"] = PROMETHEUS_MULTIPROC_DIR
Path(PROMETHEUS_MULTIPROC_DIR).mkdir(parents=True, exist_ok=True)

# Clients from these networks read /metrics without a key (e.g. the Prometheus server's).
METRICS_ALLOWED_NETWORKS = []
for _entry in env_list("METRICS_ALLOWED_NETWORKS", []):
    try:
        METRICS_ALLOWED_NETWORKS.append(ipaddress.ip_network(_entry, strict=False))
    except ValueError as _problem:
        raise ImproperlyConfigured(f"METRICS_ALLOWED_NETWORKS: {_problem}.") from _problem
