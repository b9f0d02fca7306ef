from django.conf import settings
from rest_framework import serializers

from config.api.fields import TimestampField
from config.api.serializers import StrictSerializer
from entities.schemas import data_encode
from jobs.waits.event.models import Event
from jobs.waits.event.services import SEND_MAX
from workflows.steps.wait_for_event import EVENT_NAME_PATTERN, MAX_KEY_LENGTH


class EventInSerializer(StrictSerializer):
    name = serializers.RegexField(
        EVENT_NAME_PATTERN, help_text="The event's name, as a `wait_for_event` step names it."
    )
    key = serializers.CharField(
        max_length=MAX_KEY_LENGTH, trim_whitespace=True, help_text="What the entities wait for."
    )
    data = serializers.JSONField(
        required=False,
        allow_null=True,
        help_text="The waiting steps' output (`data`): up to ENTITY_MAX_DATA_BYTES as JSON.",
    )
    id = serializers.CharField(
        required=False,
        max_length=200,
        help_text="Your id for this event: it is taken once within 24 h; a retry wakes no "
        "entity twice.",
    )

    def validate_data(self, value):
        # It is written into the entities it wakes (`outputField`) and into each one's wait:
        # bounded as entity data is, not by the request's body alone.
        size, limit = len(data_encode(value)), settings.ENTITY_MAX_DATA_BYTES
        if size > limit:
            raise serializers.ValidationError(
                f"Is {size} bytes as JSON; the limit is {limit} (ENTITY_MAX_DATA_BYTES).",
                code="too_large",
            )
        return value


class EventSendSerializer(EventInSerializer):
    """One event (`name`, `key`, `data`, `id`), or up to 1,000 as `events`."""

    refuses_empty = True

    name = serializers.RegexField(EVENT_NAME_PATTERN, required=False)
    key = serializers.CharField(max_length=MAX_KEY_LENGTH, required=False)
    # A ListField, not `many=True`: the OpenAPI document states its bounds (minItems,
    # maxItems) only for a ListField's.
    events = serializers.ListField(
        child=EventInSerializer(),
        required=False,
        min_length=1,
        max_length=SEND_MAX,
        help_text=f"1 to {SEND_MAX} events, each taken as one sent alone.",
    )

    def validate(self, attrs):
        if "events" in attrs:
            extra = sorted(set(attrs) - {"events"})
            if extra:
                raise serializers.ValidationError(
                    {extra[0]: "Send one event, or `events`, not both."}
                )
            return attrs
        missing = [field for field in ("name", "key") if field not in attrs]
        if missing:
            raise serializers.ValidationError(
                {field: self.fields[field].error_messages["required"] for field in missing},
                code="required",
            )
        return attrs


class SentSerializer(serializers.Serializer):
    eventId = serializers.CharField(help_text="The stored event (the first one, for a duplicate).")
    matched = serializers.IntegerField(help_text="Entities it woke.")
    duplicate = serializers.BooleanField(
        help_text="Its `id` was sent before: not taken again (the first, if still kept, woke "
        "the entities waiting for it now)."
    )


class EventSentSerializer(serializers.Serializer):
    matched = serializers.IntegerField(help_text="Entities this send woke, in all.")
    events = SentSerializer(many=True, help_text="Each event sent, in order.")


class EventListQuerySerializer(serializers.Serializer):
    """The list's filters. Not strict: the query also holds the page's `limit` and `cursor`;
    what an endpoint does not declare is refused by KnownQueryParameters, as on every list."""

    name = serializers.RegexField(EVENT_NAME_PATTERN, required=False)
    key = serializers.CharField(max_length=MAX_KEY_LENGTH, required=False)


class EventSerializer(serializers.ModelSerializer):
    sentId = serializers.CharField(source="sent_id", help_text="The sender's id, or empty.")
    receivedAt = TimestampField(source="received_at")
    expiresAt = TimestampField(
        source="expires_at", help_text="Entities reaching their step until then still get it."
    )
    matched = serializers.IntegerField(help_text="Entities it woke.")
    data = serializers.JSONField(allow_null=True)

    class Meta:
        model = Event
        fields = ["id", "name", "key", "data", "sentId", "receivedAt", "expiresAt", "matched"]
