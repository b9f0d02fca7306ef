from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.template.response import TemplateResponse

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
    actions = ["run_workflow"]

    @admin.action(description="Run workflow…")
    def run_workflow(self, request, queryset):
        """Pick a workflow of the entities' type, then start a run as the API does."""
        from workflows.admin import start_run_from_admin
        from workflows.models import Workflow

        if not request.user.has_perm("jobs.add_run"):
            raise PermissionDenied
        type_ids = set(queryset.values_list("entity_type_id", flat=True))
        if len(type_ids) != 1:
            self.message_user(request, "Select entities of one entity type.", messages.ERROR)
            return None
        workflows = Workflow.objects.filter(entity_type_id=type_ids.pop()).exclude(
            status=Workflow.Status.ARCHIVED
        )
        ids = request.POST.getlist(admin.helpers.ACTION_CHECKBOX_NAME)
        if request.POST.get("workflow"):
            workflow = workflows.filter(pk=request.POST["workflow"]).first()
            if workflow is None:
                self.message_user(request, "Pick a workflow of this entity type.", messages.ERROR)
                return None
            return start_run_from_admin(self, request, workflow, ids)
        return TemplateResponse(
            request,
            "admin/entities/entity/run_workflow.html",
            {
                **self.admin_site.each_context(request),
                "title": "Run a workflow on the selected entities",
                "opts": self.model._meta,
                "workflows": workflows,
                "ids": ids,
                "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
            },
        )
