"""Production safety: no start on a public signing key, HTTPS settings from the environment, a
Content-Security-Policy on the admin and /api/docs, API answers never cached, and the
environment the README documents for production passes `manage.py check --deploy`."""

import json
import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

from tests.processes import ROOT

README = (ROOT / "README.md").read_text()
READ_SETTINGS = (
    "import json; from django.conf import settings as s; print(json.dumps([s.SECURE_HSTS_SECONDS,"
    " s.SECURE_HSTS_INCLUDE_SUBDOMAINS, s.SECURE_HSTS_PRELOAD, s.SECURE_SSL_REDIRECT,"
    " s.SECURE_PROXY_SSL_HEADER, s.DEBUG]))"
)


def run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    bin_dir = str(Path(sys.executable).parent)
    return subprocess.run(
        args,
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={
            "PATH": bin_dir + os.pathsep + "/usr/bin:/bin",
            "DJANGO_SETTINGS_MODULE": "config.settings.base",
            "PROMETHEUS_MULTIPROC_DIR": os.environ["PROMETHEUS_MULTIPROC_DIR"],
            **env,
        },
        timeout=120,
    )


def readme_production_environment() -> dict[str, str]:
    """The `NAME=value` lines of the README's production example, the key made up."""
    section = README.split("## Running in production", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```sh\n(.*?)```", section, re.DOTALL).group(1)
    env = dict(re.findall(r"^\s*([A-Z_]+)=(\S+)", block, re.MULTILINE))
    assert env["SECRET_KEY"].startswith("<")  # a placeholder, never a key to copy
    env["SECRET_KEY"] = secrets.token_urlsafe(50)
    return env


def test_the_production_environment_in_the_readme_passes_check_deploy():
    env = readme_production_environment()
    assert {"SECURE_SSL_REDIRECT", "SECURE_HSTS_SECONDS", "SECURE_PROXY_SSL_HEADER"} <= set(env)
    result = run([sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"], env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


PRODUCTION_DATABASE = {"DATABASE_URL": "postgres://workflows@db.internal:5432/workflows"}


def test_without_a_secret_key_the_product_refuses_to_start_naming_it():
    # Whether or not the demo ran in this checkout (its key in var/ is its database's alone).
    result = run([sys.executable, "manage.py", "check"], PRODUCTION_DATABASE)
    assert result.returncode != 0
    assert "SECRET_KEY is not set" in result.stderr
    for env in ({}, PRODUCTION_DATABASE):
        gunicorn = run([sys.executable, "-c", "import config.wsgi"], env)
        assert gunicorn.returncode != 0 and "SECRET_KEY is not set" in gunicorn.stderr


def test_debug_runs_on_the_development_key():
    result = run([sys.executable, "manage.py", "check"], {"DEBUG": "true"})
    assert result.returncode == 0, result.stderr


def test_the_demo_makes_a_key_of_its_own():
    # The command starts (its help needs the settings) though nothing sets SECRET_KEY.
    result = run([sys.executable, "manage.py", "demo", "--help"], {})
    assert result.returncode == 0, result.stderr
    key = (ROOT / "var" / "demo-secret-key").read_text().strip()
    assert len(key) >= 50
    assert (ROOT / "var" / "demo-secret-key").stat().st_mode & 0o077 == 0


def test_commands_beside_the_demo_run_on_its_key():
    # The README's `manage.py create_api_key USERNAME`, typed with the demo running (on its
    # embedded database, no SECRET_KEY set), printed a traceback: only `demo` had a key.
    run([sys.executable, "manage.py", "demo", "--help"], {})  # the demo has made its key
    key = (ROOT / "var" / "demo-secret-key").read_text().strip()
    script = "from django.conf import settings; print(settings.SECRET_KEY)"
    result = run([sys.executable, "manage.py", "shell", "-c", script], {})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == key


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, [0, False, False, False, None, False]),
        (
            {
                "SECURE_HSTS_SECONDS": "3600",
                "SECURE_HSTS_INCLUDE_SUBDOMAINS": "true",
                "SECURE_HSTS_PRELOAD": "yes",
                "SECURE_SSL_REDIRECT": "1",
                "SECURE_PROXY_SSL_HEADER": "X-Forwarded-Proto",
            },
            [3600, True, True, True, ["HTTP_X_FORWARDED_PROTO", "https"], False],
        ),
    ],
)
def test_https_settings_come_from_the_environment(env, expected):
    result = run([sys.executable, "-c", READ_SETTINGS], {"SECRET_KEY": "k" * 50, **env})
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == expected


def test_a_bad_https_setting_names_the_variable():
    result = run([sys.executable, "manage.py", "check"], {"SECURE_HSTS_SECONDS": "a year"})
    assert result.returncode != 0
    assert "SECURE_HSTS_SECONDS='a year' is not valid" in result.stderr


@pytest.mark.django_db
def test_behind_the_proxy_https_is_required_but_not_of_probes(client, settings):
    settings.SECURE_SSL_REDIRECT = True
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    settings.SECURE_HSTS_SECONDS = 3600
    plain = client.get("/api/v1/entities")
    assert plain.status_code == 301 and plain["Location"].startswith("https://")
    proxied = client.get("/admin/login/", HTTP_X_FORWARDED_PROTO="https")
    assert proxied.status_code == 200
    assert proxied["Strict-Transport-Security"] == "max-age=3600"
    assert client.get("/healthz").status_code == 200  # a load balancer's probe over HTTP


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/admin/login/", "/api/docs", "/api/docs?script="])
def test_the_admin_and_the_api_docs_carry_a_content_security_policy(client, path):
    response = client.get(path)
    assert response.status_code == 200
    policy = response["Content-Security-Policy"]
    assert "default-src 'self'" in policy and "frame-ancestors 'none'" in policy
    scripts = policy.split("script-src")[1].split(";")[0]
    assert "'self'" in scripts and "'unsafe-inline'" not in scripts


@pytest.mark.django_db
def test_the_api_docs_page_runs_no_inline_script(client):
    html = client.get("/api/docs").content.decode()
    assert re.findall(r"<script(?![^>]*\bsrc=)[^>]*>", html) == []


@pytest.mark.django_db
def test_api_answers_are_never_stored_by_a_cache(api, anonymous):
    for response in (
        api.get("/api/v1/entities"),
        api.get("/api/v1/entities/ent_missing"),
        anonymous.get("/api/v1/workflows"),
        api.get("/api/v1/schema"),
        api.post("/api/v1/entity-types", {"name": ""}),
    ):
        assert "no-store" in response["Cache-Control"], response.status_code
