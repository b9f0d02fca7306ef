"""Choosing entities by search in the admin's run and test forms: the workflow's entities whose
data contains the text (any field, as the entity list's search) and of the status chosen, with
a count of the matches, instead of a checkbox per entity of the type."""

from dataclasses import dataclass

from django.db.models import QuerySet

from entities.models import Entity

SHOWN = 50  # matches listed to pick from; a run can take all of them at once
MAX_QUERY = 200  # characters of search text


@dataclass
class EntitySearch:
    text: str
    status: str
    matches: QuerySet
    count: int

    @property
    def shown(self) -> list[Entity]:
        return list(self.matches[:SHOWN])

    @property
    def filtered(self) -> bool:
        return bool(self.text or self.status)


def entity_search(params, entity_type_id: str) -> EntitySearch:
    """The entities of the type matching `q` (text in their data) and `status`."""
    text = (params.get("q") or "").strip()[:MAX_QUERY].replace("\x00", "")
    status = params.get("status") or ""
    matches = Entity.objects.filter(entity_type_id=entity_type_id)
    if status in Entity.Status.values:
        matches = matches.filter(status=status)
    else:
        status = ""
    if text:
        matches = matches.filter(data__icontains=text)
    matches = matches.order_by("-pk")
    return EntitySearch(text=text, status=status, matches=matches, count=matches.count())
