"""Read settings from the environment, failing at start with a message naming the variable.

Every reader takes the variable name and a default that runs on a fresh machine, so the
product starts with no configuration at all and refuses a bad value loudly instead of
guessing.
"""

import os
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
T = TypeVar("T")


def _read(name: str, default: T, parse: Callable[[str], T], expected: str) -> T:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return parse(raw)
    except (TypeError, ValueError) as exc:
        raise ImproperlyConfigured(f"{name}={raw!r} is not valid: expected {expected}.") from exc


def env_str(name: str, default: str) -> str:
    return _read(name, default, str, "a string")


def env_bool(name: str, default: bool) -> bool:
    def parse(raw: str) -> bool:
        value = raw.strip().lower()
        if value in {"1", "true", "yes", "on"}:
            return True
        if value in {"0", "false", "no", "off"}:
            return False
        raise ValueError(raw)

    return _read(name, default, parse, "one of true/false/1/0/yes/no/on/off")


def env_int(name: str, default: int, *, minimum: int = 0) -> int:
    def parse(raw: str) -> int:
        value = int(raw)
        if value < minimum:
            raise ValueError(raw)
        return value

    return _read(name, default, parse, f"a whole number >= {minimum}")


def env_float(name: str, default: float, *, minimum: float = 0.0) -> float:
    def parse(raw: str) -> float:
        value = float(raw)
        if value < minimum:
            raise ValueError(raw)
        return value

    return _read(name, default, parse, f"a number >= {minimum}")


def env_list(name: str, default: list[str]) -> list[str]:
    return _read(
        name,
        default,
        lambda raw: [item.strip() for item in raw.split(",") if item.strip()],
        "a comma-separated list",
    )


def env_choice(name: str, default: str, choices: tuple[str, ...]) -> str:
    def parse(raw: str) -> str:
        if raw not in choices:
            raise ValueError(raw)
        return raw

    return _read(name, default, parse, "one of " + ", ".join(choices))


SUPPORTED_DATABASES = ("django.db.backends.postgresql", "django.db.backends.sqlite3")


def env_database(name: str, default: str) -> dict:
    """A Django DATABASES entry from a URL (postgres://..., sqlite:///...)."""

    def parse(raw: str) -> dict:
        if "://" not in raw:
            raise ValueError(raw)
        config = dj_database_url.parse(raw, conn_max_age=60, conn_health_checks=True)
        if config.get("ENGINE") not in SUPPORTED_DATABASES:
            raise ValueError(raw)
        return config

    # The run engine's SQL is written for these two (config/bulk.py, jobs/engine/).
    config = _read(
        name,
        None,
        parse,
        "a PostgreSQL or SQLite URL (postgres://user@host:5432/name, sqlite:///path): "
        "the only databases the run engine supports",
    )
    if config is None:
        config = dj_database_url.parse(default)
    if config["ENGINE"] == "django.db.backends.sqlite3":
        # WAL lets the web server read while the worker writes; IMMEDIATE transactions
        # take the write lock up front, so two writers queue instead of deadlocking.
        config["OPTIONS"] = {
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            "transaction_mode": "IMMEDIATE",
            "timeout": 30,
        }
        config["CONN_MAX_AGE"] = 0
    return config
