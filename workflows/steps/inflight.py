"""Calls in flight together: how a step overlaps slow I/O (model calls, webhooks, emails)
for a chunk's entities, at most N at a time, starting none once the run is cancelled."""

import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from typing import TypeVar

from workflows.steps.runtime import StepContext

Item = TypeVar("Item")
Result = TypeVar("Result")

# Pools idle between batches, kept for the next: starting `limit` threads for every chunk
# cost a worker more CPU than its model calls' own bookkeeping. A batch takes a pool of
# its own (none is shared by two batches at once, so each keeps its own `limit`).
_idle_pools: list[tuple[int, ThreadPoolExecutor]] = []  # (threads, pool)
_idle_lock = threading.Lock()


@contextmanager
def _pool(size: int) -> Iterator[ThreadPoolExecutor]:
    """An idle pool of at least `size` threads (the smallest such), or a new one; given
    back to the idle ones afterwards."""
    with _idle_lock:
        fits = [entry for entry in _idle_pools if entry[0] >= size]
        entry = min(fits, key=lambda fit: fit[0]) if fits else None
        if entry is not None:
            _idle_pools.remove(entry)
    if entry is None:
        entry = (size, ThreadPoolExecutor(max_workers=size, thread_name_prefix="bounded-calls"))
    try:
        yield entry[1]
    finally:
        with _idle_lock:
            _idle_pools.append(entry)


def bounded_calls(
    items: Iterable[Item],
    call: Callable[[Item], Result],
    *,
    limit: int,
    ctx: StepContext,
    admit: Callable[[Item], bool] | None = None,
) -> Iterator[tuple[Item, "Future[Result]"]]:
    """Run `call(item)` on threads, at most `limit` at once; yield each (item, its finished
    future) in this thread, in the order the calls finish, as soon as a slot is needed
    again (the rest once every call started).

    A call starts only when a slot is free and the run is not cancelled, so a cancel stops
    new calls within one call's latency; the items never started are not yielded (they stay
    at their step, and the engine ends them cancelled). `admit(item)`, called here just
    before an item's call would start, may refuse it (`notify` moves the checkpoint first).
    `future.result()` raises what the call raised: a `StepError` fails that entity, anything
    else reaches the engine's guard."""
    done: queue.SimpleQueue = queue.SimpleQueue()  # finished futures, in finishing order
    running = 0
    with _pool(limit) as pool, _finishing() as started:
        for item in items:
            if running == limit:
                # A finished call is handed out (in this thread) before the next one
                # starts, so what the consumer records of it (a budget's spending) is
                # seen by the next `admit`.
                yield done.get()
                running -= 1
            ctx.engine.heartbeat()
            if ctx.engine.cancelled():
                break
            if admit is not None and not admit(item):
                continue
            future = pool.submit(call, item)
            started.append(future)
            future.add_done_callback(lambda f, item=item: done.put((item, f)))
            running += 1
        for _ in range(running):
            yield done.get()


@contextmanager
def _finishing() -> Iterator[list[Future]]:
    """The futures started; on leaving, however early (the consumer stopped reading), the
    calls still running are waited for, as a pool's shutdown would, before the pool is
    given back."""
    started: list[Future] = []
    try:
        yield started
    finally:
        wait(started)
