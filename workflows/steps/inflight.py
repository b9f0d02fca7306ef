"""Calls in flight together: how a step overlaps slow I/O (model calls, webhooks, emails)
for a chunk's entities, at most N at a time, starting none once the run is cancelled."""

import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from typing import TypeVar

from workflows.steps.runtime import StepContext

Item = TypeVar("Item")
Result = TypeVar("Result")


def bounded_calls(
    items: Iterable[Item],
    call: Callable[[Item], Result],
    *,
    limit: int,
    ctx: StepContext,
    admit: Callable[[Item], bool] | None = None,
) -> Iterator[tuple[Item, "Future[Result]"]]:
    """Run `call(item)` on threads, at most `limit` at once; yield each (item, its finished
    future) in this thread, in the order the calls finish.

    A call starts only when a slot is free and the run is not cancelled, so a cancel stops
    new calls within one call's latency; the items never started are not yielded (they stay
    at their step, and the engine ends them cancelled). `admit(item)`, called here just
    before an item's call would start, may refuse it (`notify` moves the checkpoint first).
    `future.result()` raises what the call raised: a `StepError` fails that entity, anything
    else reaches the engine's guard."""
    free_slots = threading.BoundedSemaphore(limit)
    futures: dict[Future, Item] = {}
    with ThreadPoolExecutor(max_workers=limit) as pool:
        for item in items:
            free_slots.acquire()
            ctx.engine.heartbeat()
            if ctx.engine.cancelled():
                free_slots.release()
                break
            if admit is not None and not admit(item):
                free_slots.release()
                continue
            future = pool.submit(call, item)
            future.add_done_callback(lambda _: free_slots.release())
            futures[future] = item
        for future in as_completed(futures):
            yield futures[future], future
