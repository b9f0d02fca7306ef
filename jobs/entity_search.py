"""Choosing entities by search in the admin's run, test and experiment forms: the workflow's
entities whose data contains the text (any field, as the entity list's search) and of the
status chosen, with a count of the matches, instead of a checkbox per entity of the type.

What staff ticked stays ticked when they search again (the live search, with JavaScript):
those the new matches show are ticked there, the others listed apart, still ticked, so the
form posts every one (`entity_ids`). A refused experiment form, posted back, lists them the
same way (`EntitySearch.ticked_elsewhere`). Without JavaScript the search is a page of its
own, and the ticks are not carried to it."""

from dataclasses import dataclass
from functools import cached_property

from django.conf import settings
from django.db.models import QuerySet, Value
from django.db.models.functions import MD5, Concat

from config.time_limit import TooSlow, time_limited
from entities.models import Entity

SHOWN = 50  # matches listed to pick from; a run can take all of them at once
MAX_QUERY = 200  # characters of search text


@dataclass
class EntitySearch:
    text: str
    status: str
    matches: QuerySet
    count: int
    ticked: tuple[str, ...] = ()  # the ids posted as ticked, in their order, each once
    # The text's search ran past ADMIN_SEARCH_TIMEOUT_S and was stopped: nothing matches.
    too_slow: bool = False

    def ids(self, limit: int, *, sample: int | None = None, seed: str = "") -> list[str]:
        """The first `limit` matches' ids (or `sample` of them at random, in an order seeded
        by `seed`: the same seed draws the same sample), read within ADMIN_SEARCH_TIMEOUT_S
        when a text is searched; `TooSlow` past it."""
        matches = self.matches.values_list("pk", flat=True)
        if sample is not None:
            matches = matches.order_by(MD5(Concat(Value(seed), "pk")), "pk")
        with time_limited(settings.ADMIN_SEARCH_TIMEOUT_S if self.text else 0):
            return list(matches[: sample if sample is not None else limit])

    @property
    def too_slow_message(self) -> str:
        return (
            f"The search for {self.text[:100]!r} took more than "
            f"{settings.ADMIN_SEARCH_TIMEOUT_S:g} seconds and was stopped: choose a status "
            "first, or search for rarer text."
        )

    @cached_property
    def shown(self) -> list[Entity]:
        return list(self.matches[:SHOWN])

    @property
    def ticked_elsewhere(self) -> list[str]:
        """The ticked ids this search does not show: they stay ticked, listed apart."""
        shown = {entity.pk for entity in self.shown}
        return [pk for pk in self.ticked if pk not in shown]

    @property
    def filtered(self) -> bool:
        return bool(self.text or self.status)


def entity_search(params, entity_type_id: str, *, by_data: bool) -> EntitySearch:
    """The entities of the type matching `q` (text in their data) and `status`, and the ids
    ticked (`entity_ids`, as many as a run may name) when `params` is a form's data.

    `by_data`: whether the user may read entities' data (`entities.view_entity`). Without it
    `q` is ignored: which entities a text matches answers what their data holds, a guess at
    a time."""
    text = (params.get("q") or "").strip()[:MAX_QUERY].replace("\x00", "") if by_data else ""
    status = params.get("status") or ""
    matches = Entity.objects.filter(entity_type_id=entity_type_id)
    if status in Entity.Status.values:
        matches = matches.filter(status=status)
    else:
        status = ""
    if text:
        matches = matches.filter(data__icontains=text)
    matches = matches.order_by("-pk")
    ticked = params.getlist("entity_ids") if hasattr(params, "getlist") else []
    found = EntitySearch(
        text=text,
        status=status,
        matches=matches,
        count=0,
        ticked=tuple(dict.fromkeys(ticked))[: settings.RUN_MAX_IDS],
    )
    try:
        # A text is looked for in every entity's data: its reads stop after a while.
        with time_limited(settings.ADMIN_SEARCH_TIMEOUT_S if text else 0):
            found.count = matches.count()
            found.shown  # noqa: B018  read here, within the limit, and kept
    except TooSlow:
        found.matches, found.count, found.too_slow = Entity.objects.none(), 0, True
        found.shown = []
    return found
