"""The Events API's routes (`/api/v1/events`), gathered by `jobs.waits.urls`."""

from rest_framework.routers import SimpleRouter

from jobs.waits.event.views import EventViewSet

router = SimpleRouter(trailing_slash=False)
router.register("events", EventViewSet, basename="event")

urlpatterns = router.urls
