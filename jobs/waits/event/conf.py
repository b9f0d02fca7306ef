"""The `event` kind's settings, read from the environment at start (`jobs/waits/settings.py`
says how, and how a test overrides one)."""

from config.env import env_int
from jobs.waits.settings import kind_setting

# An event (POST /api/v1/events) that woke no entity is kept this long for the entities that
# reach their `wait_for_event` step just after it; events are listed this long after that.
EVENT_KEEP_MINUTES = env_int("EVENT_KEEP_MINUTES", 60, minimum=1)


def event_keep_minutes() -> int:
    return kind_setting("EVENT_KEEP_MINUTES", EVENT_KEEP_MINUTES)
