"""The admin's cookies in production settings: session and CSRF cookies are `Secure`, and
messages wait in the session instead of a cookie of their own."""

import json
import subprocess
import sys

import pytest

from tests.processes import ROOT

READ_SETTINGS = (
    "import json; from django.conf import settings as s; "
    "print(json.dumps([s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE, s.MESSAGE_STORAGE]))"
)
SESSION_STORAGE = "django.contrib.messages.storage.session.SessionStorage"


@pytest.mark.parametrize(
    ("env", "secure"),
    [
        ({}, True),  # production: nothing set
        ({"DEBUG": "false"}, True),
        ({"DEBUG": "true"}, False),  # development over http://
        ({"SECURE_COOKIES": "false"}, False),
        ({"DEBUG": "true", "SECURE_COOKIES": "true"}, True),
    ],
)
def test_production_settings_make_the_cookies_secure(env, secure):
    result = subprocess.run(
        [sys.executable, "-c", READ_SETTINGS],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={
            "PATH": "/usr/bin:/bin",
            "DJANGO_SETTINGS_MODULE": "config.settings.base",
            "SECRET_KEY": "a-key-of-the-tests-own",
            **env,
        },
        timeout=60,
        check=True,
    )
    assert json.loads(result.stdout) == [secure, secure, SESSION_STORAGE]


@pytest.mark.django_db
def test_the_admin_sets_secure_cookies_and_keeps_messages_out_of_cookies(client, django_user_model):
    django_user_model.objects.create_superuser("staff", "s@example.com", "pw-for-tests-1")
    login_page = client.get("/admin/login/")
    assert login_page.cookies["csrftoken"]["secure"] is True
    response = client.post(
        "/admin/login/?next=/admin/", {"username": "staff", "password": "pw-for-tests-1"}
    )
    assert response.status_code == 302
    assert response.cookies["sessionid"]["secure"] is True
    assert response.cookies["sessionid"]["httponly"] is True
    # An action with nothing selected answers with a message, on the page after a redirect.
    action = client.post("/admin/api/apikey/", {"action": "revoke", "index": "0"})
    assert action.status_code == 302 and "messages" not in action.cookies
    assert "Items must be selected" in client.get(action["Location"]).content.decode()
