"""What model calls used: one type, one sum, for an entity, a wait, a run, a test.

Stored as JSON on items, checkpoints and waits in its camelCase shape (`inputTokens`, ...,
beside `calls` and the per-step `steps` that estimates read); summed into a run's columns,
which carry the field names below. `Usage.of` reads the stored shape, `+` adds, `stored()`
writes it back, `summary()` is what the API shows.
"""

from dataclasses import dataclass, fields

from workflows.pricing import usd_of

# The stored (and API) key of each field.
KEYS = {
    "input_tokens": "inputTokens",
    "cached_input_tokens": "cachedInputTokens",
    "output_tokens": "outputTokens",
    "cost_nano_usd": "costNanoUsd",
    "unpriced_calls": "unpricedCalls",
}


@dataclass(frozen=True, slots=True)
class Usage:
    """Tokens and cost of model calls. `input_tokens` includes the cached ones; the cost is
    that of the priced calls, and unknown (`cost_usd` None) while any call was unpriced."""

    input_tokens: int = 0
    cached_input_tokens: int = 0
    output_tokens: int = 0
    cost_nano_usd: int = 0
    unpriced_calls: int = 0

    @classmethod
    def of(cls, stored: dict | None) -> "Usage":
        """From the stored shape (other keys, such as `calls` and `steps`, are ignored)."""
        if not stored:
            return ZERO
        return cls(**{name: int(stored.get(key) or 0) for name, key in KEYS.items()})

    @classmethod
    def total(cls, usages) -> "Usage":
        """The sum of `usages` (Usage values)."""
        result = ZERO
        for usage in usages:
            result += usage
        return result

    # A run's chunk adds and subtracts one per entity, nearly all of them ZERO (no model
    # call): those are answered without building a value, and the others field by field
    # without `dataclasses.fields()`, which costs more than the sum.
    def __add__(self, other: "Usage") -> "Usage":
        if other is ZERO:
            return self
        if self is ZERO:
            return other
        return Usage(*(getattr(self, name) + getattr(other, name) for name in _NAMES))

    def __sub__(self, other: "Usage") -> "Usage":
        if other is ZERO:
            return self
        return Usage(*(getattr(self, name) - getattr(other, name) for name in _NAMES))

    def __bool__(self) -> bool:
        return self is not ZERO and any(getattr(self, name) for name in _NAMES)

    @property
    def tokens(self) -> int:
        """What a budget's `maxTokens` counts: input and output."""
        return self.input_tokens + self.output_tokens

    @property
    def cost_usd(self) -> float | None:
        """None while any call's price is unknown: a partial sum would be a guess."""
        if self.unpriced_calls:
            return None
        return usd_of(self.cost_nano_usd)

    def columns(self) -> dict[str, int]:
        """By field name: a run's counter columns carry the same names."""
        return {name: getattr(self, name) for name in _NAMES}

    def stored(self) -> dict[str, int]:
        """The stored shape, without zeros."""
        return {KEYS[name]: value for name, value in self.columns().items() if value}

    def summary(self) -> dict:
        """As the API shows usage (a run's, a job's, a test's)."""
        return {
            "inputTokens": self.input_tokens,
            "cachedInputTokens": self.cached_input_tokens,
            "outputTokens": self.output_tokens,
            "costUsd": self.cost_usd,
        }


ZERO = Usage()
_NAMES = tuple(f.name for f in fields(Usage))  # in order: `Usage(*values)` takes them so
