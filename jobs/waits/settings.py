"""How a kind of wait reads its own settings (`jobs/waits/<kind>/conf.py`), so that adding a
kind changes nothing in `config/settings/`.

A kind's `conf.py` reads each of its settings from the environment when the kind is loaded
(`jobs.apps` imports every kind when the app is ready, so at every process's start), with
`config.env`'s readers: a default that runs on a fresh machine, and a bad value refused
loudly, naming the variable. Its code reads a setting through a function of `conf.py`
that returns `kind_setting(name, value_read)`: a Django setting of that name wins, so a
test overrides a kind's setting as it overrides any other (pytest-django's
`settings.EVENT_KEEP_MINUTES = 5`, `override_settings`); processes the test starts get it
through the environment."""

from typing import TypeVar

from django.conf import settings

T = TypeVar("T")


def kind_setting(name: str, value: T) -> T:
    """The setting `name` of a kind of wait: `value`, as its `conf.py` read it from the
    environment, unless Django's settings hold one of that name (a test's override)."""
    return getattr(settings, name, value)
