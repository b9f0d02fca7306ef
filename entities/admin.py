from django.contrib import admin

from entities.models import Entity, EntityType


@admin.register(EntityType)
class EntityTypeAdmin(admin.ModelAdmin):
    list_display = ["name", "id", "description", "created_at"]
    search_fields = ["id", "name"]


@admin.register(Entity)
class EntityAdmin(admin.ModelAdmin):
    list_display = ["id", "entity_type", "status", "version", "published_at", "updated_at"]
    list_filter = ["entity_type", "status"]
    search_fields = ["id", "data"]
    readonly_fields = ["id", "version", "created_at", "updated_at"]
    list_select_related = ["entity_type"]
