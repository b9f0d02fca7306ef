"""API keys made in the admin: staff mint keys for themselves only (superusers for anyone), a
key's user is fixed, and the new key is shown once in the page, never carried in a cookie."""

import pytest
from django.contrib.auth.models import Permission
from django.contrib.messages.storage.cookie import CookieStorage
from django.http import HttpRequest
from django.test import Client

from config.api.models import KEY_PREFIX, ApiKey
from tests.conftest import Api

pytestmark = pytest.mark.django_db
PASSWORD = "pw-for-tests-1"


@pytest.fixture
def root(django_user_model):
    return django_user_model.objects.create_superuser("root", "r@example.com", PASSWORD)


@pytest.fixture
def clerk(django_user_model):
    """Staff with nothing but the permission to add API keys."""
    user = django_user_model.objects.create_user("clerk", "c@example.com", PASSWORD)
    user.is_staff = True
    user.save()
    user.user_permissions.add(Permission.objects.get(codename="add_apikey"))
    return user


def login(user) -> Client:
    client = Client()
    assert client.login(username=user.username, password=PASSWORD)
    return client


def create_key(client, user_pk, name="ci"):
    return client.post("/admin/api/apikey/add/", {"user": user_pk, "name": name})


def shown_key(response) -> str:
    return response.content.decode().split('<code id="new-api-key">')[1].split("</code>")[0]


def test_staff_see_only_themselves_in_the_key_form(clerk, root):
    html = login(clerk).get("/admin/api/apikey/add/").content.decode()
    assert f'<option value="{clerk.pk}" selected>clerk</option>' in html
    assert f'value="{root.pk}"' not in html and ">root<" not in html


def test_superusers_may_mint_a_key_for_anyone(root, clerk):
    html = login(root).get("/admin/api/apikey/add/").content.decode()
    assert f'value="{clerk.pk}"' in html and f'<option value="{root.pk}" selected>' in html
    response = create_key(login(root), clerk.pk)
    assert response.status_code == 200
    assert ApiKey.objects.get(name="ci").user == clerk


@pytest.mark.parametrize("target", ["root", "other_staff", "inactive", "no_such_user"])
def test_a_forged_post_naming_another_user_mints_no_key(clerk, root, django_user_model, target):
    others = {
        "root": root.pk,
        "other_staff": django_user_model.objects.create_user("o", is_staff=True).pk,
        "inactive": django_user_model.objects.create_user("i", is_active=False).pk,
        "no_such_user": 999_999,
    }
    response = create_key(login(clerk), others[target])
    assert response.status_code == 200
    assert "Select a valid choice" in response.content.decode()
    assert 'id="new-api-key"' not in response.content.decode()
    assert not ApiKey.objects.exists()


def test_a_key_staff_mint_is_theirs_and_acts_with_their_permissions_only(clerk, root):
    response = create_key(login(clerk), clerk.pk)
    key = shown_key(response)
    assert ApiKey.objects.get().user == clerk
    api = Api(key)
    assert api.get("/api/v1/schema").status_code == 200  # the key works ...
    assert api.get("/api/v1/workflows").status_code == 403  # ... as clerk, who may not list
    assert Api(key).get("/api/v1/entity-types").status_code == 403


def test_a_keys_user_cannot_be_changed_afterwards(root, clerk):
    create_key(login(root), clerk.pk)
    api_key = ApiKey.objects.get()
    change = f"/admin/api/apikey/{api_key.pk}/change/"
    html = login(root).get(change).content.decode()
    assert 'name="user"' not in html
    login(root).post(change, {"user": root.pk, "name": "renamed", "read_only": "on"})
    api_key.refresh_from_db()
    assert (api_key.user, api_key.name, api_key.read_only) == (clerk, "renamed", True)


def cookie_texts(response) -> list[str]:
    """Every cookie of the response as sent, and the messages cookie decoded as well."""
    texts = []
    for name, morsel in response.cookies.items():
        texts.append(morsel.value)
        if name == CookieStorage.cookie_name:
            texts += [m.message for m in CookieStorage(HttpRequest())._decode(morsel.value) or []]
    return texts


@pytest.mark.parametrize("button", [{}, {"_continue": "1"}, {"_addanother": "1"}])
def test_the_new_key_is_in_the_page_and_in_no_cookie_or_message(clerk, button):
    client = login(clerk)
    response = client.post("/admin/api/apikey/add/", {"user": clerk.pk, "name": "ci", **button})
    assert not any(KEY_PREFIX in text for text in cookie_texts(response))
    assert response.status_code == 200  # the page itself, not a redirect to another
    key = shown_key(response)
    assert key.startswith(KEY_PREFIX) and ApiKey.objects.get().matches(key)
    assert "no-store" in response["Cache-Control"]
    following = client.get("/admin/api/apikey/")
    assert key not in following.content.decode()
    assert not any(key in text for text in cookie_texts(following))
    assert key not in str(client.session.load())  # not waiting in the session's messages


def test_staff_who_may_change_keys_reach_only_their_own(clerk, root):
    """Someone else's key is neither listed, nor opened, renamed or revoked by staff, whatever
    their key permissions; superusers manage every key."""
    clerk.user_permissions.add(
        *Permission.objects.filter(codename__in=["change_apikey", "view_apikey"])
    )
    create_key(login(root), root.pk, name="root-key")
    create_key(login(clerk), clerk.pk, name="clerk-key")
    theirs, mine = ApiKey.objects.get(name="root-key"), ApiKey.objects.get(name="clerk-key")
    client = login(clerk)

    listed = client.get("/admin/api/apikey/").content.decode()
    assert "clerk-key" in listed and "root-key" not in listed
    assert client.get(f"/admin/api/apikey/{mine.pk}/change/").status_code == 200
    opened = client.get(f"/admin/api/apikey/{theirs.pk}/change/")
    assert opened.status_code == 302  # the admin's "does not exist" redirect to its index
    client.post(f"/admin/api/apikey/{theirs.pk}/change/", {"name": "renamed"})
    client.post(
        "/admin/api/apikey/",
        {"action": "revoke", "_selected_action": [theirs.pk, mine.pk]},
    )
    theirs.refresh_from_db(), mine.refresh_from_db()
    assert theirs.name == "root-key" and theirs.revoked_at is None
    assert mine.revoked_at is not None
    assert "root-key" in login(root).get("/admin/api/apikey/").content.decode()


def test_staff_who_may_only_view_keys_cannot_revoke_them(clerk):
    """Revoking cuts off whatever uses the key: it takes the permission to change keys, and
    the action is not offered without it."""
    clerk.user_permissions.add(Permission.objects.get(codename="view_apikey"))
    create_key(login(clerk), clerk.pk, name="clerk-key")
    key = ApiKey.objects.get(name="clerk-key")
    client = login(clerk)
    assert 'value="revoke"' not in client.get("/admin/api/apikey/").content.decode()
    client.post("/admin/api/apikey/", {"action": "revoke", "_selected_action": [key.pk]})
    key.refresh_from_db()
    assert key.revoked_at is None
