"""Every kind of wait the engine knows, one registration line each; imported when the jobs
app is ready (`jobs.apps`), after every model is loaded, or sooner by a module that reads
the registry as it loads (the admin's, which Django's admin loads before the jobs app is
ready; the run's serializer): they take `kinds` from here, so it is filled by then."""

from jobs.waits.ai_batch.kind import AiBatchWait
from jobs.waits.base import kinds, register
from jobs.waits.delay.kind import DelayWait
from jobs.waits.event.kind import EventWaitKind
from jobs.waits.review.kind import ReviewWait

register(ReviewWait)
register(AiBatchWait)
register(DelayWait)
register(EventWaitKind)

__all__ = ["kinds"]
