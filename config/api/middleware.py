from django.conf import settings
from django.http import JsonResponse

from config.api.exceptions import error_body


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
