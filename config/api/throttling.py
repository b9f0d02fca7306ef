from django.conf import settings
from rest_framework.throttling import SimpleRateThrottle

from config.api.models import ApiKey


class ApiKeyRateThrottle(SimpleRateThrottle):
    """Requests per API key (per user for admin sessions), counted in the shared cache
    (Redis in production), so the limit holds across every web process and machine."""

    scope = "api_key"

    def get_rate(self):
        return settings.API_RATE_LIMIT or None

    def get_cache_key(self, request, view):
        if isinstance(request.auth, ApiKey):
            return f"throttle:key:{request.auth.pk}"
        if request.user and request.user.is_authenticated:
            return f"throttle:user:{request.user.pk}"
        return None  # unauthenticated requests are refused before they cost anything
