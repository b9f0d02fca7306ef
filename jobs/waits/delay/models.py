"""What a `delay` wait waits for: a time. A row lives while its entity waits (resolved or
cancelled, it is deleted), so the due ones are an index range on `until`."""

from django.db import models

from jobs.models.runs import Run
from jobs.models.waits import Wait


class Delay(models.Model):
    """An entity waiting at a `delay` step until `until`."""

    # Neither key is checked by the database: a delay is inserted with its wait, in the
    # transaction that parks it (`Wait.run` says why).
    wait = models.OneToOneField(
        Wait, primary_key=True, on_delete=models.CASCADE, related_name="delay", db_constraint=False
    )
    run = models.ForeignKey(
        Run, on_delete=models.CASCADE, related_name="+", db_index=False, db_constraint=False
    )
    until = models.DateTimeField()
    tick_asked = models.BooleanField(
        default=False, help_text="A tick at `until` is queued (it is due soon)."
    )

    class Meta:
        indexes = [models.Index(fields=["until"], name="delay_due")]

    def __str__(self) -> str:
        return f"{self.wait_id} until {self.until:%Y-%m-%d %H:%M:%S}"
