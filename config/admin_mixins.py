"""Behaviour shared by the apps' ModelAdmins."""

from django.db import models

from config.admin_paginator import EstimatedCountPaginator
from config.forms import BoundedJSONField


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


class LargeListMixin:
    """A list of a table that grows with use (entities, run records, events): a filtered page
    counts its matches only (not the whole table again for "N results (M total)"), and an
    unfiltered one counts the table by its estimate once it is large."""

    show_full_result_count = False
    paginator = EstimatedCountPaginator
