"""Settings come from the environment; a bad value stops the start naming the variable."""

import subprocess
import sys

import pytest
from django.core.exceptions import ImproperlyConfigured

from config.env import env_bool, env_database, env_int, env_list
from tests.processes import ROOT
from tests.servers import mail_server


@pytest.mark.parametrize(
    ("reader", "name", "raw"),
    [
        (lambda: env_int("WF_TEST_INT", 1), "WF_TEST_INT", "many"),
        (lambda: env_int("WF_TEST_INT", 1, minimum=1), "WF_TEST_INT", "0"),
        (lambda: env_bool("WF_TEST_BOOL", False), "WF_TEST_BOOL", "perhaps"),
        (lambda: env_database("WF_TEST_DB", "sqlite:///x"), "WF_TEST_DB", "not-a-url"),
    ],
)
def test_a_bad_value_names_the_variable(monkeypatch, reader, name, raw):
    monkeypatch.setenv(name, raw)
    with pytest.raises(ImproperlyConfigured, match=f"{name}='{raw}' is not valid"):
        reader()


@pytest.mark.parametrize(
    "url", ["mysql://user@127.0.0.1:3306/workflows", "oracle://user@host/x", "mssql://h/db"]
)
def test_a_database_the_run_engine_does_not_support_is_refused_naming_the_two_it_does(
    monkeypatch, url
):
    monkeypatch.setenv("WF_TEST_DB", url)
    with pytest.raises(ImproperlyConfigured) as raised:
        env_database("WF_TEST_DB", "sqlite:///x")
    assert f"WF_TEST_DB={url!r} is not valid" in str(raised.value)
    assert "a PostgreSQL or SQLite URL" in str(raised.value)


@pytest.mark.parametrize(
    ("url", "engine"),
    [
        ("postgres://postgres@127.0.0.1:5432/x", "django.db.backends.postgresql"),
        ("sqlite:////tmp/x.db", "django.db.backends.sqlite3"),
    ],
)
def test_postgresql_and_sqlite_are_accepted(monkeypatch, url, engine):
    monkeypatch.setenv("WF_TEST_DB", url)
    assert env_database("WF_TEST_DB", "sqlite:///x")["ENGINE"] == engine


def test_defaults_and_values(monkeypatch):
    assert env_int("WF_TEST_UNSET", 7) == 7
    monkeypatch.setenv("WF_TEST_LIST", "a.example, b.example,")
    assert env_list("WF_TEST_LIST", []) == ["a.example", "b.example"]
    assert (
        env_database("WF_TEST_UNSET", "sqlite:////tmp/x.db")["OPTIONS"]["transaction_mode"]
        == "IMMEDIATE"
    )  # SQLite runs in WAL mode with immediate transactions


def test_the_product_refuses_to_start_with_a_bad_setting():
    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "AI_MAX_CONCURRENCY": "lots"},
        timeout=60,
    )
    assert result.returncode != 0
    assert "AI_MAX_CONCURRENCY='lots' is not valid" in result.stderr


def test_the_product_refuses_to_start_on_a_database_it_does_not_support():
    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "DATABASE_URL": "mysql://user@127.0.0.1/workflows"},
        timeout=60,
    )
    assert result.returncode != 0
    assert "DATABASE_URL='mysql://user@127.0.0.1/workflows' is not valid" in result.stderr


def test_an_smtp_server_s_port_and_login_come_from_the_environment():
    """A deployment's mail server (SES, a relay) takes mail on its own port after a login:
    only EMAIL_HOST was read, so `notify` emails could reach no such server."""
    send = (
        "from django.core.mail import send_mail; "
        "send_mail('Ready', 'Lamp is ready', None, ['a@example.com'])"
    )
    with mail_server() as server:
        result = subprocess.run(
            [sys.executable, "manage.py", "shell", "-c", send],
            cwd=ROOT,
            capture_output=True,
            text=True,
            env={
                "PATH": "/usr/bin:/bin",
                "DEBUG": "true",
                "EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend",
                "EMAIL_HOST": "127.0.0.1",
                "EMAIL_PORT": str(server.port),
                "EMAIL_HOST_USER": "workflows",
                "EMAIL_HOST_PASSWORD": "the relay's password",
            },
            timeout=60,
        )
    assert result.returncode == 0, result.stderr
    assert server.logins == [("workflows", "the relay's password")]
    [(recipients, data)] = server.messages
    assert recipients == ["a@example.com"] and b"Lamp is ready" in data
