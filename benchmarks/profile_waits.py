"""Where a reviewed run's time goes, in this process: parking its chunks, deciding its
reviews 1,000 at a time (the service and the API's view), resuming it, and its resumed
chunks, each timed (wall and CPU of this process) with its statements counted, beside the
chunks of the same run without the review:

    python -m benchmarks.profile_waits [--entities 2000] [--profile park|decide|resume|chunk]

`--profile` runs pyinstrument over that phase of a second run and prints it."""

import argparse
import gc
import time
from collections import Counter
from contextlib import contextmanager

from benchmarks import harness


class Phases:
    def __init__(self):
        self.rows: list[tuple] = []
        self.sql: dict[str, list[str]] = {}

    @contextmanager
    def phase(self, name: str):
        from django.db import connection

        statements: Counter = Counter()
        self.sql[name] = []

        def count(execute, sql, params, many, context):
            statements[sql.split(None, 1)[0].upper()] += 1
            started = time.perf_counter()
            try:
                return execute(sql, params, many, context)
            finally:
                self.sql[name].append((sql[:150], time.perf_counter() - started))

        wall, cpu = time.perf_counter(), time.thread_time()
        with connection.execute_wrapper(count):
            yield
        self.rows.append(
            (name, time.perf_counter() - wall, time.thread_time() - cpu, dict(statements))
        )

    def print_sql(self, name: str) -> None:
        counts, seconds = Counter(), Counter()
        for sql, took in self.sql[name]:
            counts[sql] += 1
            seconds[sql] += took
        for sql, took in seconds.most_common():
            print(f"{counts[sql]:4} {took * 1000:7.1f} ms {sql}")

    def print(self) -> None:
        for name, wall, cpu, statements in self.rows:
            total = sum(statements.values())
            print(
                f"{name:28} {wall * 1000:8.1f} ms wall {cpu * 1000:8.1f} ms cpu "
                f"{total:5} statements {statements}"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--entities", type=int, default=2000)
    parser.add_argument("--profile", default="")
    parser.add_argument("--sql", default="", help="print the statements of this phase")
    args = parser.parse_args()
    harness.setup_database()
    harness.django_setup()
    from django.contrib.auth import get_user_model
    from rest_framework.test import APIClient

    from benchmarks.pipeline import make_entities
    from benchmarks.waits import DECIDE_BATCH, STEPS
    from config.celery import app
    from entities.services import entity_type_create
    from jobs.engine.chunk import chunk_execute
    from jobs.engine.waits import run_waits_resume
    from jobs.models import Review, RunItem
    from jobs.services import run_start
    from workflows.services import workflow_create

    user = get_user_model().objects.create_superuser("profiler", "p@example.com", "x")
    client = APIClient()
    client.force_authenticate(user)
    entity_type = entity_type_create(name=f"profile-waits-{time.time_ns()}")
    reviewed = workflow_create(name="reviewed", entity_type=entity_type, steps=STEPS)
    straight = workflow_create(
        name="straight", entity_type=entity_type, steps=[s for s in STEPS if s["type"] != "review"]
    )

    def chunks(run_id: str) -> list[int]:
        return sorted(
            set(
                RunItem.objects.filter(run_id=run_id, status="pending").values_list(
                    "chunk", flat=True
                )
            )
        )

    def one(phases: Phases, profiled: str = "") -> None:
        from pyinstrument import Profiler

        profiler = Profiler() if profiled else None

        @contextmanager
        def maybe(name):
            if profiler and name == profiled:
                profiler.start()
            with phases.phase(name):
                yield
            if profiler and name == profiled:
                profiler.stop()

        floor = run_start(
            workflow_id=straight.pk, entity_ids=make_entities(entity_type, args.entities)
        )
        with maybe("chunk"):
            for chunk in chunks(floor.pk):
                chunk_execute(run_id=floor.pk, chunk=chunk)
        run = run_start(
            workflow_id=reviewed.pk, entity_ids=make_entities(entity_type, args.entities)
        )
        with maybe("park"):
            for chunk in chunks(run.pk):
                chunk_execute(run_id=run.pk, chunk=chunk)
        ids = list(Review.objects.filter(run_id=run.pk).values_list("pk", flat=True))
        with maybe("decide"):
            for first in range(0, len(ids), DECIDE_BATCH):
                response = client.post(
                    "/api/v1/reviews/decide",
                    {"ids": ids[first : first + DECIDE_BATCH], "decision": "approve"},
                    format="json",
                )
                assert response.status_code == 200, response.content[:300]
        with maybe("resume"):
            run_waits_resume(run_id=run.pk)
        with maybe("resumed chunks"):
            for chunk in chunks(run.pk):
                chunk_execute(run_id=run.pk, chunk=chunk)
        run.refresh_from_db()
        assert run.status == "completed" and run.completed == args.entities, (
            run.status,
            run.completed,
        )
        if profiler:
            print(profiler.output_text(unicode=True, color=False, show_all=False))

    one(Phases())  # warm-up
    gc.freeze()  # as a worker process does at its start (config.celery): no full pass walks it
    phases = Phases()
    one(phases, args.profile)
    with app.connection_for_write() as connection:  # no worker runs the queued chunks
        connection.default_channel.queue_purge("celery")
    phases.print()
    if args.sql:
        phases.print_sql(args.sql)


if __name__ == "__main__":
    main()
