from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import quote, unquote
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import QuerySet
from django.shortcuts import get_object_or_404, redirect
from django.urls import path

from config.admin_mixins import (
    BoundedJSONMixin,
    CreateOnlyFieldsMixin,
    LargeListMixin,
    ProtectedDeleteMixin,
)
from config.api.errors import Conflict, DomainError
from config.api.templatetags.admin_values import VALUE_CHARS_SHOWN, as_json_text, cut_text
from config.digits import whole_number
from entities.models import Entity, EntityRevision, EntityType
from entities.revisions import RevisionSource, Source
from entities.schemas import data_problems, data_validator, schema_problems
from entities.selectors import entity_type_users
from entities.services import (
    entities_delete,
    entity_delete,
    entity_lock_as_opened,
    entity_restore,
    entity_save,
    entity_type_in_use_message,
)

REVISIONS_SHOWN = 50
# The history shows each value cut to VALUE_CHARS_SHOWN, and stops adding changes once it
# has shown HISTORY_CHARS_SHOWN characters (each change's field and values, and a row's
# markup): an entity whose large fields were edited fifty times is a page of about a
# megabyte, not forty. A revision opened alone (`?revision=<version>`) shows its changes
# whole, as the API's `GET /entities/:id/revisions/:version` does.
HISTORY_CHARS_SHOWN = 500_000
# What a change's row costs of that budget beyond its text (its markup): many small fields
# changed fifty times are bounded too.
CHANGE_ROW_CHARS = 100


def _text(change: dict, side: str) -> str:
    """One side of a change as the history shows it (absent: a dash)."""
    return as_json_text(change[side], indent=1) if side in change else "—"


def _history(revisions: list[EntityRevision], *, whole: bool) -> list[dict]:
    """Each revision with what it changed, side by side, and who or what made it. Unless
    `whole`: each value cut to VALUE_CHARS_SHOWN (`cut` says so), and the changes past
    HISTORY_CHARS_SHOWN in all left out (`hidden` counts them), the revisions still listed."""
    left = HISTORY_CHARS_SHOWN
    entries = []
    for revision in revisions:
        changes = []
        for change in revision.changes:
            if not whole and left == 0:
                break
            before, after = _text(change, "before"), _text(change, "after")
            cut = not whole and max(len(before), len(after)) > VALUE_CHARS_SHOWN
            if not whole:
                before, after = cut_text(before), cut_text(after)
                size = len(change["field"]) + len(before) + len(after) + CHANGE_ROW_CHARS
                if size > left:
                    left = 0
                    break
                left -= size
            changes.append({"field": change["field"], "before": before, "after": after, "cut": cut})
        entries.append(
            {
                "revision": revision,
                "source": RevisionSource.of_revision(revision).as_json(),
                "changes": changes,
                "hidden": len(revision.changes) - len(changes),
            }
        )
    return entries


class EntityTypeForm(forms.ModelForm):
    """The API's checks of a schema, as form errors."""

    def clean_schema(self):
        schema = self.cleaned_data.get("schema")
        problems = schema_problems(schema)
        if problems:
            raise ValidationError([f"{p.field}: {p.message}" for p in problems])
        return schema


@admin.register(EntityType)
class EntityTypeAdmin(ProtectedDeleteMixin, BoundedJSONMixin, admin.ModelAdmin):
    form = EntityTypeForm
    list_display = ["name", "id", "description", "created_at"]
    search_fields = ["id", "name"]

    def get_deleted_objects(self, objs, request):
        """Refuse, naming what uses each type (a bounded list), like the API's 409 `in_use`:
        Django's own page would list every protecting entity, a million rows."""
        protected = [
            f"{entity_type}: {entity_type_in_use_message(users)}"
            for entity_type in objs
            if (users := entity_type_users(entity_type=entity_type))
        ]
        if protected:
            return [], {}, set(), protected
        return super().get_deleted_objects(objs, request)


class EntityForm(forms.ModelForm):
    """The API's checks of entity data (its type's schema, the size limit, storable text), as
    form errors. A change form carries the version it showed (`opened_version`): its `data` is
    saved whole, so a save after anything else wrote the entity (a run, the API, another
    person) is refused, naming why, rather than undoing that write."""

    opened_version = forms.IntegerField(widget=forms.HiddenInput, required=False)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.fields["opened_version"].required = True
            self.fields["opened_version"].initial = self.instance.version

    def clean_published_at(self):
        """The stored time where the form sent it back as shown: the form shows whole
        seconds, a run's publish stores microseconds, and a save (of anything) moved the
        publication time back by the fraction, recorded as a change of it."""
        value = self.cleaned_data.get("published_at")
        stored = self.instance.published_at if self.instance.pk else None
        if value is not None and stored is not None and value == stored.replace(microsecond=0):
            return stored
        return value

    def clean(self):
        cleaned = super().clean()
        opened = cleaned.get("opened_version")
        if self.instance.pk and opened is not None:
            # Locks the row until the admin's transaction (this request's) ends with the save.
            try:
                entity_lock_as_opened(entity_id=self.instance.pk, opened_version=opened)
            except Conflict as exc:
                raise ValidationError(exc.message, code=exc.code) from None
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
class EntityAdmin(BoundedJSONMixin, CreateOnlyFieldsMixin, LargeListMixin, admin.ModelAdmin):
    """Entities; `jobs.start_admin` adds the "Run workflow…" action (the engine's)."""

    form = EntityForm
    list_display = ["id", "entity_type", "status", "version", "published_at", "updated_at"]
    list_filter = ["entity_type", "status"]
    search_fields = ["id", "data"]
    readonly_fields = ["id", "version", "created_at", "updated_at"]
    # Its data was checked against this type's schema; the API keeps it too.
    create_only_fields = ["entity_type"]
    list_select_related = ["entity_type"]

    change_form_template = "admin/entities/entity/change_form.html"

    # Deleting goes through the service (rows locked, as the API's DELETE): a run's commit
    # of an entity being deleted would otherwise write a revision of nothing.
    def delete_model(self, request, obj):
        entity_delete(entity=obj)

    def delete_queryset(self, request, queryset):
        entities_delete(entities=queryset)

    DELETE_LISTED = 20
    # The list's "Delete" takes at most this many entities at once: each is read into memory
    # and deleted in this request (100,000 took 7 s and 240 MB more; "Select all" of a
    # million, the worker's memory and the request's timeout).
    DELETED_AT_ONCE = 10_000

    def get_deleted_objects(self, objs, request):
        """What a delete takes, counted, naming the first DELETE_LISTED entities: Django's
        page lists every revision of every entity selected (an entity edited 10,000 times
        is 10,000 lines; a selection across pages, millions)."""
        if not isinstance(objs, QuerySet):  # the one entity of its own delete page
            objs = Entity.objects.filter(pk__in=[entity.pk for entity in objs])
        queryset = objs
        count = queryset.count()
        if count > self.DELETED_AT_ONCE:
            refused = (
                f"{count:,} entities are selected: the admin deletes {self.DELETED_AT_ONCE:,} "
                "at most at once (narrow the list with a filter or a search)."
            )
            return [], {}, set(), [refused]
        revisions = EntityRevision.objects.filter(entity_id__in=queryset.values("pk")).count()
        listed = [str(entity) for entity in queryset.order_by("pk")[: self.DELETE_LISTED]]
        if count > len(listed):
            listed.append(f"and {count - len(listed):,} more")
        listed.append(f"their history: {revisions:,} revisions")
        counts = {"entities": count, "revisions": revisions}
        return listed, counts, set(), []

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path(
                "<str:entity_id>/restore/<int:version>/",
                view(self.restore_view),
                name="entities_entity_restore",
            ),
            *super().get_urls(),
        ]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        """The entity's form, and below it its history: each revision kept, newest first,
        REVISIONS_SHOWN at a time (`?before=<version>`: the older ones, a link away), with
        what it changed side by side (cut; `?revision=<version>`: that one, whole) and who or
        what made it, and a restore button."""
        revisions = EntityRevision.objects.filter(entity_id=unquote(object_id))
        number = whole_number(request.GET.get("revision", ""))
        whole = number is not None
        before = None if whole else whole_number(request.GET.get("before", "")) or None
        if whole:  # one revision alone, its values whole
            revisions = revisions.filter(version=number)
        elif before is not None:
            revisions = revisions.filter(version__lt=before)
        # Newest version first, as the API pages them: read from the (entity, version) index,
        # 51 rows whatever the entity has (by id, every revision of the entity was read and
        # sorted, or the table walked back from its newest id until 51 of them were found).
        shown = list(revisions.order_by("-version")[: REVISIONS_SHOWN + 1])
        older = shown[REVISIONS_SHOWN - 1].version if len(shown) > REVISIONS_SHOWN else None
        context = {
            "revisions": _history(shown[:REVISIONS_SHOWN], whole=whole),
            "revisions_shown": REVISIONS_SHOWN,
            "revisions_older": older,
            "revisions_before": before,
            "one_revision": whole,
            "value_chars_shown": VALUE_CHARS_SHOWN,
            "can_restore": request.user.has_perm("entities.change_entity"),
            **(extra_context or {}),
        }
        return super().change_view(request, object_id, form_url, context)

    def restore_view(self, request, entity_id, version):
        """Restore a version (POST), as the API's restore does; back to the entity's page.
        Staff who may not view entities are refused before the entity is looked up (its
        404 or redirect would tell them whether it exists), and those who may not change
        them are refused the POST."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        entity = get_object_or_404(Entity, pk=unquote(entity_id))
        if request.method == "POST":
            if not self.has_change_permission(request, entity):
                raise PermissionDenied
            try:
                was = entity.version
                entity = entity_restore(
                    entity_id=entity.pk,
                    version=version,
                    source=RevisionSource.of_request(request, Source.RESTORE),
                )
                self.message_user(
                    request,
                    f"Version {version} restored as version {entity.version}."
                    if entity.version != was
                    else f"The entity is as version {version} was already: nothing to restore.",
                )
            except DomainError as exc:
                self.message_user(request, exc.message, messages.ERROR)
        return redirect("admin:entities_entity_change", quote(entity.pk))

    def save_model(self, request, obj, form, change):
        entity_save(
            entity=obj,
            created=not change,
            opened_version=form.cleaned_data.get("opened_version"),
            source=RevisionSource.of_request(request, Source.ADMIN),
        )
