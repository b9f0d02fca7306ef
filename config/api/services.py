from datetime import timedelta

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.db import transaction
from django.utils import timezone

from config.api.models import ApiKey, hash_key

# Recording every request's time would make each read a write; a minute is precise enough.
LAST_USED_PRECISION = timedelta(minutes=1)
API_APPS = ("entities", "workflows", "jobs")


def api_key_issue(*, api_key: ApiKey) -> str:
    """Give an unsaved key its secret and save it; returns the raw key, which is never stored."""
    raw_key = ApiKey.generate()
    api_key.prefix = raw_key[:12]
    api_key.hashed_key = hash_key(raw_key)
    api_key.save()
    return raw_key


def api_key_create(
    *, user, name: str = "", read_only: bool = False, events_only: bool = False
) -> tuple[ApiKey, str]:
    api_key = ApiKey(user=user, name=name, read_only=read_only, events_only=events_only)
    api_key.full_clean(exclude=["prefix", "hashed_key"])
    return api_key, api_key_issue(api_key=api_key)


def api_key_revoke(*, api_key: ApiKey) -> ApiKey:
    if api_key.revoked_at is None:
        api_key.revoked_at = timezone.now()
        api_key.save(update_fields=["revoked_at"])
    return api_key


def api_key_authenticate(*, raw_key: str) -> ApiKey | None:
    """The active key matching `raw_key`, or None. Looked up by hash, compared in constant time."""
    api_key = (
        ApiKey.objects.active().select_related("user").filter(hashed_key=hash_key(raw_key)).first()
    )
    if api_key is None or not api_key.matches(raw_key):
        return None
    now = timezone.now()
    if api_key.last_used_at is None or now - api_key.last_used_at > LAST_USED_PRECISION:
        ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=now)
        api_key.last_used_at = now
    return api_key


# What a key made for sending events only may do (`POST`/`GET /api/v1/events`).
EVENT_SENDER_PERMISSIONS = ("add_event", "view_event")


@transaction.atomic
def api_user_get_or_create(*, username: str, read_only: bool = False, events_only: bool = False):
    """The user a key belongs to; a user created here may do everything through the API
    (or, read-only, view everything; or, `events_only`, only send and list events), so a
    freshly printed key works at once."""
    user, created = get_user_model().objects.get_or_create(username=username)
    if created:
        user.set_unusable_password()
        user.save()
        permissions = Permission.objects.filter(content_type__app_label__in=API_APPS)
        if read_only:
            permissions = permissions.filter(codename__startswith="view_")
        if events_only:
            permissions = permissions.filter(
                content_type__app_label="jobs", codename__in=EVENT_SENDER_PERMISSIONS
            )
        user.user_permissions.set(permissions)
    return user
