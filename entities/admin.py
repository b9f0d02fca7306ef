from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.template.response import TemplateResponse

from config.admin_mixins import CreateOnlyFieldsMixin
from entities.models import Entity, EntityType
from entities.schemas import data_problems, data_validator, schema_problems
from entities.services import entity_save


class EntityTypeForm(forms.ModelForm):
    """The API's checks of a schema, as form errors."""

    def clean_schema(self):
        schema = self.cleaned_data.get("schema")
        problems = schema_problems(schema)
        if problems:
            raise ValidationError([f"{p.field}: {p.message}" for p in problems])
        return schema


@admin.register(EntityType)
class EntityTypeAdmin(admin.ModelAdmin):
    form = EntityTypeForm
    list_display = ["name", "id", "description", "created_at"]
    search_fields = ["id", "name"]


class EntityForm(forms.ModelForm):
    """The API's checks of entity data (its type's schema, the size limit, storable text), as
    form errors."""

    def clean(self):
        cleaned = super().clean()
        # On the change form the type is read-only (not a form field): check against the
        # entity's own.
        if "entity_type" in self.fields:
            entity_type = cleaned.get("entity_type")
        else:
            entity_type = self.instance.entity_type
        if entity_type is not None and "data" in cleaned:
            validator = data_validator(entity_type.schema)
            for problem in data_problems(validator, cleaned["data"]):
                self.add_error("data", f"{problem.field}: {problem.message}")
        return cleaned


@admin.register(Entity)
class EntityAdmin(CreateOnlyFieldsMixin, admin.ModelAdmin):
    form = EntityForm
    list_display = ["id", "entity_type", "status", "version", "published_at", "updated_at"]
    list_filter = ["entity_type", "status"]
    search_fields = ["id", "data"]
    readonly_fields = ["id", "version", "created_at", "updated_at"]
    # Its data was checked against this type's schema; the API keeps it too.
    create_only_fields = ["entity_type"]
    list_select_related = ["entity_type"]
    actions = ["run_workflow"]

    def save_model(self, request, obj, form, change):
        entity_save(entity=obj, created=not change)

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
