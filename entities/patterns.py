"""Regular expressions given by users (schema `pattern`s, validate rules, condition `matches`),
compiled and run by RE2.

Python's `re` backtracks: `^(a+)+$` against forty `a`s and a `!` takes longer than the age of
the universe and holds the process that runs it. RE2 matches in time linear in the text
whatever the pattern, and refuses what it cannot run that way (backreferences, lookaround) and
patterns whose compiled program is too large, so the caller can answer 400 at create time.
"""

from functools import lru_cache

import re2

_OPTIONS = re2.Options()
_OPTIONS.log_errors = False  # the refusal is reported to the caller, not written to stderr
_OPTIONS.max_mem = 8 << 20  # bounds the compiled program (`a{1000}{1000}` is refused)


class PatternError(ValueError):
    """A pattern RE2 cannot compile; the message says why."""


@lru_cache(maxsize=1024)
def pattern_compile(pattern: str):
    """The compiled pattern (cached: a chunk's entities share their step's patterns)."""
    try:
        return re2.compile(pattern, _OPTIONS)
    except re2.error as exc:
        reason = exc.args[0] if exc.args else "cannot be compiled"
        if isinstance(reason, bytes):
            reason = reason.decode("utf-8", "replace")
        raise PatternError(
            f"Invalid regular expression: {reason} (patterns run on RE2: no backreferences "
            "or lookaround)"
        ) from exc


def pattern_problem(pattern: str) -> str | None:
    """Why `pattern` cannot be used, or None."""
    try:
        pattern_compile(pattern)
    except PatternError as exc:
        return str(exc)
    return None


def pattern_search(pattern: str, text: str) -> bool:
    """Whether `pattern` matches anywhere in `text` (raises PatternError if it cannot run)."""
    return pattern_compile(pattern).search(text) is not None
