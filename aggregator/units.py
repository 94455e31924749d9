"""Token units ↔ the ledger's internal unit, never rounding in the trader's favour.

Every chain's collateral token has its own decimals (USDC: 6 on most chains, 18 on
some). The unified account counts in one internal unit, 10^-d of a dollar (d from
``chains.toml``'s ``[ledger] decimals``). A native amount converts to internal units
rounding *down* (the trader is credited no more than they hold); internal units convert
to native exactly when the token has at least as many decimals, and rounding down
otherwise (the vault never pays more than was debited). Integers only.
"""

from __future__ import annotations


class UnitError(ValueError):
    """A conversion was asked for something that is not a non-negative integer amount."""


def _check(amount: int) -> None:
    if not isinstance(amount, int) or isinstance(amount, bool):
        raise UnitError(f"amount must be an int, got {type(amount).__name__}")


def to_internal(native: int, token_decimals: int, ledger_decimals: int) -> int:
    """Return ``native`` token units in internal units, rounded toward zero for credits."""
    _check(native)
    shift = token_decimals - ledger_decimals
    if shift >= 0:
        q = abs(native) // 10**shift
        return q if native >= 0 else -q
    return native * 10**(-shift)


def to_native(internal: int, token_decimals: int, ledger_decimals: int) -> int:
    """Return ``internal`` units in native token units, rounded toward zero for payouts."""
    _check(internal)
    shift = token_decimals - ledger_decimals
    if shift >= 0:
        return internal * 10**shift
    q = abs(internal) // 10**(-shift)
    return q if internal >= 0 else -q


def dust(native: int, token_decimals: int, ledger_decimals: int) -> int:
    """Return the part of ``native`` that the internal unit cannot express."""
    return native - to_native(to_internal(native, token_decimals, ledger_decimals), token_decimals, ledger_decimals)
