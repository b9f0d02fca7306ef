import pytest
from django.core.management import call_command

from config.api.models import ApiKey, hash_key
from config.api.services import api_key_revoke
from tests.conftest import Api
from tests.factories import make_key

pytestmark = pytest.mark.django_db


def test_request_without_key_gets_401_with_error_shape(anonymous):
    response = anonymous.get("/api/v1/entities")
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Bearer"
    assert response.json()["error"]["code"] == "not_authenticated"


def test_request_with_unknown_key_gets_401():
    response = Api("wfk_not-a-real-key").get("/api/v1/entities")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "authentication_failed"


def test_revoked_key_is_refused_immediately():
    raw = make_key()
    client = Api(raw)
    assert client.get("/api/v1/entities").status_code == 200
    api_key_revoke(api_key=ApiKey.objects.get(hashed_key=hash_key(raw)))
    assert client.get("/api/v1/entities").status_code == 401


def test_key_is_stored_hashed_and_records_last_use():
    raw = make_key()
    api_key = ApiKey.objects.get(hashed_key=hash_key(raw))
    assert raw not in {api_key.hashed_key, api_key.prefix, api_key.name}
    assert api_key.last_used_at is None
    Api(raw).get("/api/v1/entities")
    api_key.refresh_from_db()
    assert api_key.last_used_at is not None


def test_read_only_key_reads_but_cannot_write(read_only_api, product_type):
    assert read_only_api.get("/api/v1/entities").status_code == 200
    response = read_only_api.post(
        "/api/v1/entities", {"entityTypeId": product_type.id, "data": {"title": "x"}}
    )
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "permission_denied"


def test_key_of_user_without_model_permission_gets_403(django_user_model):
    from config.api.services import api_key_create

    user = django_user_model.objects.create(username="nobody")
    raw = api_key_create(user=user)[1]
    assert Api(raw).get("/api/v1/entities").status_code == 403


def test_create_api_key_command_prints_only_a_working_key(capsys, product_type):
    call_command("create_api_key", "ops")
    raw = capsys.readouterr().out.strip()
    assert raw.startswith("wfk_") and "\n" not in raw
    response = Api(raw).post(
        "/api/v1/entities", {"entityTypeId": product_type.id, "data": {"title": "x"}}
    )
    assert response.status_code == 201


def test_create_api_key_command_read_only(capsys, product_type):
    call_command("create_api_key", "auditor", "--read-only")
    client = Api(capsys.readouterr().out.strip())
    assert client.get("/api/v1/entity-types").status_code == 200
    assert client.post("/api/v1/entity-types", {"name": "x"}).status_code == 403


def test_an_admin_session_reads_the_api_in_json_and_html_is_not_offered(client, django_user_model):
    """The API answers JSON only (no browsable HTML API: the admin is the UI): a browser's
    Accept header gets JSON, one asking for HTML alone a JSON 406."""
    django_user_model.objects.create_superuser("admin", "a@example.com", "pw-for-tests-1")
    client.login(username="admin", password="pw-for-tests-1")
    browser = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
    response = client.get("/api/v1/entities", HTTP_ACCEPT=browser)
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json" and response.json() == []
    response = client.get("/api/v1/entities", HTTP_ACCEPT="text/html")
    assert response.status_code == 406
    assert response.json()["error"]["code"] == "not_acceptable"
