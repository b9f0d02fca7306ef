"""Limits and knobs of workflows and runs."""

from config.env import env_int

WORKFLOW_MAX_STEPS = env_int("WORKFLOW_MAX_STEPS", 50, minimum=1)
