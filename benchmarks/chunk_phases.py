"""Where a chunk's time goes, without a profiler's overhead: the pipeline benchmark's workflow
over runs of one chunk, executed in this process, each phase timed by the wall clock (the
claim, loading the working copies, the steps, the finish and within it the commit and the
items' end) with the time spent in the database's statements beside them:

    RUN_CHUNK_SIZE=1000 python -m benchmarks.chunk_phases [--entities 1000] [--repeat 25]
        [--parking]

Prints each phase's median and minimum in milliseconds. `--parking` takes the reviewed
workflow of `benchmarks.waits` instead, whose chunk parks its entities at the review, and
times the parking's parts too. `garbage collector` is the time the collector's passes took
during the chunk. A run of one chunk also starts and
ends its run, which a chunk of a larger run does not: `total` less the phases is that."""

import argparse
import collections
import gc
import importlib
import statistics
import time

from benchmarks import harness

PHASES = {  # (module, function): name; each function as the module calls it
    ("jobs.engine.chunk", "items_claim"): "claim",
    ("jobs.engine.chunk", "states_load"): "load",
    ("jobs.engine.chunk", "steps_run"): "steps",
    ("jobs.engine.chunk", "chunk_finish"): "finish",
    ("jobs.engine.committer", "entities_commit"): "finish: commit",
    ("jobs.engine.outcomes", "_items_end"): "finish: items' end",
    ("entities.commits", "entities_write_versioned"): "finish: commit: write",
    ("entities.versioned_write", "_rows_json"): "finish: commit: write: rows json",
    ("entities.commits", "_record_commit"): "finish: commit: outbox",
    ("entities.commits", "data_encode"): "finish: commit: encode",
    ("entities.commits", "data_problems"): "finish: commit: checks",
    ("entities.commits", "data_changes"): "finish: commit: changes",
    ("jobs.engine.outcomes", "run_count"): "finish: run's counters",
}


# Parking's parts, with `--parking` (a method as "Class.method").
PARKING_PHASES = {
    ("jobs.engine.outcomes", "waits_park"): "finish: park",
    ("jobs.waits.review.kind", "ReviewWait.create"): "finish: park: reviews",
    ("jobs.waits.review.kind", "_instructions_shared"): "finish: park: instructions",
    ("jobs.waits.review.kind", "rows_insert"): "finish: park: reviews' insert",
    ("jobs.engine.parking", "rows_update"): "finish: park: items' checkpoints",
    ("jobs.engine.parking", "rows_insert"): "finish: park: waits' insert",
    ("jobs.engine.parking", "checkpoint_of"): "finish: park: checkpoints built",
    ("workflows.steps.review", "changed_fields"): "steps: review's fields",
}


def _timed(spent: dict, module: str, function: str, name: str) -> None:
    owner = importlib.import_module(module)
    *parents, function = function.split(".")
    for parent in parents:
        owner = getattr(owner, parent)
    original = getattr(owner, function)

    def timed(*args, **kwargs):
        started = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            spent[name] += time.perf_counter() - started

    setattr(owner, function, timed)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--entities", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=25)
    parser.add_argument("--parking", action="store_true")
    args = parser.parse_args()
    harness.setup_database()
    harness.django_setup()
    from django.db import connection

    from benchmarks import waits
    from benchmarks.pipeline import STEPS, make_entities
    from config.celery import app
    from entities.services import entity_type_create
    from jobs.engine.chunk import chunk_execute
    from jobs.services import run_start
    from workflows.services import workflow_create

    spent: dict[str, float] = collections.defaultdict(float)
    phases = {**PHASES, **(PARKING_PHASES if args.parking else {})}
    for (module, function), name in phases.items():
        _timed(spent, module, function, name)

    def in_database(execute, sql, params, many, context):
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            spent["database statements"] += time.perf_counter() - started

    entity_type = entity_type_create(name=f"phases-{time.time_ns()}")
    steps = waits.STEPS if args.parking else STEPS
    workflow = workflow_create(name="phases", entity_type=entity_type, steps=steps)

    def one_run() -> str:
        entity_ids = make_entities(entity_type, args.entities)
        return run_start(workflow_id=workflow.pk, entity_ids=entity_ids).pk

    chunk_execute(run_id=one_run(), chunk=0)  # warm-up: templates compiled, connections open
    collecting = [0.0]

    def collector(phase: str, info: dict) -> None:
        if phase == "start":
            collecting[0] = time.perf_counter()
        else:
            spent["garbage collector"] += time.perf_counter() - collecting[0]

    gc.callbacks.append(collector)
    figures = collections.defaultdict(list)
    for _ in range(args.repeat):
        run_id = one_run()
        spent.clear()
        started = time.perf_counter()
        with connection.execute_wrapper(in_database):
            chunk_execute(run_id=run_id, chunk=0)
        spent["total"] = time.perf_counter() - started
        for name, seconds in spent.items():
            figures[name].append(seconds * 1000)
    with app.connection_for_write() as broker:  # no worker runs the queued chunks
        broker.default_channel.queue_purge("celery")
    for name, values in figures.items():
        print(f"{name:22} median {statistics.median(values):6.1f} ms, min {min(values):6.1f}")


if __name__ == "__main__":
    main()
