import pytest
from rest_framework.test import APIClient

from tests.factories import make_entity_type, make_key
from tests.servers import start_llm, start_receiver
from tests.workers import start_worker


def pytest_collection_modifyitems(items):
    """The tests marked `long` first, each in its collection order: pytest-xdist hands the
    first tests out one per process in turn, so the long ones start at once side by side
    instead of one of them keeping a single process busy after the others are done."""
    items.sort(key=lambda item: item.get_closest_marker("long") is None)


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


@pytest.fixture(scope="session")
def celery_worker(django_db_setup, django_db_blocker, tmp_path_factory):
    """One real worker for the session, on the test database and Redis."""
    from config.celery import app

    with app.connection_for_write() as connection:
        for queue in ("celery", "waits"):  # leftovers of an earlier session
            connection.default_channel.queue_purge(queue)
    worker = start_worker(tmp_path_factory.mktemp("worker") / "worker.log")
    yield worker
    worker.stop()


@pytest.fixture
def receiver():
    """A webhook receiver on loopback."""
    found, server = start_receiver()
    yield found
    server.shutdown()


@pytest.fixture
def allow_loopback(settings):
    settings.OUTBOUND_ALLOWED_HOSTS = ["127.0.0.1"]
    settings.OUTBOUND_BACKOFF_S = 0.01


@pytest.fixture
def fresh_providers():
    """Provider clients are built once per process from settings; tests change settings."""
    from workflows import providers

    providers._instances.clear()
    yield
    providers._instances.clear()


@pytest.fixture
def openai_server(settings, fresh_providers):
    fake, server = start_llm("openai")
    settings.OPENAI_BASE_URL = fake.url + "/v1"
    settings.AI_BACKOFF_S = 0.01
    yield fake
    server.shutdown()


@pytest.fixture
def anthropic_server(settings, fresh_providers):
    fake, server = start_llm("anthropic")
    settings.ANTHROPIC_BASE_URL = fake.url
    settings.AI_BACKOFF_S = 0.01
    yield fake
    server.shutdown()
