"""Every kind of wait's API routes, in one list the root URLconf includes under /api/v1/."""

from django.urls import include, path

from jobs.waits.base import kinds

urlpatterns = [path("", include(kind.urls)) for kind in kinds if kind.urls]
