"""The Reviews API's routes (`/api/v1/reviews...`), gathered by `jobs.waits.urls`."""

from rest_framework.routers import SimpleRouter

from jobs.waits.review.views import ReviewViewSet

router = SimpleRouter(trailing_slash=False)
router.register("reviews", ReviewViewSet, basename="review")

urlpatterns = router.urls
