"""Ids: the prefix, then the creation time in milliseconds (10 digits) and 80 random bits (16
digits) in Crockford's base32, so that sorting ids sorts by creation."""

import time

from config.api.ids import ALPHABET, ID_PATTERN, new_id


def digits(text: str) -> int:
    value = 0
    for char in text:
        value = value * 32 + ALPHABET.index(char)
    return value


def test_an_id_spells_its_millisecond_and_random_part_in_crockfords_base32():
    before = time.time_ns() // 1_000_000
    pk = new_id("rev")
    after = time.time_ns() // 1_000_000
    prefix, body = pk.split("_")
    assert prefix == "rev" and ID_PATTERN.fullmatch(pk) and len(body) == 26
    assert before <= digits(body[:10]) <= after
    assert 0 <= digits(body[10:]) < 2**80


def test_ids_made_in_one_millisecond_count_up_and_sort_in_the_order_made():
    ids = [new_id("wait") for _ in range(5000)]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    by_millisecond: dict[int, list[int]] = {}
    for pk in ids:
        body = pk.split("_")[1]
        by_millisecond.setdefault(digits(body[:10]), []).append(digits(body[10:]))
    for randoms in by_millisecond.values():  # within a millisecond: one random start, + 1
        assert randoms == list(range(randoms[0], randoms[0] + len(randoms)))


def test_the_largest_values_keep_every_digit():
    from config.api import ids

    assert ids._encode(2**50 - 1, 2**80 - 1) == "z" * 26
    assert ids._encode(0, 0) == "0" * 26
    assert ids._encode(1, 1) == "0" * 9 + "1" + "0" * 15 + "1"
