"""The `ai_batch` kind's settings, read from the environment at start
(`jobs/waits/settings.py` says how, and how a test overrides one). The local stand-in
provider's `AI_LOCAL_BATCH_DELAY_S` is the provider's (`workflows/providers/local.py`, a
layer below), with the other providers' settings in `config/settings/workflows.py`."""

from config.env import env_float
from jobs.waits.settings import kind_setting

# On the waits' tick, each open provider batch is polled this often (`ai_generate` in
# `mode: batch`).
AI_BATCH_POLL_S = env_float("AI_BATCH_POLL_S", 60.0, minimum=0.1)


def ai_batch_poll_s() -> float:
    return kind_setting("AI_BATCH_POLL_S", AI_BATCH_POLL_S)
