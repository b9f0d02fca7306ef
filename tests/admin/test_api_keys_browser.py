"""Staff make an events-only API key in the admin, starting at the index (a real Chromium):
the key sends and lists events, and gets 403 everywhere else."""

import pytest

from config.api.models import ApiKey
from tests.admin.browsing import PAGE_TIMEOUT_MS, require_chromium
from tests.conftest import Api

require_chromium()
pytestmark = pytest.mark.django_db(transaction=True)
PASSWORD = "pw-for-browser-1"


@pytest.fixture
def page(browser, live_server, django_user_model):
    django_user_model.objects.create_superuser("staff", "s@example.com", PASSWORD)
    context = browser.new_context(base_url=live_server.url, viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(PAGE_TIMEOUT_MS)
    page.goto("/admin/login/")
    page.fill("#id_username", "staff")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url("**/admin/")
    yield page
    context.close()


def test_staff_make_an_events_only_key_that_sends_events_and_nothing_else(page):
    page.click("a[href$='/admin/api/apikey/add/']")
    page.fill("#id_name", "translation agency")
    page.check("#id_events_only")
    page.click("input[name=_save]")
    raw_key = page.text_content("#new-api-key")

    key = ApiKey.objects.get(name="translation agency")
    assert key.events_only and not key.read_only and raw_key.startswith(key.prefix)
    sender = Api(raw_key)
    sent = sender.post("/api/v1/events", {"name": "translation.done", "key": "sku-1"})
    assert sent.status_code == 200 and sent.json()["matched"] == 0
    assert sender.get("/api/v1/events?name=translation.done").status_code == 200
    # Its user is a superuser: the key, not the user, keeps it to events.
    for path in ["/api/v1/entities", "/api/v1/workflows", "/api/v1/jobs", "/api/v1/reviews"]:
        assert sender.get(path).status_code == 403, path
    assert sender.post("/api/v1/entity-types", {"name": "t", "schema": {}}).status_code == 403
    assert sender.get("/metrics").status_code == 403


def test_a_key_cannot_be_both_read_only_and_events_only(page):
    page.goto("/admin/api/apikey/add/")
    page.check("#id_read_only")
    page.check("#id_events_only")
    page.click("input[name=_save]")
    assert "read-only or events-only, not both" in page.text_content("#content")
    assert not ApiKey.objects.exists()
