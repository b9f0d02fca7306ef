"""Behaviour shared by the apps' ModelAdmins."""

from django.conf import settings
from django.contrib import messages
from django.contrib.admin.views.main import ORDER_VAR, PAGE_VAR, SEARCH_VAR
from django.db import IntegrityError, models
from django.db.models import ProtectedError
from django.http import HttpResponseRedirect

from config.admin_paginator import EstimatedCountPaginator
from config.forms import BoundedJSONField
from config.time_limit import TooSlow, time_limited


class BoundedJSONMixin:
    """The model's JSON fields edited with BoundedJSONField: the API's depth and storable
    text bounds, as form errors."""

    formfield_overrides = {models.JSONField: {"form_class": BoundedJSONField}}


class CreateOnlyFieldsMixin:
    """Fields chosen when an object is created and fixed after it, as the API keeps them: editable
    on the add form, read-only on the change form. Django builds the change form without a
    read-only field, so a forged POST naming it changes nothing either."""

    create_only_fields: tuple[str, ...] = ()

    def get_readonly_fields(self, request, obj=None):
        readonly = list(super().get_readonly_fields(request, obj))
        if obj is not None:
            readonly += [name for name in self.create_only_fields if name not in readonly]
        return readonly


class ProtectedDeleteMixin:
    """A delete refused after the delete page checked it (a run or a workflow came to use
    the object between the check and the delete): a message on the page the delete was asked
    from, nothing deleted, where Django answered a 500. Refused by Django's collector
    (`ProtectedError`) when the user came before it looked, by the foreign key at COMMIT
    (`IntegrityError`) when it came after. The page's check (`get_deleted_objects`) says why
    on its own in every other case."""

    def delete_view(self, request, object_id, extra_context=None):
        try:
            return super().delete_view(request, object_id, extra_context)
        except (ProtectedError, IntegrityError):
            return self._refused(request)

    def changelist_view(self, request, extra_context=None):
        try:  # the "delete selected" action
            return super().changelist_view(request, extra_context)
        except (ProtectedError, IntegrityError):
            return self._refused(request)

    def _refused(self, request):
        self.message_user(
            request,
            f"Nothing was deleted: something came to use the {self.opts.verbose_name} as it "
            "was deleted. Reload the page to see what uses it.",
            messages.ERROR,
        )
        return HttpResponseRedirect(request.get_full_path())


class LargeListMixin:
    """A list of a table that grows with use (entities, run records, events): a filtered page
    counts its matches only (not the whole table again for "N results (M total)"), and an
    unfiltered one counts the table by its estimate once it is large.

    A search reads what it could match (a text in every entity's data: seconds at a million
    rows), an ordering by a column no index keeps sorts the whole list, and a page far down
    reads every row before it (its OFFSET): with any of them, the list's statements stop
    after ADMIN_SEARCH_TIMEOUT_S, and the list is shown again without them, its filters
    kept, saying so. (Only the list's GET: an action posted from it writes, unlimited.)"""

    show_full_result_count = False
    paginator = EstimatedCountPaginator
    # What may make a list read far more than its page: a search, an ordering, a page number.
    LIMITED = {SEARCH_VAR: "search", ORDER_VAR: "ordering", PAGE_VAR: "page"}

    def changelist_view(self, request, extra_context=None):
        asked = [name for name in self.LIMITED if request.GET.get(name)]
        if not asked or request.method != "GET":  # an action's POST writes: not limited
            return super().changelist_view(request, extra_context)
        try:
            with time_limited(settings.ADMIN_SEARCH_TIMEOUT_S):
                response = super().changelist_view(request, extra_context)
                if hasattr(response, "render"):  # its page is read as the template renders
                    response.render()
                return response
        except TooSlow:
            what = " and ".join(self.LIMITED[name] for name in asked)
            if SEARCH_VAR in asked:
                what = f"{what} (for {request.GET[SEARCH_VAR][:100]!r})"
            self.message_user(
                request,
                f"The list's {what} took more than {settings.ADMIN_SEARCH_TIMEOUT_S:g} seconds "
                "and was stopped: narrow the list with a filter first, or search for an exact "
                "id.",
                messages.ERROR,
            )
            plain = request.GET.copy()
            for name in asked:
                del plain[name]
            return HttpResponseRedirect(f"{request.path}?{plain.urlencode()}")
