import json
from functools import partial

from django import forms
from django.contrib import admin
from django.db import models
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.urls import path
from django.utils.safestring import mark_safe
from django_jsonform.widgets import JSONFormWidget

from config.admin_mixins import BoundedJSONMixin, CreateOnlyFieldsMixin, ProtectedDeleteMixin
from config.forms import BoundedJSONField
from workflows import reference, selectors, services
from workflows.editor import (
    EditorInputError,
    editor_clean,
    editor_types,
    triggers_editor_schema,
)
from workflows.editor_check import editor_check_view, steps_check, triggers_check
from workflows.models import Step, Workflow
from workflows.reference import markdown_inline
from workflows.steps import registry
from workflows.version_admin import (
    VERSIONS_SHOWN,
    WorkflowVersionInline,
    version_publish_view,
)


class StepConfigWidget(forms.Textarea):
    """A step's config: the form made from its type's schema (django-jsonform's React form,
    driven by step_editor.js, which swaps the form when the type changes), and the same config
    as JSON text for those who prefer it. The text area is what is posted: the API's config."""

    template_name = "admin/workflows/widgets/step_config.html"

    def __init__(self):
        super().__init__(attrs={"rows": 8, "class": "vLargeTextField step-config-json"})

    def render(self, name, value, attrs=None, renderer=None):
        # The project's templates, as django-jsonform's widget renders (the form renderer
        # reads the apps' templates only).
        return mark_safe(render_to_string(self.template_name, self.get_context(name, value, attrs)))  # noqa: S308

    @property
    def media(self):
        return forms.Media(
            css={"all": ["django_jsonform/style.css"]},
            js=[
                "django_jsonform/vendor/react.production.min.js",
                "django_jsonform/vendor/react-dom.production.min.js",
                "django_jsonform/vendor/react-modal.min.js",
                "django_jsonform/react-json-form.js",
                "workflows/step_editor.js",
            ],
        )


class StepForm(forms.ModelForm):
    config = BoundedJSONField(
        required=False,
        widget=StepConfigWidget(),
        help_text="Left empty, the type's example is filled in. Checked in the page and on save "
        "with the API's rules.",
    )

    class Meta:
        model = Step
        fields = ["position", "step_id", "type", "config"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["step_id"].required = False
        self.fields["step_id"].help_text = "Leave empty to generate one."
        # Positions are the page's order: a new step left without one goes after the others.
        self.fields["position"].required = False
        self.fields["position"].help_text = "Drag ⠿ or use ↑/↓; empty: last."
        self.fields["position"].widget.attrs["class"] = "step-position"
        if self.instance.pk and self.instance.type in registry:
            # Secrets are write-only here as in the API: the form shows `secretSet`, and a
            # config saved without the secret keeps the step's current one.
            step_type = registry.get(self.instance.type)
            self.initial["config"] = step_type.shown_config(self.instance.config)

    def clean_config(self):
        config = self.cleaned_data.get("config")
        step_type = self.cleaned_data.get("type")
        if step_type not in registry or config in (None, ""):
            return config
        # What the form posts, as the API takes it: empty options dropped, JSON text read.
        try:
            return editor_clean(registry.get(step_type).config_schema, config)
        except EditorInputError as exc:
            raise forms.ValidationError(str(exc)) from None


class StepFormSet(forms.BaseInlineFormSet):
    """Checks the steps together, with the API's rules and messages, next to each step."""

    def ordered_forms(self) -> list[StepForm]:
        kept = [
            form
            for form in self.forms
            if form.has_changed() or form.instance.pk
            if not (self.can_delete and self._should_delete_form(form))
        ]

        def order(indexed):
            index, form = indexed
            position = form.cleaned_data.get("position")
            return (position is None, position or 0, index)

        return [form for _, form in sorted(enumerate(kept), key=order)]

    def steps(self) -> list[dict]:
        steps = []
        for form in self.ordered_forms():
            data = form.cleaned_data
            config = data.get("config")
            if config in (None, "") and data.get("type") in registry:
                config = registry.get(data["type"]).example
            step = {"type": data.get("type"), "config": config}
            if data.get("step_id"):
                step["id"] = data["step_id"]
            steps.append(step)
        return steps

    def current_steps(self) -> list[dict]:
        if not self.instance.pk:
            return []
        return [
            {"id": step.step_id, "type": step.type, "config": step.config}
            for step in self.instance.steps.all()
        ]

    def clean(self):
        super().clean()
        if any(form.errors for form in self.forms):
            return
        forms_in_order = self.ordered_forms()
        self.cleaned_steps, problems = steps_check(self.steps(), self.current_steps())
        for problem in problems:
            if problem.step is None:
                raise forms.ValidationError(problem.text)
            forms_in_order[problem.step].add_error(problem.field, problem.text)


class StepInline(admin.TabularInline):
    model = Step
    form = StepForm
    formset = StepFormSet
    extra = 1
    ordering = ["position"]
    template = "admin/workflows/workflow/steps_inline.html"

    class Media:
        js = ["workflows/step_order.js"]


class WorkflowForm(forms.ModelForm):
    """Triggers are checked by the same service as the API's (`triggers_clean`)."""

    class Meta:
        model = Workflow
        fields = ["name", "description", "entity_type", "status", "triggers"]
        help_texts = {
            "triggers": Workflow._meta.get_field("triggers").help_text
            + ". Schedules are fired by celery beat from its periodic tasks, which are written "
            "from these triggers on every save (and shown read-only under Periodic tasks): "
            "edit schedules here. Only an active workflow fires."
        }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if "triggers" in self.fields:  # each trigger a group of fields, not JSON to type
            self.fields["triggers"].widget = JSONFormWidget(schema=triggers_editor_schema)

    def clean(self):
        cleaned = super().clean()
        entity_type = cleaned.get("entity_type") or getattr(self.instance, "entity_type", None)
        if entity_type is not None and "triggers" in cleaned:
            cleaned["triggers"], problems = triggers_check(cleaned["triggers"], entity_type)
            if problems:
                self.add_error("triggers", [problem.text for problem in problems])
        return cleaned


@admin.register(Workflow)
class WorkflowAdmin(
    ProtectedDeleteMixin, BoundedJSONMixin, CreateOnlyFieldsMixin, admin.ModelAdmin
):
    """Workflow definitions; `jobs.start_admin` adds running and testing them (the engine's)."""

    list_display = [
        "name",
        "status",
        "entity_type",
        "steps_count",
        "last_run_at",
        "version",
        "updated_at",
    ]
    list_filter = ["status", "entity_type"]
    search_fields = ["id", "name", "description"]
    form = WorkflowForm
    fields = ["name", "description", "entity_type", "status", "triggers", "version"]
    readonly_fields = ["version"]
    # Its steps and past runs were written against this type's schema; the API keeps it too.
    create_only_fields = ["entity_type"]
    inlines = [StepInline, WorkflowVersionInline]

    def get_queryset(self, request):
        return selectors.workflow_list()  # steps_count annotated

    def get_deleted_objects(self, objs, request):
        """Refuse a workflow that anything protects (its runs, its experiments), saying so in
        a line each, as the API archives rather than deletes: Django's own page would load and
        list every run that protects it (a million rows) before refusing."""
        protected = [
            f"{workflow}: it has {relation.related_model._meta.verbose_name_plural}, which "
            "stay readable: archive it instead (its status)."
            for workflow in objs
            for relation in Workflow._meta.related_objects
            if relation.on_delete is models.PROTECT
            and relation.related_model._base_manager.filter(
                **{relation.field.name: workflow}
            ).exists()
        ]
        if protected:
            return [], {}, set(), protected
        deleted, counts, perms_needed, protected = super().get_deleted_objects(objs, request)
        # Its own rows (versions, steps, schedule fires) go with it: whoever may delete the
        # workflow needs no permission to delete each kind (none may delete them alone).
        owned = {
            str(relation.related_model._meta.verbose_name)
            for relation in Workflow._meta.related_objects
            if relation.on_delete is models.CASCADE
        }
        return deleted, counts, perms_needed - owned, protected

    @admin.display(ordering="last_run_at", description="last run")
    def last_run_at(self, workflow):
        return workflow.last_run_at

    @admin.display(ordering="steps_count", description="steps")
    def steps_count(self, workflow):
        return workflow.steps_count

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path(
                "step-types/", view(self.step_type_reference), name="workflows_step_type_reference"
            ),
            path("editor-check/", view(partial(editor_check_view, self)), name="workflows_check"),
            path(
                "<path:object_id>/versions/<int:number>/publish/",
                view(partial(version_publish_view, self)),
                name="workflows_workflow_publish",
            ),
            *super().get_urls(),
        ]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        context = {
            "step_editor": editor_types(),
            "versions_shown": VERSIONS_SHOWN,
            **(extra_context or {}),
        }
        return super().change_view(request, object_id, form_url, context)

    def add_view(self, request, form_url="", extra_context=None):
        context = {"step_editor": editor_types(), **(extra_context or {})}
        return super().add_view(request, form_url, context)

    def step_type_reference(self, request):
        context = {
            **self.admin_site.each_context(request),
            "title": "Step type reference",
            "step_types": [_describe(step_type) for step_type in registry],
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "admin/workflows/step_type_reference.html", context)

    def save_model(self, request, obj, form, change):
        if not change:
            obj.created_by = request.user
        obj.save()

    def save_formset(self, request, form, formset, change):
        if isinstance(formset, StepFormSet):
            # Steps go through the service: validated again, versioned, snapshotted.
            services.workflow_update(
                workflow_id=form.instance.pk,
                steps=formset.cleaned_steps,
                updated_by=request.user,  # the version's author, as the API's edits name theirs
            )
            # The admin's change message reads these; the service replaced the rows itself.
            formset.new_objects, formset.changed_objects, formset.deleted_objects = [], [], []
        else:
            formset.save()


def _describe(step_type) -> dict:
    return {
        "type": step_type.type,
        "name": step_type.name,
        "description": markdown_inline(step_type.description),
        "options": reference.options(step_type.config_schema),
        "example": json.dumps(step_type.example, indent=2),
    }
