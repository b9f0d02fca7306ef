"""Whole numbers a client writes as text: a query parameter, a URL segment, a JSON pointer's
part. `str.isdigit()` alone is not the test: it holds for a superscript two (`²`), which
`int()` refuses, for Arabic-Indic digits, which `int()` reads, and for thousands of digits,
which `int()` refuses past Python's conversion limit (4,300): each was a 500."""


def whole_number(text: str, *, max_digits: int = 9) -> int | None:
    """The number `text` writes in ASCII digits, at most `max_digits` of them; else None."""
    if text.isascii() and text.isdigit() and len(text) <= max_digits:
        return int(text)
    return None
