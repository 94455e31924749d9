"""Model floats to ledger integers: the rounding direction is always the caller's."""

from __future__ import annotations

import math
from decimal import Decimal

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aggregator.core.pricing import black76_price
from aggregator.core.units import UnitConversionError, from_units, to_units, to_units_many


@pytest.mark.parametrize("value, down, up", [
    (0.1, 100_000, 100_000),               # read as the decimal 0.1, not its binary expansion
    (12.3456785, 12_345_678, 12_345_679),
    (-12.3456785, -12_345_679, -12_345_678),  # floor / ceiling, also below zero
    (1e-7, 0, 1),
    (-1e-7, -1, 0),
    (0.0, 0, 0),
    (Decimal("2.0000001"), 2_000_000, 2_000_001),
    ("3.5", 3_500_000, 3_500_000),
    (7, 7_000_000, 7_000_000),
])
def test_to_units_rounds_in_named_direction(value, down, up):
    assert to_units(value, 6, "down") == down
    assert to_units(value, 6, "up") == up


def test_exact_mode_accepts_representable_and_refuses_lossy():
    assert to_units(1.25, 6, "exact") == 1_250_000
    with pytest.raises(UnitConversionError, match="not a whole number"):
        to_units(1.0000001, 6, "exact")


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, True, "abc", Decimal("NaN"), None, [1.0]])
def test_non_amounts_are_refused(bad):
    with pytest.raises(UnitConversionError):
        to_units(bad, 6, "down")


@pytest.mark.parametrize("decimals, rounding", [(-1, "down"), (1.5, "down"), (6, "nearest"), (True, "up")])
def test_bad_decimals_or_rounding_are_refused(decimals, rounding):
    with pytest.raises(UnitConversionError):
        to_units(1.0, decimals, rounding)


def test_numpy_scalars_and_arrays_convert():
    price = black76_price(3000.0, 3200.0, 30 / 365, 0.6, 0.0, True)
    assert to_units(price, 6, "up") - to_units(price, 6, "down") == 1
    assert to_units(np.int64(2**62), 0, "exact") == 2**62
    assert to_units_many(np.array([1.5, 2.25]), 6, "down") == [1_500_000, 2_250_000]


def test_from_units_is_exact_decimal():
    assert from_units(-1_500_001, 6) == Decimal("-1.500001")
    with pytest.raises(UnitConversionError):
        from_units(1.5, 6)  # type: ignore[arg-type]


@settings(max_examples=500, deadline=None, derandomize=True)
@given(st.floats(-1e12, 1e12, allow_nan=False, allow_infinity=False), st.integers(0, 18))
def test_down_up_bracket_the_value_property(x, decimals):
    down, up = to_units(x, decimals, "down"), to_units(x, decimals, "up")
    assert up - down in (0, 1)
    exact = Decimal(repr(x))
    assert from_units(down, decimals) <= exact <= from_units(up, decimals)
