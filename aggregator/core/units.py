"""Model floats -> ledger integers, rounding in a direction the caller must name.

The pricing and risk models compute in floats; the ledger counts integers (collateral
units of 10^-decimals of a dollar, 6 for USDC). Every float that reaches the ledger goes
through ``to_units`` here, so the rounding direction is a decision written at the call
site, never an accident of ``int()`` or ``round()``.

Rules:

- ``rounding="down"`` is floor (toward -inf) and ``"up"`` is ceiling (toward +inf), for
  negative values too: choose the one in the exchange's favour (a margin requirement or
  a fee rounds up, a payout or a credit rounds down). ``"exact"`` refuses any value that
  the unit cannot express.
- A float is read as the shortest decimal that round-trips to it (``repr``): 0.1 is
  exactly 1/10, not 0.1000000000000000055511151231257827. A ``Decimal``, ``int`` or
  ``str`` is taken as written. NaN, infinities and ``bool`` are refused.
- Integer arithmetic only after the conversion; nothing here reads a clock or config.
"""

from __future__ import annotations

import operator
from collections.abc import Iterable
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal, InvalidOperation, localcontext
from typing import Literal

Rounding = Literal["down", "up", "exact"]

_MODES = {"down": ROUND_FLOOR, "up": ROUND_CEILING}


class UnitConversionError(ValueError):
    """A value was refused: not finite, not a number, or not exact under ``"exact"``."""


def _to_decimal(value: float | int | Decimal | str) -> Decimal:
    if isinstance(value, bool):
        raise UnitConversionError("bool is not an amount")
    if isinstance(value, Decimal):
        d = value
    elif isinstance(value, int):
        d = Decimal(value)
    elif isinstance(value, float):
        d = Decimal(repr(float(value)))  # float(): numpy scalars repr as np.float64(...)
    elif isinstance(value, str):
        try:
            d = Decimal(value.strip())
        except InvalidOperation as e:
            raise UnitConversionError(f"not a number: {value!r}") from e
    else:
        # numpy scalars: integers exactly, anything else through float's repr.
        try:
            d = Decimal(operator.index(value))  # type: ignore[arg-type]
        except TypeError:
            try:
                d = Decimal(repr(float(value)))  # type: ignore[arg-type]
            except (TypeError, ValueError) as e:
                raise UnitConversionError(
                    f"unsupported amount type {type(value).__name__}"
                ) from e
    if not d.is_finite():
        raise UnitConversionError(f"amount must be finite, got {value!r}")
    return d


def to_units(value: float | int | Decimal | str, decimals: int, rounding: Rounding) -> int:
    """Convert ``value`` (whole dollars) to integer units of ``10**-decimals``.

    ``rounding`` is ``"down"`` (floor), ``"up"`` (ceiling) or ``"exact"`` (raise
    ``UnitConversionError`` unless no rounding is needed).
    """
    if not isinstance(decimals, int) or isinstance(decimals, bool) or decimals < 0:
        raise UnitConversionError(f"decimals must be a non-negative int, got {decimals!r}")
    d = _to_decimal(value)
    with localcontext() as ctx:
        ctx.prec = max(50, len(d.as_tuple().digits) + decimals + 10)
        scaled = d.scaleb(decimals)
        if rounding == "exact":
            q = scaled.to_integral_value()
            if q != scaled:
                raise UnitConversionError(
                    f"{value!r} is not a whole number of 1e-{decimals} units"
                )
            return int(q)
        try:
            mode = _MODES[rounding]
        except KeyError:
            raise UnitConversionError(
                f"rounding must be 'down', 'up' or 'exact', got {rounding!r}"
            ) from None
        return int(scaled.to_integral_value(rounding=mode))


def to_units_many(values: Iterable[float | int | Decimal | str], decimals: int,
                  rounding: Rounding) -> list[int]:
    """Convert each value with ``to_units``; accepts a numpy array or any iterable."""
    return [to_units(v, decimals, rounding) for v in values]


def from_units(units: int, decimals: int) -> Decimal:
    """Return ``units`` of ``10**-decimals`` as an exact ``Decimal`` of whole dollars."""
    if not isinstance(units, int) or isinstance(units, bool):
        raise UnitConversionError(f"units must be an int, got {type(units).__name__}")
    if not isinstance(decimals, int) or isinstance(decimals, bool) or decimals < 0:
        raise UnitConversionError(f"decimals must be a non-negative int, got {decimals!r}")
    return Decimal(units).scaleb(-decimals)
