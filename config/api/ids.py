"""Opaque, URL-safe, time-ordered string ids with a type prefix (`wf_...`, `ent_...`).

An id is the creation time in milliseconds followed by randomness, in Crockford's base32
(lowercase), so sorting ids sorts by creation: lists are "newest first" by primary key and a
cursor is simply the last id seen. Within one millisecond the random part is incremented, so a
bulk insert keeps its order.
"""

import re
import secrets
import threading
import time
from functools import partial

ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"
_TIME_CHARS = 10  # 50 bits of milliseconds: good until the year 37,000
_RANDOM_CHARS = 16  # 80 bits
_lock = threading.Lock()
_last = (0, 0)

# Two digits per 10 bits, by table: a bulk write makes thousands of ids, and 13 lookups
# cost half the standard library's base32 of the bytes (a loop per digit cost 10 us an id).
_PAIRS = tuple(high + low for high in ALPHABET for low in ALPHABET)
_SHIFTS = range(5 * (_TIME_CHARS + _RANDOM_CHARS) - 10, -1, -10)
assert (_TIME_CHARS + _RANDOM_CHARS) % 2 == 0, "the pairs spell an even number of digits"


def _encode(millis: int, random_part: int) -> str:
    value = (millis << (5 * _RANDOM_CHARS)) | random_part
    return "".join([_PAIRS[(value >> shift) & 1023] for shift in _SHIFTS])


def new_id(prefix: str) -> str:
    global _last
    with _lock:
        millis = time.time_ns() // 1_000_000
        last_millis, last_random = _last
        if millis <= last_millis:
            millis, random_part = last_millis, last_random + 1
        else:
            random_part = secrets.randbits(79)  # room to increment without overflowing 80 bits
        _last = (millis, random_part)
    return f"{prefix}_{_encode(millis, random_part)}"


def id_default(prefix: str):
    """A model field default producing ids with this prefix (serializable in migrations)."""
    return partial(new_id, prefix)


ID_LENGTH = 40
ID_PATTERN = re.compile(r"[a-z]{2,8}_[0-9a-z]{26}")
