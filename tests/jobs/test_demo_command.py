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
