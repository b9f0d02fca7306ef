"""Events sent from outside, and the entities waiting for one."""

from django.db import models
from django.utils import timezone

from config.api.ids import ID_LENGTH, id_default
from jobs.models.runs import Run
from jobs.models.waits import Wait


class Event(models.Model):
    """An event sent to `POST /api/v1/events`. One that woke no entity stays matchable until
        `expires_at` (EVENT_KEEP_MINUTES), for entities that reach their step just after it; once
        it wakes some, it is not (`expires_at` is then, by the database's clock, which every
    match reads: the processes' clocks may differ). Every event is listed until retention
        prunes it, past its keep time."""

    id = models.CharField(
        primary_key=True, max_length=ID_LENGTH, default=id_default("evt"), editable=False
    )
    sent_id = models.CharField(
        max_length=200, blank=True, help_text="The sender's `id`: the same id is taken once."
    )
    name = models.CharField(max_length=100)
    key = models.CharField(max_length=500)
    data = models.JSONField(null=True, blank=True)
    received_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(help_text="Entities arriving until then still get it.")
    matched = models.PositiveIntegerField(default=0, help_text="Entities it woke.")

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["sent_id"], condition=~models.Q(sent_id=""), name="event_sent_once"
            )
        ]
        indexes = [
            models.Index(fields=["name", "key", "-expires_at"], name="event_match"),
            models.Index(fields=["-received_at"], name="event_newest"),
            # The admin's search by key alone (`event_match` leads with the name).
            models.Index(fields=["key"], name="event_key"),
        ]

    def __str__(self) -> str:
        return f"{self.name} {self.key}"


class EventWait(models.Model):
    """An entity waiting at a `wait_for_event` step; deleted once it is resolved."""

    class OnTimeout(models.TextChoices):
        FAIL = "fail"
        STOP = "stop"
        CONTINUE = "continue"

    # Neither key is checked by the database: an event wait is inserted with its wait, in
    # the transaction that parks it (`Wait.run` says why).
    wait = models.OneToOneField(
        Wait,
        primary_key=True,
        on_delete=models.CASCADE,
        related_name="event_wait",
        db_constraint=False,
    )
    run = models.ForeignKey(
        Run, on_delete=models.CASCADE, related_name="+", db_index=False, db_constraint=False
    )
    name = models.CharField(max_length=100)
    key = models.CharField(max_length=500)
    output_field = models.CharField(max_length=200, blank=True)
    on_timeout = models.CharField(max_length=8, choices=OnTimeout.choices)
    timeout_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [
            models.Index(fields=["name", "key"], name="eventwait_match"),
            models.Index(fields=["created_at"], name="eventwait_newest"),
            models.Index(
                fields=["timeout_at"],
                name="eventwait_timeout",
                condition=models.Q(timeout_at__isnull=False),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.wait_id} waits for {self.name} {self.key}"


class EventRecheck(models.Model):
    """How far the kind's tick has matched kept events and parked entities again (one row):
    the next tick looks back from there, not only RECHECK from its own time, so a tick that
    came late or not at all (the waits' worker or beat down for minutes) leaves no event and
    entity that a dying send or chunk left apart. Moved by each tick that saw all it found."""

    checked_through = models.DateTimeField()

    def __str__(self) -> str:
        return f"events and event waits checked through {self.checked_through}"
