from rest_framework import permissions

from config.api.models import ApiKey


class ModelPermissions(permissions.DjangoModelPermissions):
    """The key's user needs the model permission for the action; a read-only key only reads;
    an events-only key reaches only the views that say `events_only_keys = True` (the events').

    Reads need `view_<model>`. A view may name the permissions of a custom action in
    `action_permissions = {"run": ["jobs.add_run"]}`, and list in `reading_actions` the
    actions that are POSTs but write nothing (an estimate), which a read-only key may ask.
    """

    perms_map = {
        **permissions.DjangoModelPermissions.perms_map,
        "GET": ["%(app_label)s.view_%(model_name)s"],
        "HEAD": ["%(app_label)s.view_%(model_name)s"],
    }

    def has_permission(self, request, view):
        if not request.user or not request.user.is_authenticated:
            return False
        if (
            isinstance(request.auth, ApiKey)
            and request.auth.events_only
            and not getattr(view, "events_only_keys", False)
        ):
            return False
        if (
            isinstance(request.auth, ApiKey)
            and request.auth.read_only
            and request.method not in permissions.SAFE_METHODS
            and getattr(view, "action", None) not in getattr(view, "reading_actions", ())
        ):
            return False
        action_perms = getattr(view, "action_permissions", {}).get(getattr(view, "action", None))
        if action_perms is not None:
            return request.user.has_perms(action_perms)
        return super().has_permission(request, view)

    def _queryset(self, view):
        """The view's model, from its `queryset` attribute where it has one: DRF would call
        `get_queryset()`, building (and validating the filters of) the list query twice."""
        if getattr(view, "queryset", None) is not None:
            return view.queryset
        return super()._queryset(view)
