from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from config.api.fields import MillisField, TimestampField
from config.api.serializers import StrictSerializer
from entities.models import Entity, EntityRevision, EntityType
from entities.revisions import RevisionSource
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


class RevisionSourceSerializer(serializers.Serializer):
    type = serializers.ChoiceField(choices=EntityRevision.Source.choices)
    runId = serializers.CharField(required=False, help_text="The run that made the change.")
    stepId = serializers.CharField(required=False, help_text="Its step (a publish, a review).")
    userId = serializers.CharField(required=False, help_text="The person who made the change.")
    apiKeyId = serializers.CharField(required=False, help_text="The API key it came with.")


class RevisionChangeSerializer(serializers.Serializer):
    field = serializers.CharField(
        help_text="`data.<key>` for a top-level key of data, or `status`, or `publishedAt`."
    )
    before = serializers.JSONField(allow_null=True, help_text="null when the key was absent.")
    after = serializers.JSONField(allow_null=True, help_text="null when the key was removed.")


class EntityRevisionSerializer(serializers.Serializer):
    version = serializers.IntegerField()
    createdAt = TimestampField(source="created_at")
    source = serializers.SerializerMethodField()
    changes = serializers.SerializerMethodField()

    @extend_schema_field(RevisionSourceSerializer)
    def get_source(self, revision) -> dict:
        return RevisionSource.of_revision(revision).as_json()

    @extend_schema_field(RevisionChangeSerializer(many=True))
    def get_changes(self, revision) -> list[dict]:
        return [
            {"field": c["field"], "before": c.get("before"), "after": c.get("after")}
            for c in revision.changes
        ]


class EntityVersionSerializer(EntityRevisionSerializer):
    data = serializers.JSONField(help_text="The entity's data at this version.")
    status = serializers.ChoiceField(choices=Entity.Status.choices)
    publishedAt = MillisField(allow_null=True, help_text="Its publication time then (ms).")


class EntityRestoreSerializer(StrictSerializer):
    version = serializers.IntegerField(
        min_value=1, help_text="The version whose data and status the entity gets back."
    )
