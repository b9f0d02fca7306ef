"""A user's permissions read once per PERMISSIONS_CACHE_S, not on every request.

Django's `ModelBackend` reads every permission of the user (their own and their groups', two
queries, each row made into an "app.codename" string) on each request that checks one:
every API request does (`config.api.permissions`), and that was 45% of the cheapest
request's time (docs/benchmarks.md, Load). `CachedModelBackend` keeps the set in the shared
cache (Redis, with the Redis broker), stamped with a generation; any change to who holds
which permission starts a new generation, so the next check reads the database again:

- a user's permissions or groups, or a group's permissions, changed (`m2m_changed`: the
  admin's user and group forms, `user.user_permissions.add/remove/set`, `user.groups...`);
- a permission or group deleted or a permission saved (`post_delete`/`post_save`; a delete
  removes its rows from the links without `m2m_changed`).

With the cache unreachable, permissions are read from the database on each request, and a
change to them fails rather than leave the sets kept before it current once the cache is back.

The generation is bumped when the change is made and again when its transaction commits: a
request reading the permissions between the two (the change not yet visible to it) may
store the old set, which the second bump throws away. What bypasses the models' signals (a
queryset `delete()` of the link tables, SQL) is seen within PERMISSIONS_CACHE_S.
`is_active` and `is_superuser` are read from the user each request loads: an inactive user
has no permissions, and the set is kept apart for a superuser and not.

Without a shared cache (the embedded defaults' per-process memory) PERMISSIONS_CACHE_S is 0
and nothing is kept: a change made in one process would not reach the others.
"""

import contextlib
import logging
import uuid

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.models import Group, Permission
from django.core.cache import cache
from django.db import transaction
from django.db.models.signals import m2m_changed, post_delete, post_save

logger = logging.getLogger(__name__)

GENERATION = "auth:permissions:generation"


def _key(user) -> str:
    return f"auth:permissions:{user.pk}:{int(user.is_superuser)}"


class CachedModelBackend(ModelBackend):
    def get_all_permissions(self, user_obj, obj=None):
        seconds = settings.PERMISSIONS_CACHE_S
        if (
            not seconds
            or obj is not None
            or not user_obj.is_active
            or user_obj.is_anonymous
            or hasattr(user_obj, "_perm_cache")  # read already for this request
        ):
            return super().get_all_permissions(user_obj, obj)
        key = _key(user_obj)
        try:
            held = cache.get_many([GENERATION, key])
            generation = held.get(GENERATION)
            if generation is None:
                cache.add(GENERATION, uuid.uuid4().hex, timeout=None)
                generation = cache.get(GENERATION)
        except Exception:  # the cache unreachable: the database answers, as without one
            logger.warning("Permissions read from the database: the cache is unreachable.")
            return super().get_all_permissions(user_obj)
        kept = held.get(key)
        if kept is not None and kept[0] == generation:
            user_obj._perm_cache = set(kept[1])
            return user_obj._perm_cache
        perms = super().get_all_permissions(user_obj)  # sets user_obj._perm_cache
        with contextlib.suppress(Exception):  # kept next time, if the cache is back
            cache.set(key, (generation, sorted(perms)), timeout=seconds)
        return perms


def permissions_changed(*, action: str = "", **_kwargs) -> None:
    """A new generation now, and another once the change commits (see the module's doc).

    With the cache unreachable the change fails (its transaction rolled back): the sets kept
    before it would be taken as current once the cache is back."""
    if not settings.PERMISSIONS_CACHE_S or action.startswith("pre_"):
        return
    _new_generation()
    transaction.on_commit(_new_generation_after_commit)


def _new_generation() -> None:
    cache.set(GENERATION, uuid.uuid4().hex, timeout=None)


def _new_generation_after_commit() -> None:
    """Only what was read between the change and its commit is left to expire
    (PERMISSIONS_CACHE_S) if the cache went away meanwhile."""
    try:
        _new_generation()
    except Exception:
        logger.exception("The permissions' new generation could not be stored.")


def connect_signals() -> None:
    user = get_user_model()
    for through in (user.groups.through, user.user_permissions.through, Group.permissions.through):
        m2m_changed.connect(permissions_changed, sender=through, dispatch_uid=f"perms-{through}")
    for model in (Permission, Group):
        post_delete.connect(permissions_changed, sender=model, dispatch_uid=f"perms-del-{model}")
    # A permission made or renamed is in no one's kept set but a superuser's: a new generation
    # if the cache is there, and the save goes on if it is not. (`migrate` makes a new model's
    # permissions in bulk, without signals: a superuser's kept set has them within
    # PERMISSIONS_CACHE_S.)
    post_save.connect(_permission_saved, sender=Permission, dispatch_uid="perms-save")


def _permission_saved(**_kwargs) -> None:
    if settings.PERMISSIONS_CACHE_S:
        _new_generation_after_commit()
