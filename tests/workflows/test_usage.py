"""`Usage`, the one sum of model calls: its arithmetic answers ZERO operands without building
a value (a run's chunk adds one per entity, nearly all ZERO) and is exact field by field."""

from workflows.usage import ZERO, Usage

CALL = Usage(
    input_tokens=120, cached_input_tokens=20, output_tokens=30, cost_nano_usd=7, unpriced_calls=0
)
UNPRICED = Usage(input_tokens=5, output_tokens=1, unpriced_calls=1)


def test_zero_operands_give_the_other_value_itself():
    assert CALL + ZERO is CALL
    assert ZERO + CALL is CALL
    assert CALL - ZERO is CALL
    assert ZERO + ZERO is ZERO
    assert Usage.total([ZERO, ZERO]) is ZERO
    assert Usage.of({}) is ZERO
    assert Usage.of(None) is ZERO


def test_sums_and_differences_are_field_by_field():
    both = CALL + UNPRICED
    assert both == Usage(
        input_tokens=125,
        cached_input_tokens=20,
        output_tokens=31,
        cost_nano_usd=7,
        unpriced_calls=1,
    )
    assert both - UNPRICED == CALL
    refund = ZERO - CALL
    assert refund == Usage(-120, -20, -30, -7, 0)
    assert Usage.total([CALL, ZERO, UNPRICED, CALL]) == both + CALL
    assert both.cost_usd is None  # one call's price unknown: no partial sum
    assert CALL.cost_usd == 7e-9


def test_truth_and_stored_shape():
    assert not ZERO
    assert not Usage()  # equal to ZERO, another object
    assert Usage(unpriced_calls=1)
    assert CALL.columns() == {
        "input_tokens": 120,
        "cached_input_tokens": 20,
        "output_tokens": 30,
        "cost_nano_usd": 7,
        "unpriced_calls": 0,
    }
    assert Usage.of(CALL.stored()) == CALL
    assert CALL.stored() == {
        "inputTokens": 120,
        "cachedInputTokens": 20,
        "outputTokens": 30,
        "costNanoUsd": 7,
    }
