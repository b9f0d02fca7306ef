from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins, viewsets
from rest_framework.response import Response

from config.api.idempotency import SCHEMA_PARAMETER, idempotent
from config.api.serializers import validated
from jobs.waits.event import services
from jobs.waits.event.models import Event
from jobs.waits.event.serializers import (
    EventListQuerySerializer,
    EventSendSerializer,
    EventSentSerializer,
    EventSerializer,
)


@extend_schema_view(
    list=extend_schema(summary="List recent events", parameters=[EventListQuerySerializer]),
    create=extend_schema(
        summary="Send events: wake the entities waiting for them",
        request=EventSendSerializer,
        responses={200: EventSentSerializer},
        parameters=[SCHEMA_PARAMETER],
    ),
)
class EventViewSet(mixins.ListModelMixin, viewsets.GenericViewSet):
    """Events for `wait_for_event` steps: send one or up to 1,000 (`jobs.add_event`), list
    the recent ones with how many entities each woke (`jobs.view_event`)."""

    serializer_class = EventSerializer
    queryset = Event.objects.none()
    events_only_keys = True  # the one API an events-only key reaches

    def get_queryset(self):
        query = validated(EventListQuerySerializer, self.request.query_params)
        events = Event.objects.order_by("-received_at", "-id")
        if query.get("name"):
            events = events.filter(name=query["name"])
        if query.get("key"):
            events = events.filter(key=query["key"])
        return events

    @idempotent
    def create(self, request, *args, **kwargs):
        # With an `Idempotency-Key` the send is one transaction with its answer's record
        # (`idempotent`): an entity parked while it runs, which neither side then sees, gets
        # an event kept for it from the waits' next tick (`waits_match_lately`), as after a
        # send that died between its two.
        data = validated(EventSendSerializer, request.data)
        sent = services.events_send(
            events=[
                services.EventIn(
                    name=each["name"],
                    key=each["key"],
                    data=each.get("data"),
                    sent_id=each.get("id", ""),
                )
                for each in data.get("events") or [data]
            ]
        )
        body = {
            "matched": sum(each.woken for each in sent),
            "events": [
                {"eventId": each.event_id, "matched": each.matched, "duplicate": each.duplicate}
                for each in sent
            ],
        }
        return Response(body)
