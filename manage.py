#!/usr/bin/env python
import os
import secrets
import sys
from pathlib import Path


def demo_secret_key() -> str:
    """`manage.py demo` runs on a key of this install's own, made once and kept in var/ (so
    the admin's sessions outlive a restart), never on a public one; the settings refuse to
    start without SECRET_KEY otherwise."""
    path = Path(__file__).resolve().parent / "var" / "demo-secret-key"
    if not path.exists():
        path.parent.mkdir(exist_ok=True)
        path.touch(mode=0o600)
        path.write_text(secrets.token_urlsafe(50))
    return path.read_text().strip()


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.base")
    if sys.argv[1:2] == ["demo"] and not os.environ.get("SECRET_KEY"):
        os.environ["SECRET_KEY"] = demo_secret_key()
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
