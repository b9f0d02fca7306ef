from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from config.api.serializers import validated
from jobs.waits.review import selectors
from jobs.waits.review import services as reviews
from jobs.waits.review.models import Review
from jobs.waits.review.serializers import (
    ReviewApproveSerializer,
    ReviewDecidedSerializer,
    ReviewDecideSerializer,
    ReviewListQuerySerializer,
    ReviewRejectSerializer,
    ReviewSerializer,
)

# A review holds entity data (`proposed`, `current`, `changes`, instructions rendered from
# the entity): reading one, or an answer that holds one, takes the right to read entities.
READ = ["jobs.view_review", "entities.view_entity"]
DECIDE = ["jobs.decide_review", "entities.view_entity"]


@extend_schema_view(
    list=extend_schema(summary="List reviews", parameters=[ReviewListQuerySerializer]),
    retrieve=extend_schema(summary="Get a review"),
)
class ReviewViewSet(viewsets.ReadOnlyModelViewSet):
    """Reviews asked for by `review` steps: read them, approve (with edits) or reject them."""

    serializer_class = ReviewSerializer
    queryset = Review.objects.none()
    action_permissions = {
        "list": READ,
        "retrieve": READ,
        "approve": DECIDE,
        "reject": DECIDE,
        "decide": ["jobs.decide_review"],  # answers ids only
    }

    def get_queryset(self):
        if self.action != "list":
            return selectors.review_list()
        query = validated(ReviewListQuerySerializer, self.request.query_params)
        return selectors.review_list(
            status=query.get("status"),
            run_id=query.get("runId"),
            workflow_id=query.get("workflowId"),
            entity_id=query.get("entityId"),
        )

    def get_object(self):
        return selectors.review_get(review_id=self.kwargs["pk"])

    def _render(self, reviews: list[Review], *, many: bool):
        current = selectors.entities_data(entity_ids=[review.entity_id for review in reviews])
        serializer = ReviewSerializer(reviews if many else reviews[0], many=many)
        serializer.context["current"] = current
        return serializer.data

    def list(self, request, *args, **kwargs):
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(self._render(page, many=True))

    def retrieve(self, request, *args, **kwargs):
        return Response(self._render([self.get_object()], many=False))

    @extend_schema(
        summary="Approve a review (with edits)",
        request=ReviewApproveSerializer,
        responses=ReviewSerializer,
    )
    @action(detail=True, methods=["post"])
    def approve(self, request, pk=None):
        data = validated(ReviewApproveSerializer, request.data)
        review = reviews.review_decide(
            review_id=pk,
            decision="approve",
            user=request.user,
            comment=data.get("comment", ""),
            data=data.get("data"),
        )
        return Response(self._render([selectors.review_get(review_id=review.pk)], many=False))

    @extend_schema(
        summary="Reject a review", request=ReviewRejectSerializer, responses=ReviewSerializer
    )
    @action(detail=True, methods=["post"])
    def reject(self, request, pk=None):
        data = validated(ReviewRejectSerializer, request.data)
        review = reviews.review_decide(
            review_id=pk, decision="reject", user=request.user, comment=data.get("comment", "")
        )
        return Response(self._render([selectors.review_get(review_id=review.pk)], many=False))

    @extend_schema(
        summary="Approve or reject many reviews at once",
        request=ReviewDecideSerializer,
        responses=ReviewDecidedSerializer,
    )
    @action(detail=False, methods=["post"])
    def decide(self, request):
        data = validated(ReviewDecideSerializer, request.data)
        decided = reviews.reviews_decide(
            review_ids=data["ids"],
            decision=data["decision"],
            user=request.user,
            comment=data.get("comment", ""),
        )
        return Response({"decided": decided.decided, "skipped": decided.skipped})
