"""A key's permissions are read once between changes (config.api.auth_backends), and every
change to them is seen at the next request: through the models, through the admin's user
page, and when a request read them while the change was not yet committed."""

import threading

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from config.api.auth_backends import CachedModelBackend
from config.api.models import ApiKey
from tests.conftest import Api
from tests.factories import make_key

STEP_TYPES = "/api/v1/step-types"


def _permission_queries(api: Api) -> tuple[int, int]:
    """(status, queries reading permissions) of a GET of the step types."""
    with CaptureQueriesContext(connection) as queries:
        status = api.get(STEP_TYPES).status_code
    return status, sum("auth_permission" in query["sql"] for query in queries.captured_queries)


def _key_of(perms: list[str]) -> tuple[Api, object]:
    raw = make_key(perms=perms)
    return Api(raw), ApiKey.objects.get(prefix=raw[:12]).user


@pytest.mark.django_db
def test_a_keys_permissions_are_read_once_between_changes():
    api, _user = _key_of(["workflows.view_workflow"])
    assert _permission_queries(api) == (200, 2)  # the user's own and their groups'
    assert _permission_queries(api) == (200, 0)
    assert _permission_queries(api) == (200, 0)


@pytest.mark.django_db
def test_without_a_shared_cache_they_are_read_on_each_request(settings):
    settings.PERMISSIONS_CACHE_S = 0  # the embedded defaults: each process's own memory
    api, _user = _key_of(["workflows.view_workflow"])
    assert _permission_queries(api) == (200, 2)
    assert _permission_queries(api) == (200, 2)


def _revoke_own(user, view):
    user.user_permissions.remove(view)


def _revoke_all_own(user, _view):
    user.user_permissions.clear()


def _leave_group(user, _view):
    user.groups.clear()


def _group_loses_it(user, view):
    user.groups.get().permissions.remove(view)


def _group_deleted(user, _view):
    user.groups.get().delete()


def _superuser_no_more(user, _view):
    user.is_superuser = False
    user.save()


def _deactivated(user, _view):
    user.is_active = False
    user.save()


@pytest.mark.django_db
@pytest.mark.parametrize(
    "revoke",
    [
        _revoke_own,
        _revoke_all_own,
        _leave_group,
        _group_loses_it,
        _group_deleted,
        _superuser_no_more,
        _deactivated,
    ],
)
def test_a_permission_taken_away_is_refused_at_the_next_request(revoke):
    api, user = _key_of([])
    view = Permission.objects.get(codename="view_workflow")
    if revoke in (_revoke_own, _revoke_all_own, _deactivated):
        user.user_permissions.add(view)
    elif revoke is _superuser_no_more:
        user.is_superuser = True
        user.save()
    else:
        group = Group.objects.create(name="viewers")
        group.permissions.add(view)
        user.groups.add(group)
    assert _permission_queries(api)[0] == 200
    assert _permission_queries(api) == (200, 0)  # kept
    revoke(user, view)
    assert api.get(STEP_TYPES).status_code in (401, 403)


@pytest.mark.django_db
def test_a_permission_given_is_granted_at_the_next_request():
    api, user = _key_of([])
    assert api.get(STEP_TYPES).status_code == 403
    assert api.get(STEP_TYPES).status_code == 403
    user.user_permissions.add(Permission.objects.get(codename="view_workflow"))
    assert api.get(STEP_TYPES).status_code == 200


@pytest.mark.django_db
def test_a_permission_deleted_is_refused_at_the_next_request():
    api, _user = _key_of(["workflows.view_workflow"])
    assert _permission_queries(api)[0] == 200
    Permission.objects.get(codename="view_workflow").delete()  # its links go without m2m_changed
    assert api.get(STEP_TYPES).status_code == 403


@pytest.mark.django_db
def test_a_permission_taken_away_on_the_admins_user_page_is_refused(client):
    api, user = _key_of(["workflows.view_workflow", "workflows.view_step"])
    assert _permission_queries(api)[0] == 200
    assert _permission_queries(api) == (200, 0)
    admin = get_user_model().objects.create_superuser("boss", password="pw-boss-123456")
    client.force_login(admin)
    page = f"/admin/auth/user/{user.pk}/change/"
    assert client.get(page).status_code == 200
    keep = Permission.objects.get(codename="view_step")
    response = client.post(
        page,
        {
            "username": user.username,
            "is_active": "on",
            "user_permissions": [keep.pk],
            "date_joined_0": "2026-12-07",
            "date_joined_1": "10:00:00",
            "initial-date_joined_0": "2026-12-07",
            "initial-date_joined_1": "10:00:00",
        },
    )
    assert response.status_code == 302, response.content[:2000]
    assert list(user.user_permissions.all()) == [keep]
    assert api.get(STEP_TYPES).status_code == 403


@pytest.mark.django_db(transaction=True)
def test_permissions_read_while_a_change_was_uncommitted_are_not_kept():
    """A request on another connection reads the permissions after the change was made but
    before it committed (it sees the old ones, and keeps them); the commit's own new
    generation throws them away."""
    api, user = _key_of(["workflows.view_workflow"])
    assert _permission_queries(api)[0] == 200
    seen = {}

    def another_request():
        fresh = get_user_model().objects.get(pk=user.pk)
        seen["perms"] = CachedModelBackend().get_all_permissions(fresh)
        connection.close()

    with transaction.atomic():
        user.user_permissions.clear()
        reader = threading.Thread(target=another_request)
        reader.start()
        reader.join()
    assert "workflows.view_workflow" in seen["perms"]  # the old set, read and kept
    assert api.get(STEP_TYPES).status_code == 403


@pytest.mark.django_db
def test_with_the_cache_unreachable_the_database_answers_and_changes_are_refused(settings):
    raw = make_key(perms=["workflows.view_workflow"])
    user = ApiKey.objects.get(prefix=raw[:12]).user
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": "redis://127.0.0.1:9/0",  # nothing listens there
        }
    }
    fresh = get_user_model().objects.get(pk=user.pk)
    assert CachedModelBackend().get_all_permissions(fresh) == {"workflows.view_workflow"}
    with pytest.raises(Exception, match=r"(?i)connect"), transaction.atomic():
        user.user_permissions.clear()
    assert list(user.user_permissions.values_list("codename", flat=True)) == ["view_workflow"]
