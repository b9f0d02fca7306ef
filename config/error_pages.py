"""Django's error handlers: the API's JSON error shape everywhere, except in the admin, where
staff read the answer in a browser and get the admin's own HTML page."""

from django.urls import reverse
from django.views import defaults

from config.api.exceptions import json_not_found, json_server_error


def _in_admin(request) -> bool:
    return request.path.startswith(reverse("admin:index"))


def not_found(request, exception=None):
    if _in_admin(request):
        return defaults.page_not_found(request, exception, template_name="admin/404.html")
    return json_not_found(request, exception)


def server_error(request):
    if _in_admin(request):
        return defaults.server_error(request, template_name="admin/500.html")
    return json_server_error(request)
