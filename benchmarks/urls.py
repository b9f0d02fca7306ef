from django.urls import path
from rest_framework.response import Response
from rest_framework.views import APIView

from config.api.permissions import ModelPermissions
from config.urls import urlpatterns as product_urlpatterns
from workflows.models import Workflow


class TrivialView(APIView):
    """The floor for an authenticated DRF GET: same key lookup and permission check, no work."""

    queryset = Workflow.objects.none()
    permission_classes = [ModelPermissions]

    def get(self, request):
        return Response([])


urlpatterns = [path("bench/trivial", TrivialView.as_view()), *product_urlpatterns]
