"""The base class of kinds of wait, and their registry.

The engine parks an entity at a step (its item `waiting`, its checkpoint stored, no worker
holding it) and, once the wait is resolved, queues it again. A kind of wait says only how a
wait is created, resolved, expired and cancelled: a review is resolved by a person, a
provider's batch job would be resolved by polling the provider. A new kind is one module in
`jobs/waits/` and its registration line in `jobs/waits/__init__.py`.
"""

from datetime import datetime
from typing import ClassVar, NamedTuple

from django.core.exceptions import ImproperlyConfigured

from jobs.models import Wait
from workflows.steps.runtime import EntityState
from workflows.usage import Usage


class Parked(NamedTuple):
    """A wait just created for an entity, with what its step asked for (`request`)."""

    wait: Wait
    state: EntityState
    request: dict


class WaitKind:
    """One kind of wait. Subclasses set `name` (what steps pass to the port's `wait`) and
    implement the three hooks below. Resolving is the kind's own business (an API call, a
    poll, a timer); it ends with `jobs.waits.services.waits_resolve`, whose resolutions are
    in the engine's terms (see `jobs.models.Wait`)."""

    name: ClassVar[str]

    def create(self, parked: list[Parked]) -> None:
        """Store what this kind needs for waits just parked; runs in the transaction that
        parks them (the chunk's finish), so it never sees a wait that was rolled back."""
        raise NotImplementedError(f"Wait kind {self.name!r} does not implement create().")

    def expire(self, *, now: datetime) -> int:
        """Resolve the waits whose time ran out (celery beat); returns how many."""
        raise NotImplementedError(f"Wait kind {self.name!r} does not implement expire().")

    def cancel(self, *, run_id: str, wait_ids: list[str]) -> dict[str, Usage]:
        """A cancel ends these unresolved waits of the run: end this kind's records of them.
        Runs in the transaction of the cancel's batch that ends their items, under the run's
        lock. Returns, by wait id, what the wait's work used that its entity's usage does not
        hold yet (a provider batch's earlier attempts), for its item to keep."""
        raise NotImplementedError(f"Wait kind {self.name!r} does not implement cancel().")


class WaitKindRegistry:
    """The kinds of wait the engine knows; refuses duplicates and unknown names loudly."""

    def __init__(self):
        self._kinds: dict[str, WaitKind] = {}

    def register(self, cls: type[WaitKind]) -> type[WaitKind]:
        if not getattr(cls, "name", None):
            raise ImproperlyConfigured(f"Wait kind {cls.__name__} has no `name`.")
        if cls.name in self._kinds:
            raise ImproperlyConfigured(f"Wait kind {cls.name!r} is registered twice.")
        self._kinds[cls.name] = cls()
        return cls

    def get(self, name: str) -> WaitKind:
        try:
            return self._kinds[name]
        except KeyError:
            raise ImproperlyConfigured(f"Unknown wait kind {name!r}.") from None

    def __iter__(self):
        return iter(self._kinds.values())


kinds = WaitKindRegistry()
register = kinds.register
