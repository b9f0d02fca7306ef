from django.conf import settings
from django.contrib import messages
from django.http import HttpResponseRedirect, JsonResponse
from django.utils.cache import patch_cache_control

from config.api.exceptions import error_body
from config.api.storable import unstorable


class BodySizeLimitMiddleware:
    """A JSON 413 for an API request body over API_MAX_BODY_BYTES, before anything reads it.

    DRF's parsers read the request stream directly, past Django's DATA_UPLOAD_MAX_MEMORY_SIZE,
    so the limit is enforced here on the declared length.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.path.startswith("/api/"):
            try:
                length = int(request.META.get("CONTENT_LENGTH") or 0)
            except ValueError:
                length = 0
            limit = settings.API_MAX_BODY_BYTES
            if length > limit:
                return JsonResponse(
                    error_body(
                        "request_too_large",
                        f"The request body is {length} bytes; the limit is {limit}.",
                    ),
                    status=413,
                )
        return self.get_response(request)


class UnstorableUrlMiddleware:
    """A JSON 404 for a path, and a JSON 400 for a query parameter, holding text the database
    cannot store (`%00`, which decodes to NUL). Every id in a path and most query parameters
    become a query argument that PostgreSQL refuses, failing the request with a 500; no
    resource can have such an id, so one check here answers for every route (the admin's
    too) before anything looks the text up."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        problem = unstorable(request.path)
        if problem:
            message = f"No resource has this path: {problem.message}"
            return JsonResponse(error_body("not_found", message), status=404)
        for key, values in request.GET.lists():
            problem = unstorable(key, prefix="query") or next(
                filter(None, (unstorable(value, prefix=key) for value in values)), None
            )
            if problem:
                message = f"{problem.field}: {problem.message}"
                body = error_body("validation_error", message, [problem])
                return JsonResponse(body, status=400)
        return self.get_response(request)


class NoStoreMiddleware:
    """`Cache-Control: no-store` on every API and metrics answer: they hold a user's data and
    are answered per key, so no browser or proxy cache may keep them."""

    PREFIXES = ("/api/", "/metrics")

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if request.path.startswith(self.PREFIXES):
            patch_cache_control(response, no_store=True)
        return response


class UnstorableAdminPostMiddleware:
    """An admin form (or action, or decision) posting text the database cannot store (a NUL
    character: browsers send none, forged requests do) is not handled: it is answered with the
    page it came from and an error naming the field, nothing saved. Every admin form and
    page, present and future, is covered here, including those whose values reach a query
    before any form field checks them (an id, a choice of object, a selection). NUL in JSON
    (`\\u0000`) is a form error of the JSON field (config.forms.BoundedJSONField). Checked
    once the view is known, after the CSRF check."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_view(self, request, view_func, view_args, view_kwargs):
        if request.method != "POST" or not request.path.startswith("/admin/"):
            return None
        for key, values in request.POST.lists():
            problem = unstorable(key, prefix="form") or unstorable(values, prefix=key)
            if problem:
                field = problem.field.split("[")[0]
                messages.error(request, f"{field}: {problem.message} Nothing was saved.")
                return HttpResponseRedirect(request.get_full_path())
        return None
