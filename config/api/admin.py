from django.contrib import admin
from django.contrib.auth import get_user_model
from django.template.response import TemplateResponse
from django.utils.cache import patch_cache_control

from config.admin_mixins import CreateOnlyFieldsMixin
from config.api.models import ApiKey
from config.api.services import api_key_issue, api_key_revoke


@admin.register(ApiKey)
class ApiKeyAdmin(CreateOnlyFieldsMixin, admin.ModelAdmin):
    """Keys act with their user's permissions, so staff mint, see, rename and revoke keys of
    their own only (superusers anyone's), and a key's user is fixed once it exists."""

    list_display = [
        "prefix",
        "name",
        "user",
        "read_only",
        "events_only",
        "created_at",
        "last_used_at",
        "revoked_at",
    ]
    list_filter = ["read_only", "events_only", ("revoked_at", admin.EmptyFieldListFilter)]
    search_fields = ["prefix", "name", "user__username"]
    fields = [
        "user",
        "name",
        "read_only",
        "events_only",
        "prefix",
        "created_at",
        "last_used_at",
        "revoked_at",
    ]
    readonly_fields = ["prefix", "created_at", "last_used_at", "revoked_at"]
    create_only_fields = ["user"]
    actions = ["revoke"]

    def get_queryset(self, request):
        keys = super().get_queryset(request)
        return keys if request.user.is_superuser else keys.filter(user=request.user)

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "user":
            kwargs["initial"] = request.user.pk
            if not request.user.is_superuser:
                # The only choice, so a POST naming anyone else is "not one of the choices".
                kwargs["queryset"] = get_user_model().objects.filter(pk=request.user.pk)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def save_model(self, request, obj, form, change):
        if change:
            super().save_model(request, obj, form, change)
            return
        # Kept on this instance only, for the page response_add renders; never stored.
        obj.raw_key = api_key_issue(api_key=obj)

    def response_add(self, request, obj, post_url_continue=None):
        """The new key, shown once in this response: not a redirect with a message, which would
        carry it in the message storage (a cookie by default) to the next page."""
        context = {
            **self.admin_site.each_context(request),
            "title": "API key created",
            "opts": self.opts,
            "api_key": obj,
            "raw_key": obj.raw_key,
        }
        response = TemplateResponse(request, "admin/api/apikey/created.html", context)
        patch_cache_control(response, no_store=True, private=True)
        return response

    @admin.action(description="Revoke the selected keys", permissions=["change"])
    def revoke(self, request, queryset):
        keys = list(queryset.filter(revoked_at__isnull=True))
        for api_key in keys:
            api_key_revoke(api_key=api_key)
        count = len(keys)
        self.message_user(request, f"Revoked {count} key(s).")
