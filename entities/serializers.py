from rest_framework import serializers

from config.api.fields import TimestampField
from config.api.serializers import StrictSerializer
from entities.models import Entity, EntityType
from entities.services import BULK_MAX_ITEMS


class EntityTypeSerializer(serializers.ModelSerializer):
    schema = serializers.JSONField(
        allow_null=True, read_only=True, help_text="JSON Schema for an entity's `data`, or null."
    )
    createdAt = TimestampField(source="created_at")
    updatedAt = TimestampField(source="updated_at")

    class Meta:
        model = EntityType
        fields = ["id", "name", "description", "schema", "createdAt", "updatedAt"]


class EntityTypeWriteSerializer(StrictSerializer):
    name = serializers.CharField(max_length=200)
    description = serializers.CharField(required=False, allow_blank=True, max_length=10_000)
    schema = serializers.DictField(
        required=False, allow_null=True, help_text="A JSON Schema (draft 2020-12) for `data`."
    )


class EntitySerializer(serializers.ModelSerializer):
    entityTypeId = serializers.CharField(source="entity_type_id", read_only=True)
    data = serializers.JSONField(read_only=True)
    publishedAt = TimestampField(source="published_at", allow_null=True)
    createdAt = TimestampField(source="created_at")
    updatedAt = TimestampField(source="updated_at")

    class Meta:
        model = Entity
        fields = [
            "id",
            "entityTypeId",
            "data",
            "status",
            "version",
            "publishedAt",
            "createdAt",
            "updatedAt",
        ]


class EntityCreateSerializer(StrictSerializer):
    entityTypeId = serializers.CharField(max_length=64)
    data = serializers.DictField(
        help_text="The entity's fields, checked against the type's schema."
    )


class EntityUpdateSerializer(StrictSerializer):
    data = serializers.DictField(help_text="Top-level keys to merge into the entity's data.")


class BulkItemSerializer(StrictSerializer):
    data = serializers.DictField()


class EntityBulkCreateSerializer(StrictSerializer):
    entityTypeId = serializers.CharField(max_length=64)
    items = serializers.ListField(
        child=BulkItemSerializer(),
        min_length=1,
        max_length=BULK_MAX_ITEMS,
        help_text=f"1 to {BULK_MAX_ITEMS} items, created in one transaction, all or nothing.",
    )


class EntityBulkCreateResultSerializer(serializers.Serializer):
    ids = serializers.ListField(
        child=serializers.CharField(), help_text="The new entities' ids, in the order of `items`."
    )


class EntityListQuerySerializer(serializers.Serializer):
    entityTypeId = serializers.CharField(required=False)
    status = serializers.ChoiceField(choices=Entity.Status.choices, required=False)
