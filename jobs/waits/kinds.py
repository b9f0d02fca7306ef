"""Every kind of wait the engine knows, one registration line each; imported when the jobs
app is ready (`jobs.apps`), after every model is loaded."""

from jobs.waits.ai_batch.kind import AiBatchWait
from jobs.waits.base import register
from jobs.waits.delay.kind import DelayWait
from jobs.waits.event.kind import EventWaitKind
from jobs.waits.review.kind import ReviewWait

register(ReviewWait)
register(AiBatchWait)
register(DelayWait)
register(EventWaitKind)
