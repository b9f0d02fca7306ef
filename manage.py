#!/usr/bin/env python
import os
import secrets
import sys
from pathlib import Path

DEMO_SECRET_KEY = Path(__file__).resolve().parent / "var" / "demo-secret-key"


def demo_secret_key() -> str:
    """`manage.py demo` runs on a key of this install's own, made once and kept in var/ (so
    the admin's sessions outlive a restart), never on a public one; the settings refuse to
    start without SECRET_KEY otherwise."""
    if not DEMO_SECRET_KEY.exists():
        DEMO_SECRET_KEY.parent.mkdir(exist_ok=True)
        DEMO_SECRET_KEY.touch(mode=0o600)
        DEMO_SECRET_KEY.write_text(secrets.token_urlsafe(50))
    return DEMO_SECRET_KEY.read_text().strip()


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.base")
    if not os.environ.get("SECRET_KEY"):
        if sys.argv[1:2] == ["demo"]:
            os.environ["SECRET_KEY"] = demo_secret_key()
        elif not os.environ.get("DATABASE_URL") and DEMO_SECRET_KEY.exists():
            # A command run beside the demo, on its embedded database (the README's
            # `create_api_key`, `createsuperuser`), runs on the demo's key, as the demo's
            # processes do. With a DATABASE_URL of its own (production) nothing changes.
            os.environ["SECRET_KEY"] = DEMO_SECRET_KEY.read_text().strip()
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
