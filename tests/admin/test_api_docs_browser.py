"""/api/docs in a real headless Chromium: a visitor without an admin session is offered
*Authorize*, gives a key and sees the operations (kept across a reload); staff see them at
once; and neither the page nor the admin's pages break the Content-Security-Policy."""

import shutil

import pytest

from tests.admin.browsing import PAGE_TIMEOUT_MS
from tests.factories import make_key

pytestmark = pytest.mark.django_db(transaction=True)
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
PASSWORD = "pw-for-browser-1"

if CHROMIUM is None:  # .ci/run installs it; say so plainly anywhere else
    pytest.skip("Chromium is not installed (apt-get install chromium)", allow_module_level=True)


@pytest.fixture
def visitor(browser, live_server):
    """A page with no session, and the console messages that report a CSP violation."""
    context = browser.new_context(base_url=live_server.url)
    page = context.new_page()
    page.set_default_timeout(PAGE_TIMEOUT_MS)
    page.violations = []
    page.on(
        "console",
        lambda message: (
            "Content Security Policy" in message.text and page.violations.append(message.text)
        ),
    )
    yield page
    context.close()


OPERATION = ".opblock-summary-path[data-path='/api/v1/entities']"


def test_a_visitor_authorizes_the_api_docs_with_a_key(visitor):
    key = make_key()
    visitor.goto("/api/docs")
    visitor.locator("button.authorize").first.wait_for()
    assert visitor.locator(OPERATION).count() == 0  # no operation before a key
    visitor.locator("button.authorize").first.click()
    visitor.locator(".auth-container input").first.fill(key)
    visitor.locator(".auth-container button.authorize").first.click()
    visitor.locator("button.btn-done").first.click()
    visitor.locator(OPERATION).first.wait_for()

    visitor.reload()  # the key is kept
    visitor.locator(OPERATION).first.wait_for()
    assert visitor.violations == []


def test_a_wrong_key_leaves_the_page_offering_authorize(visitor):
    visitor.goto("/api/docs")
    visitor.locator("button.authorize").first.click()
    visitor.locator(".auth-container input").first.fill("wk_not-a-key")
    visitor.locator(".auth-container button.authorize").first.click()
    visitor.locator("button.btn-done").first.click()
    visitor.wait_for_timeout(1000)
    assert visitor.locator(OPERATION).count() == 0
    assert visitor.locator("button.authorize").count() >= 1


def test_staff_see_the_operations_and_admin_pages_keep_the_policy(visitor, django_user_model):
    django_user_model.objects.create_superuser("staff", "s@example.com", PASSWORD)
    visitor.goto("/admin/login/")
    visitor.fill("#id_username", "staff")
    visitor.fill("#id_password", PASSWORD)
    visitor.click("input[type=submit]")
    visitor.wait_for_url("**/admin/")
    visitor.goto("/api/docs")
    visitor.locator(OPERATION).first.wait_for()
    for path in (
        "/admin/",
        "/admin/workflows/workflow/add/",
        "/admin/jobs/run/",
        "/admin/jobs/review/",
        "/admin/entities/entity/",
    ):
        response = visitor.goto(path)
        assert response.status == 200, path
        assert "script-src" in response.headers["content-security-policy"]
    visitor.goto("/admin/workflows/workflow/add/")
    visitor.select_option("#id_steps-0-type", "ai_generate")  # an inline script with the nonce
    assert '"outputField"' in visitor.input_value("#id_steps-0-config")
    assert visitor.violations == []
