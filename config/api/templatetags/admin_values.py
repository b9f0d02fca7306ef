"""Values as staff read them in the admin: JSON (never a Python repr), money in dollars."""

import json
import math

from django import template

register = template.Library()


def as_json_text(value, indent: int | None = None) -> str:
    """`value` as JSON (`true`, `null`, double quotes), unicode as written."""
    return json.dumps(value, ensure_ascii=False, indent=indent, sort_keys=False, default=str)


# A value shown in a cell among others (a field of an experiment's side, a change in an
# entity's history) is cut to this many characters: one large field must not make a page of
# tens of MB. Each page says where such a value is read whole.
VALUE_CHARS_SHOWN = 2_000


def cut_text(text: str, limit: int = VALUE_CHARS_SHOWN) -> str:
    """`text`, or its first `limit` characters and an ellipsis when it is longer."""
    return text if len(text) <= limit else text[:limit] + "…"


@register.filter(name="as_json")
def as_json(value) -> str:
    """One line of JSON, for a cell or an option."""
    return as_json_text(value)


@register.filter(name="as_json_block")
def as_json_block(value) -> str:
    """Indented JSON, for a <pre>."""
    return as_json_text(value, indent=2)


def usd(nano_usd: int | None) -> str:
    """Nano-dollars as dollars with the digits that matter: $0.0012, $12.34, $0."""
    if nano_usd is None:
        return "unknown"
    dollars = nano_usd / 1_000_000_000
    if dollars == 0:
        return "$0"
    if dollars >= 0.01:
        return f"${dollars:,.2f}"
    digits = 1 - math.floor(math.log10(dollars))  # two significant digits: $0.0012
    return "$" + f"{dollars:.{digits}f}".rstrip("0")


register.filter("usd", usd)


@register.filter(name="dollars")
def dollars(value: float | None) -> str:
    """A cost the API gives in dollars (`costUsd`) as `usd` shows nano-dollars."""
    return usd(None if value is None else round(value * 1_000_000_000))


@register.filter(name="percent")
def percent(rate: float | None) -> str:
    """A rate from 0 to 1 as 67%; nothing when there is none."""
    return "" if rate is None else f"{rate:.0%}"


@register.filter(name="thousands")
def thousands(count: int | None) -> str:
    """1234567 as 1,234,567."""
    return "" if count is None else f"{count:,}"
