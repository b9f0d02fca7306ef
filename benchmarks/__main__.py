"""Run every benchmark on PostgreSQL and Redis, print a table, write the figures to JSON.

    python -m benchmarks [--only pipeline,waits,...,ai,experiments] [--output FILE]
    python -m benchmarks --only million    # optional, 5-10 minutes: a run of 1,000,000
    python -m benchmarks --only felt,revisions    # as a user meets runs (#29), history (#25)
    python -m benchmarks --only revisions_memory  # optional, long: reverting 1,000,000
    python -m benchmarks --only load      # optional, ~8 minutes: locust (pip install '.[bench]')

Each figure is a ratio against a floor measured in the same run, or a count, so results from
different machines compare.
"""

import argparse
import json
import tempfile
from pathlib import Path

from benchmarks import (
    ai_concurrency,
    api,
    batch_cost,
    dispatch,
    experiments,
    felt,
    harness,
    load,
    memory,
    million,
    pipeline,
    revisions,
    waits,
)
from benchmarks import logs as log_bench

ALL = [
    "pipeline",
    "waits",
    "batch",
    "dispatch",
    "api",
    "logs",
    "memory",
    "ai",
    "experiments",
    "revisions",
    "felt",
]
OPTIONAL = ["million", "revisions_memory", "load"]  # long: only when named in --only


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--only", default=",".join(ALL))
    parser.add_argument("--output", default="benchmarks/results.json")
    args = parser.parse_args()
    chosen = [name for name in args.only.split(",") if name]

    harness.setup_database()
    harness.django_setup()
    from config.api.services import api_key_create, api_user_get_or_create

    key = api_key_create(user=api_user_get_or_create(username="bench"))[1]
    logs = Path(tempfile.mkdtemp(prefix="bench-"))
    results: dict = {}
    web = harness.start_web(logs)
    base_url = f"http://127.0.0.1:{harness.PORT}"
    try:
        if "dispatch" in chosen:  # before any worker exists: only the request is measured
            results["dispatch"] = _report("dispatch", dispatch.run(base_url, key))
        if "api" in chosen:
            results["api"] = _report("api", api.run(base_url, key))
        if "logs" in chosen:
            results["logs"] = _report("logs", log_bench.run(base_url, key))
        needs_worker = {"pipeline", "waits", "batch", "memory", "experiments", "revisions"}
        needs_worker &= set(chosen)
        worker = harness.start_worker(logs) if needs_worker else None
        try:
            if "pipeline" in chosen:
                results["pipeline"] = _report("pipeline", pipeline.run(base_url, key))
            if "waits" in chosen:
                results["waits"] = _report("waits", waits.run(base_url, key))
            if "batch" in chosen:
                results["batch"] = _report("batch", batch_cost.run(base_url, key))
            if "experiments" in chosen:
                results["experiments"] = _report("experiments", experiments.run(base_url, key))
            if "revisions" in chosen:
                results["revisions"] = _report("revisions", revisions.run(base_url, key))
            if "memory" in chosen:
                results["memory"] = _report("memory", memory.run(worker))
        finally:
            if worker:
                worker.stop()
        # Their own workers (and web servers), after the suite's worker.
        if "felt" in chosen:
            results["felt"] = _report("felt", felt.run(base_url, key, logs))
        if "million" in chosen:
            results["million"] = _report("million", million.run(key, logs))
        if "revisions_memory" in chosen:
            results["revisions_memory"] = _report(
                "revisions_memory", revisions.revert_memory(key, logs)
            )
        if "ai" in chosen:
            results["ai"] = _report("ai", ai_concurrency.run(logs))
        if "load" in chosen:
            results["load"] = _report("load", load.run(base_url, key, logs, web))
    finally:
        web.stop()
    Path(args.output).write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nWrote {args.output} (process logs in {logs})")


def _report(name: str, figures: dict) -> dict:
    print(f"\n== {name}")
    for key, value in figures.items():
        print(f"  {key:34} {json.dumps(value)}")
    return figures


if __name__ == "__main__":
    main()
