"""The base class of kinds of wait, and their registry.

The engine parks an entity at a step (its item `waiting`, its checkpoint stored, no worker
holding it), resumes it once its wait is resolved and cancels it with its run
(`jobs.engine.parking`), and resolves waits for the kinds and ticks every kind
(`jobs.engine.waits`). A kind of wait says only how a wait is created, resolved
and cancelled: a review is resolved by a person, a provider batch by polling the provider.
A kind is one folder, `jobs/waits/<kind>/`: its kind class (`kind.py`), models, services,
settings (`conf.py`), API (`urls`), admin and tasks, and its parts of a run's detail in the
API (`RunDetail`) and of a run's admin page (`RunPagePart`, its section's template in
`templates/admin/jobs/waits/<kind>/`); registering it is its line in `jobs/waits/kinds.py`.
"""

from dataclasses import dataclass, field
from datetime import datetime
from typing import ClassVar, NamedTuple

from django.core.exceptions import ImproperlyConfigured
from django.db.models import Prefetch, QuerySet
from rest_framework.serializers import Field

from workflows.steps.runtime import EntityState
from workflows.steps.waits import WaitRequest
from workflows.usage import Usage


class ParkedWait(NamedTuple):
    """A `Wait` row as the engine inserts it (no model instance: a chunk parks hundreds);
    a kind's rows refer to it by `wait_id=wait.pk`."""

    pk: str
    run_id: str
    item_id: int
    entity_id: str
    step_id: str
    kind: str


class Parked(NamedTuple):
    """A wait just created for an entity, with what its step asked for (`request`, of its
    kind's `request_type`) and, when the engine stored them in its checkpoint, the run's
    changes to the entity (`state.changes()`, not computed twice)."""

    wait: ParkedWait
    state: EntityState
    request: WaitRequest
    changes: tuple[dict, list[str]] | None = None

    def state_changes(self) -> tuple[dict, list[str]]:
        return self.changes if self.changes is not None else self.state.changes()


@dataclass(frozen=True)
class RunDetail:
    """A kind's part of a run's detail in the API (`GET /workflows/:id/runs/:id`, and each
    run of the list): `fields`, by name, read-only serializer fields of the run (each typed,
    so the OpenAPI schema documents it), shown after the run's `usage` in registration order;
    `prefetch`, the run's relations they read, prefetched for a page of runs."""

    fields: dict[str, Field]
    prefetch: tuple[str | Prefetch, ...] = ()


@dataclass(frozen=True)
class RunPageLink:
    """A link after the count of a run's waiting entities on its admin page."""

    text: str
    url: str
    html_id: str = ""


@dataclass(frozen=True)
class RunPagePart:
    """A kind's part of a run's admin page: what the run's waiting entities wait for
    (`waiting_for`, "for review"; "at a step" when no kind says), links after their count,
    and a section of its own below the run's actions (`template`, rendered with the page's
    context and `part`, this, so it reads `part.context`)."""

    waiting_for: str = ""
    links: tuple[RunPageLink, ...] = ()
    template: str = ""
    context: dict = field(default_factory=dict)


class WaitKind:
    """One kind of wait. Subclasses set `request_type` (the `WaitRequest` dataclass steps
    hand the engine, whose `kind` names this kind), optionally `urls`, `admin` and `tasks`
    (dotted module paths of its API routes, its admin and its Celery tasks, loaded by
    `jobs/waits/urls.py`, `jobs/admin.py` and `jobs/tasks.py`), and implement the hooks below
    (`create`, `tick` and `cancel`; the others are optional).
    Resolving is the kind's own business (an API call, a poll, a timer); it ends with
    `jobs.engine.waits.waits_resolve` and a `Resolution`."""

    request_type: ClassVar[type[WaitRequest]]
    urls: ClassVar[str | None] = None
    admin: ClassVar[str | None] = None
    tasks: ClassVar[str | None] = None
    # The facts of `describe` read from the entity's data (an event's key, rendered from
    # it): shown only to who may read entities (`entities.view_entity`), null to others.
    entity_facts: ClassVar[tuple[str, ...]] = ()

    @property
    def name(self) -> str:
        return self.request_type.kind

    def create(self, parked: list[Parked]) -> None:
        """Store what this kind needs for waits just parked; runs in the transaction that
        parks them (the chunk's finish), so it never sees a wait that was rolled back."""
        raise NotImplementedError(f"Wait kind {self.name!r} does not implement create().")

    def tick(self, *, now: datetime) -> int:
        """Resolve or move on what is due by `now` (a review's expiry, a batch's poll);
        returns how many it handled. Called on each of beat's ticks (WAITS_TICK_S) and
        whenever a kind asks for a tick at a time (`jobs.engine.waits.waits_tick_at`), so
        it decides itself what is due, and is safe to call twice."""
        raise NotImplementedError(f"Wait kind {self.name!r} does not implement tick().")

    def describe(self, wait_ids: list[str]) -> dict[str, dict]:
        """What each of these waits waits for, as the run's items show it (`waitingFor`):
        by wait id, a few camelCase facts (a time, as an aware datetime, which the API serves
        in ms and the admin's run page as a date; an event and its key). Those read from the
        entity's data are named in `entity_facts`. None by default."""
        return {}

    def described_fields(self) -> dict[str, Field]:
        """The facts of `describe`, by name, as read-only serializer fields (a time as a
        `TimestampField`), so the OpenAPI schema types this kind's `waitingFor`
        (`WaitingFor<Kind>`, beside `kind`) and a generated SDK reads it as a model. None by
        default."""
        return {}

    def run_records(self, run_id: str) -> list[QuerySet]:
        """This kind's records of a run, for retention to delete with the run
        (`jobs.retention`): each before those it points at, all before the run's waits. Rows
        that cascade from their `Wait` need not be named. None by default."""
        return []

    def prune(self, *, now: datetime, limit: int) -> int:
        """Delete up to `limit` of this kind's records that no run owns and whose keep time
        is past (an event); returns how many (retention's pruner). None by default."""
        return 0

    def run_detail(self) -> RunDetail | None:
        """This kind's fields of a run's detail in the API (called once, when the run's
        serializer is made). None by default."""
        return None

    def run_page(self, run) -> RunPagePart | None:
        """This kind's part of the admin page of `run` (a `Run`), or None where it has
        nothing to show of that run. None by default."""
        return None

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
        request_type = getattr(cls, "request_type", None)
        if request_type is None or not getattr(request_type, "kind", None):
            raise ImproperlyConfigured(f"Wait kind {cls.__name__} has no request_type.kind.")
        if request_type.kind in self._kinds:
            raise ImproperlyConfigured(f"Wait kind {request_type.kind!r} is registered twice.")
        self._kinds[request_type.kind] = cls()
        return cls

    def get(self, name: str) -> WaitKind:
        try:
            return self._kinds[name]
        except KeyError:
            raise ImproperlyConfigured(f"Unknown wait kind {name!r}.") from None

    def __contains__(self, name: str) -> bool:
        return name in self._kinds

    def __iter__(self):
        return iter(self._kinds.values())

    def run_details(self) -> list[RunDetail]:
        """Every kind's part of a run's detail in the API (`WaitKind.run_detail`)."""
        return [detail for kind in self if (detail := kind.run_detail())]

    def run_page_parts(self, run) -> list[RunPagePart]:
        """Every kind's part of `run`'s admin page (`WaitKind.run_page`)."""
        return [part for kind in self if (part := kind.run_page(run))]


kinds = WaitKindRegistry()
register = kinds.register
