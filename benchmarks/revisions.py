"""Entity history (issue #25), measured as `benchmarks.felt` measures runs:

- `revert`: reverting a 100,000-entity run (`POST .../runs/:id/revert` to the revert's own
  `completedAt`) vs a one-transaction psycopg script restoring the same values: it reads the
  entities the run changed `FOR UPDATE` with the run's revisions, gives each the values
  before the run (data keys, status, publishedAt), and writes them with one `executemany`;
  each on a fresh 100,000-entity run by filter (the pipeline's steps), REPEAT turns;
- `memory` (optional, long): peak RSS of the web and worker processes over a revert of a
  1,000,000-entity run against a revert of a 100,000 one, on a web server and worker of
  its own (each process's peak is reset before each revert: `/proc/PID/clear_refs`).

What the revisions cost a run (the 10,000 and 100,000 pipeline runs with revisions kept,
against the same runs before #25) is `benchmarks.felt`'s `ids` and `filter` rows run on
this checkout and on the commit before #25 (see docs/benchmarks.md, *#25*).

    python -m benchmarks --only revisions            # the revert row
    python -m benchmarks --only revisions,revisions_memory
"""

import json
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import psycopg

from benchmarks import felt, harness
from benchmarks.memory import _rss_kb
from benchmarks.pipeline import entities_insert

ENTITIES = 100_000
REPEAT = 3
MEMORY_SIZES = (100_000, 1_000_000)
PORT_OFFSET = 2  # the memory row's own web server, beside the suite's (million takes +1)


def _changed_run(client: httpx.Client, count: int) -> str:
    """A fresh entity type of `count` entities, taken through the pipeline by filter; the
    id of that (completed) run."""
    _, workflow = _typed_workflow(count)
    response = client.post(felt.run_path(workflow.pk), json={"filter": {"status": "draft"}})
    response.raise_for_status()
    run = harness.wait_for_run(response.json()["runId"], timeout=1800)
    assert run.status == "completed", (run.status, run.error)
    return run.pk


def _typed_workflow(count: int):
    entity_type, workflow = felt._workflow("revisions")
    entities_insert(entity_type.pk, count)
    return entity_type, workflow


def _revert_path(run_id: str) -> str:
    from jobs.models import Run

    workflow_id = Run.objects.values_list("workflow_id", flat=True).get(pk=run_id)
    return f"/api/v1/workflows/{workflow_id}/runs/{run_id}/revert"


def restore_script(run_id: str) -> float:
    """The floor: the entities `run_id` changed, read `FOR UPDATE` with its revisions, each
    given its values before the run, written by one `executemany` in one transaction."""
    started = time.perf_counter()
    with psycopg.connect(harness.ENV["DATABASE_URL"]) as db, db.transaction():
        rows = db.execute(
            "SELECT e.id, e.data, e.status, e.published_at, r.changes "
            "FROM entities_entity AS e JOIN entities_entityrevision AS r "
            "ON r.entity_id = e.id AND r.run_id = %s ORDER BY e.id, r.version FOR UPDATE OF e",
            [run_id],
        ).fetchall()
        restored: dict[str, list] = {}
        for entity_id, data, status, published_at, changes in rows:
            if entity_id not in restored:
                restored[entity_id] = [data, status, published_at, set()]
            values = restored[entity_id]
            for change in changes:  # the run's first change of a field has its value before
                field = change["field"]
                if field in values[3]:
                    continue
                values[3].add(field)
                if field == "status":
                    values[1] = change["before"]
                elif field == "publishedAt":
                    before = change["before"]
                    values[2] = (
                        None if before is None else datetime.fromtimestamp(before / 1000, UTC)
                    )
                elif "before" in change:
                    values[0][field[5:]] = change["before"]
                else:
                    values[0].pop(field[5:], None)
        with db.cursor() as cursor:
            cursor.executemany(
                "UPDATE entities_entity SET data = %s::jsonb, status = %s, published_at = %s, "
                "updated_at = now(), version = version + 1 WHERE id = %s",
                [
                    (json.dumps(data), status, published_at, entity_id)
                    for entity_id, (data, status, published_at, _) in restored.items()
                ],
            )
    return time.perf_counter() - started


def revert(client: httpx.Client, count: int = ENTITIES, repeat: int = REPEAT) -> dict:
    """Reverting a `count`-entity run vs the restoring script, fresh runs every turn."""
    runs, floors = [], []
    for _ in range(repeat):
        ours, theirs = _changed_run(client, count), _changed_run(client, count)
        floors.append(restore_script(theirs))
        runs.append(felt.timed_run(client, _revert_path(ours), {}, timeout=1800))
    return {"entities": count, **felt.turns_figures(runs, floors, 3.0)}


def _reset_peaks(process: harness.ManagedProcess) -> list[int]:
    pids = [process.process.pid, *process.child_pids()]
    for pid in pids:
        Path(f"/proc/{pid}/clear_refs").write_text("5")  # VmHWM back to the current RSS
    return pids


def revert_memory(key: str, log_dir: Path, sizes: tuple[int, ...] = MEMORY_SIZES) -> dict:
    """Peak RSS (VmHWM, MB) of every web and worker process over reverts of runs of
    `sizes` entities, each process's peak reset before each revert."""
    port = harness.PORT + PORT_OFFSET
    logs = log_dir / "revisions-memory"
    logs.mkdir(exist_ok=True)
    web = harness.start_web(logs, port=port)
    worker = harness.start_worker(logs)
    samples = []
    try:
        with felt.api_client(f"http://127.0.0.1:{port}", key) as client:
            felt.warm_up(client)
            for size in sizes:
                run_id = _changed_run(client, size)
                pids = {"web": _reset_peaks(web), "worker": _reset_peaks(worker)}
                seconds = felt.timed_run(client, _revert_path(run_id), {}, timeout=3600)
                samples.append(
                    {
                        "entities": size,
                        "revert_s": round(seconds, 1),
                        **{
                            side: [round(_rss_kb(pid)["VmHWM"] / 1024, 1) for pid in side_pids]
                            for side, side_pids in pids.items()
                        },
                    }
                )
    finally:
        worker.stop()
        web.stop()
    first, last = samples[0], samples[-1]
    growth = [
        round(after / before, 3)
        for side in ("web", "worker")
        for before, after in zip(first[side], last[side], strict=True)
    ]
    return {"samples": samples, "peak_growth": growth, "max_peak_growth": max(growth)}


def run(base_url: str, key: str) -> dict:
    with felt.api_client(base_url, key) as client:
        felt.warm_up(client)
        return {"revert": revert(client), "load": felt.load_average()}
