import pytest
from rest_framework.test import APIClient

from tests.factories import make_entity_type, make_key


class Api(APIClient):
    """An API client that speaks JSON and carries a bearer key."""

    def __init__(self, key: str | None = None):
        super().__init__()
        if key:
            self.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")

    def post(self, path, data=None, **extra):
        return super().post(path, data, format="json", **extra)

    def patch(self, path, data=None, **extra):
        return super().patch(path, data, format="json", **extra)


@pytest.fixture
def api(db) -> Api:
    return Api(make_key())


@pytest.fixture
def read_only_api(db) -> Api:
    return Api(make_key(read_only=True))


@pytest.fixture
def anonymous() -> Api:
    return Api()


@pytest.fixture
def product_type(db):
    return make_entity_type()
