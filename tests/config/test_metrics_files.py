"""The metrics' files of processes gone before the machine's processes start (a Ctrl-C'd
demo's children, never marked dead) are deleted as they start (`manage.py demo` does):
left, their live gauges showed calls in flight that no process was making."""

import subprocess
import sys

from prometheus_client import CollectorRegistry, multiprocess

from config.metrics import metrics_files_clear

GONE = """
import os
from prometheus_client import Gauge
Gauge("demo_in_flight", "In flight.", multiprocess_mode="livesum").inc(3)
os._exit(0)  # killed: never marked dead
"""


def _in_flight(folder) -> list[float]:
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=str(folder))
    return [
        sample.value
        for metric in registry.collect()
        if metric.name == "demo_in_flight"
        for sample in metric.samples
    ]


def test_a_gone_process_s_gauges_are_cleared_as_the_processes_start(tmp_path):
    env = {"PROMETHEUS_MULTIPROC_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"}
    subprocess.run([sys.executable, "-c", GONE], env=env, check=True, timeout=60)
    (tmp_path / "kept.txt").write_text("not a metrics file")
    assert _in_flight(tmp_path) == [3.0]  # still "in flight", from a process long gone
    assert metrics_files_clear(str(tmp_path)) == 1
    assert _in_flight(tmp_path) == []
    assert (tmp_path / "kept.txt").exists()
