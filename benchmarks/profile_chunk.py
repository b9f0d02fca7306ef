"""cProfile one chunk of the pipeline benchmark's workflow, executed in this process:

    RUN_CHUNK_SIZE=1000 python -m benchmarks.profile_chunk [--entities 1000] [--top 40]

A warm-up chunk first (templates compiled, connections open, as in a worker's life), then
the profiled one; prints the top functions by own and cumulative time."""

import argparse
import cProfile
import pstats
import time

from benchmarks import harness


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--entities", type=int, default=1000)
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    harness.setup_database()
    harness.django_setup()
    from benchmarks.pipeline import STEPS, make_entities
    from config.celery import app
    from entities.services import entity_type_create
    from jobs.engine.chunk import chunk_execute
    from jobs.services import run_start
    from workflows.services import workflow_create

    entity_type = entity_type_create(name=f"profile-{time.time_ns()}")
    workflow = workflow_create(name="profile", entity_type=entity_type, steps=STEPS)

    def one_run():
        run = run_start(
            workflow_id=workflow.pk, entity_ids=make_entities(entity_type, args.entities)
        )
        return run.pk

    chunk_execute(run_id=one_run(), chunk=0)  # warm-up
    profile = cProfile.Profile()
    timings = []
    for _ in range(args.repeat):
        run_id = one_run()
        started = time.perf_counter()
        profile.enable()
        chunk_execute(run_id=run_id, chunk=0)
        profile.disable()
        timings.append(time.perf_counter() - started)
    with app.connection_for_write() as connection:  # no worker runs the queued chunks
        connection.default_channel.queue_purge("celery")
    print("chunk seconds:", [round(t, 3) for t in timings])
    stats = pstats.Stats(profile).strip_dirs()
    stats.sort_stats("tottime").print_stats(args.top)
    stats.sort_stats("cumulative").print_stats(args.top)


if __name__ == "__main__":
    main()
