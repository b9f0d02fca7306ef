"""`manage.py demo`: what it says before it starts anything."""

import socket

import pytest
from django.core.management import CommandError, call_command


def test_a_port_another_program_holds_is_refused_before_the_banner(capsys):
    """The banner said the demo was ready; then gunicorn could not bind and honcho stopped
    the whole demo."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        with pytest.raises(CommandError, match=f"Cannot listen on 127.0.0.1:{port}"):
            call_command("demo", port=port)
    assert "is ready" not in capsys.readouterr().out


@pytest.mark.django_db
def test_each_start_prints_the_demo_s_one_key(anonymous):
    """A start printed a new key and kept every earlier one working (one more each start),
    while the password printed before stopped working: now the key printed is the key."""
    from config.api.models import ApiKey
    from jobs.demo import demo_seed

    first = demo_seed()["api_key"]
    second = demo_seed()["api_key"]
    listed = "/api/v1/workflows"
    assert anonymous.get(listed, HTTP_AUTHORIZATION=f"Bearer {first}").status_code == 401
    assert anonymous.get(listed, HTTP_AUTHORIZATION=f"Bearer {second}").status_code == 200
    assert ApiKey.objects.active().count() == 1
