"""Durable waits: entities parked at a step, holding no worker, until something outside the
run resolves them. `base` defines a kind of wait and the registry; `parking` is the engine's
side inside a chunk, `services` outside it; each kind is one module, registered here."""

from jobs.waits import ai_batch, review  # noqa: F401  (imported to register)
from jobs.waits.base import kinds

__all__ = ["kinds"]
