"""A kind of wait's own settings live in its folder (`jobs/waits/<kind>/conf.py`): read from
the environment at start, refused loudly when bad, overridden in tests as any setting."""

import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from jobs.waits.ai_batch.conf import ai_batch_poll_s
from jobs.waits.event.conf import event_keep_minutes
from jobs.waits.event.services import events_prune

ROOT = Path(__file__).resolve().parents[2]


def test_the_product_refuses_to_start_with_a_bad_setting_of_a_kind():
    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "DEBUG": "true", "EVENT_KEEP_MINUTES": "soon"},
        timeout=60,
    )
    assert result.returncode != 0
    assert "EVENT_KEEP_MINUTES='soon' is not valid" in result.stderr


def test_a_kinds_settings_have_their_defaults_and_a_tests_override_wins(settings, monkeypatch):
    monkeypatch.delenv("EVENT_KEEP_MINUTES", raising=False)
    assert (event_keep_minutes(), ai_batch_poll_s()) == (60, 60.0)
    settings.EVENT_KEEP_MINUTES = 5
    settings.AI_BATCH_POLL_S = 0.5
    assert (event_keep_minutes(), ai_batch_poll_s()) == (5, 0.5)


@pytest.mark.django_db
def test_events_are_kept_and_pruned_by_the_keep_time_a_test_sets(settings, api):
    settings.EVENT_KEEP_MINUTES = 5
    sent = api.post("/api/v1/events", {"name": "price.approved", "key": "sku-1"})
    assert sent.json()["matched"] == 0
    # Kept 5 minutes, then listed 5 more.
    assert events_prune(now=timezone.now() + timedelta(minutes=9), limit=10) == 0
    assert events_prune(now=timezone.now() + timedelta(minutes=11), limit=10) == 1
