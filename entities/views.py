from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from config.api.errors import NotFound
from config.api.idempotency import SCHEMA_PARAMETER, idempotent
from config.api.pagination import VersionCursorPagination
from config.api.serializers import validated
from entities import selectors, services
from entities.models import Entity, EntityType
from entities.revisions import RevisionSource, Source
from entities.serializers import (
    EntityBulkCreateResultSerializer,
    EntityBulkCreateSerializer,
    EntityCreateSerializer,
    EntityListQuerySerializer,
    EntityRestoreSerializer,
    EntityRevisionSerializer,
    EntitySerializer,
    EntityTypeSerializer,
    EntityTypeWriteSerializer,
    EntityUpdateSerializer,
    EntityVersionSerializer,
)


@extend_schema_view(
    list=extend_schema(summary="List entity types"),
    retrieve=extend_schema(summary="Get an entity type"),
    create=extend_schema(
        summary="Create an entity type",
        request=EntityTypeWriteSerializer,
        parameters=[SCHEMA_PARAMETER],
    ),
    partial_update=extend_schema(
        summary="Update an entity type", request=EntityTypeWriteSerializer(partial=True)
    ),
    destroy=extend_schema(summary="Delete an entity type (409 while anything uses it)"),
)
class EntityTypeViewSet(viewsets.ModelViewSet):
    queryset = EntityType.objects.all()
    serializer_class = EntityTypeSerializer
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    @idempotent
    def create(self, request):
        data = validated(EntityTypeWriteSerializer, request.data)
        entity_type = services.entity_type_create(**data)
        return Response(EntityTypeSerializer(entity_type).data, status=status.HTTP_201_CREATED)

    def partial_update(self, request, pk=None):
        entity_type = self.get_object()
        data = validated(EntityTypeWriteSerializer, request.data, partial=True)
        entity_type = services.entity_type_update(entity_type=entity_type, **data)
        return Response(EntityTypeSerializer(entity_type).data)

    def destroy(self, request, pk=None):
        services.entity_type_delete(entity_type=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)


@extend_schema_view(
    list=extend_schema(summary="List entities", parameters=[EntityListQuerySerializer]),
    retrieve=extend_schema(summary="Get an entity"),
    create=extend_schema(
        summary="Create an entity", request=EntityCreateSerializer, parameters=[SCHEMA_PARAMETER]
    ),
    partial_update=extend_schema(
        summary="Update an entity (merges top-level keys of data)", request=EntityUpdateSerializer
    ),
    destroy=extend_schema(summary="Delete an entity"),
)
class EntityViewSet(viewsets.ModelViewSet):
    queryset = Entity.objects.all()
    serializer_class = EntitySerializer
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]
    action_permissions = {"restore": ["entities.change_entity"]}

    def get_queryset(self):
        if self.action != "list":
            return Entity.objects.all()
        query = validated(EntityListQuerySerializer, self.request.query_params)
        return selectors.entity_list(
            entity_type_id=query.get("entityTypeId"), status=query.get("status")
        )

    @idempotent
    def create(self, request):
        data = validated(EntityCreateSerializer, request.data)
        entity_type = selectors.entity_type_get(
            entity_type_id=data["entityTypeId"], field="entityTypeId"
        )
        entity = services.entity_create(
            entity_type=entity_type, data=data["data"], source=RevisionSource.of_request(request)
        )
        return Response(EntitySerializer(entity).data, status=status.HTTP_201_CREATED)

    def partial_update(self, request, pk=None):
        entity = self.get_object()
        data = validated(EntityUpdateSerializer, request.data)
        entity = services.entity_update(
            entity_id=entity.pk, data=data["data"], source=RevisionSource.of_request(request)
        )
        return Response(EntitySerializer(entity).data)

    def destroy(self, request, pk=None):
        services.entity_delete(entity=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(
        summary="Create up to 10,000 entities in one transaction",
        request=EntityBulkCreateSerializer,
        responses={201: EntityBulkCreateResultSerializer},
        parameters=[SCHEMA_PARAMETER],
    )
    @action(detail=False, methods=["post"], url_path="bulk")
    @idempotent
    def bulk(self, request):
        data = validated(EntityBulkCreateSerializer, request.data)
        entity_type = selectors.entity_type_get(
            entity_type_id=data["entityTypeId"], field="entityTypeId"
        )
        ids = services.entities_bulk_create(
            entity_type=entity_type,
            items=data["items"],
            source=RevisionSource.of_request(request),
        )
        return Response({"ids": ids}, status=status.HTTP_201_CREATED)

    @extend_schema(
        summary="List an entity's revisions, newest first",
        responses={200: EntityRevisionSerializer(many=True)},
    )
    @action(detail=True, methods=["get"], url_path="revisions")
    def revisions(self, request, pk=None):
        entity = self.get_object()
        pages = VersionCursorPagination()
        page = pages.paginate_queryset(selectors.entity_revisions(entity_id=entity.pk), request)
        return pages.get_paginated_response(EntityRevisionSerializer(page, many=True).data)

    @extend_schema(
        summary="Get a revision, with the entity's data and status at that version",
        parameters=[OpenApiParameter("version", int, OpenApiParameter.PATH)],
        responses={200: EntityVersionSerializer},
    )
    @action(detail=True, methods=["get"], url_path=r"revisions/(?P<version>[^/.]+)")
    def revision(self, request, pk=None, version=None):
        entity = self.get_object()
        # Any segment reaches the view, so the key's permissions are checked before the
        # version's shape: a key without them learns nothing from a 404.
        if not (version.isascii() and version.isdigit() and len(version) <= 9):
            raise NotFound(f"No revision {version!r}: a version is a positive whole number.")
        revision, state = selectors.entity_version(entity=entity, version=int(version))
        body = EntityRevisionSerializer(revision).data
        body.update(data=state.data, status=state.status, publishedAt=state.published_at)
        return Response(body)

    @extend_schema(
        summary="Restore a version: a new version with its data and status",
        description="A new version with that version's data, status and publishedAt, kept as "
        "a revision with source `restore`; none when the entity has them already (the entity "
        "is answered as it is). 409 `revision_not_kept` once the revisions it needs are pruned.",
        request=EntityRestoreSerializer,
        responses={200: EntitySerializer},
    )
    @action(detail=True, methods=["post"], url_path="restore")
    def restore(self, request, pk=None):
        entity = self.get_object()
        data = validated(EntityRestoreSerializer, request.data)
        entity = services.entity_restore(
            entity_id=entity.pk,
            version=data["version"],
            source=RevisionSource.of_request(request, Source.RESTORE),
        )
        return Response(EntitySerializer(entity).data)
