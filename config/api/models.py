import hashlib
import hmac
import secrets

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone

from config.api.ids import ID_LENGTH, id_default

KEY_PREFIX = "wfk_"


def hash_key(raw_key: str) -> str:
    """Keys carry 256 bits of randomness, so one SHA-256 is enough: no salt, no stretching."""
    return hashlib.sha256(raw_key.encode()).hexdigest()


class ApiKeyQuerySet(models.QuerySet):
    def active(self):
        return self.filter(revoked_at__isnull=True, user__is_active=True)


class ApiKey(models.Model):
    """A bearer key for the API. Only its hash is stored; the key is shown once, at creation."""

    id = models.CharField(
        primary_key=True, max_length=ID_LENGTH, default=id_default("key"), editable=False
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_keys"
    )
    name = models.CharField(max_length=200, blank=True)
    prefix = models.CharField(
        max_length=16, editable=False, help_text="The first characters of the key, to recognise it."
    )
    hashed_key = models.CharField(max_length=64, unique=True, editable=False)
    read_only = models.BooleanField(
        default=False, help_text="A read-only key can list and get, nothing else."
    )
    # A database default: a process of the release before this column keeps minting keys.
    events_only = models.BooleanField(
        default=False,
        db_default=False,
        help_text="An events-only key can send and list events (POST and GET /api/v1/events), "
        "for the outside system that answers wait_for_event steps; nothing else.",
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True)

    objects = ApiKeyQuerySet.as_manager()

    class Meta:
        verbose_name = "API key"
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.user})"

    def clean(self) -> None:
        if self.read_only and self.events_only:
            raise ValidationError("A key is read-only or events-only, not both.")

    @staticmethod
    def generate() -> str:
        return KEY_PREFIX + secrets.token_urlsafe(32)

    def matches(self, raw_key: str) -> bool:
        return hmac.compare_digest(self.hashed_key, hash_key(raw_key))


class IdempotencyRecord(models.Model):
    """The first answer to a write sent with an `Idempotency-Key`, replayed for 24 hours."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE)
    key = models.CharField(max_length=255)
    method = models.CharField(max_length=10)
    path = models.CharField(max_length=500)
    request_hash = models.CharField(max_length=64)
    status_code = models.PositiveSmallIntegerField()
    response_body = models.JSONField()
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["user", "key", "method", "path"], name="idempotency_unique_key"
            ),
        ]
        indexes = [models.Index(fields=["created_at"])]

    def __str__(self) -> str:
        return f"{self.method} {self.path} ({self.key})"
