"""A block's statements stop after their time (config.time_limit), and what follows it in
the same transaction is not limited."""

import pytest
from django.db import ProgrammingError, connection, transaction

from config.time_limit import TooSlow, time_limited

pytestmark = pytest.mark.django_db


def _timeout() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SHOW statement_timeout")
        return cursor.fetchone()[0]


def _sleep(seconds: float) -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_sleep(%s)", [seconds])


def test_a_statement_past_the_limit_raises_too_slow_and_the_transaction_goes_on():
    before = _timeout()
    with transaction.atomic():
        with pytest.raises(TooSlow, match=r"past 0\.05s"), time_limited(0.05):
            _sleep(5)
        assert _timeout() == before
        _sleep(0.1)  # unlimited again, in the same transaction
    assert _timeout() == before


def test_a_block_within_its_limit_leaves_the_setting_as_it_was():
    before = _timeout()
    with transaction.atomic():
        with time_limited(2):
            assert _timeout() == "2s"
            _sleep(0.01)
        assert _timeout() == before


def test_other_errors_pass_through_and_no_limit_is_none():
    with pytest.raises(ProgrammingError), time_limited(1), connection.cursor() as cursor:
        cursor.execute("SELECT * FROM no_such_table")
    with time_limited(0):
        assert _timeout() == "0"
