"""Pure pieces of the client: exact unit conversion, markets, nonces. No I/O.

Units
    The API speaks integers: prices in quote units (10^-6 USDC per whole underlying),
    sizes in size units (10^-size_decimals of the underlying), balances and fees in the
    ledger's unit (10^-6 USDC). A human value (``str``, ``Decimal`` or ``int``) is turned
    into an integer with ``fractions.Fraction`` arithmetic, which is exact; a value that is
    not an exact multiple of the unit, the tick or the lot raises ``InvalidOrder`` before
    anything is signed or sent, never rounded. ``float`` is refused: ``0.1`` is not one
    tenth, and a ledger must not guess which decimal the caller meant. Integers coming
    back are returned as ``Decimal`` built from their digits (exact; ``Decimal`` is a
    number, so ccxt-shaped results need no float at all). ``average`` is the only
    computed quotient and is rounded to 28 significant digits (display only).

Nonces
    The venue accepts any uint64 nonce not used before by the same ``(account, signer)``
    while a message carrying it could still be accepted (``aggregator.core.nonces``):
    there is no ordering rule, so a client needs only uniqueness per signer. A counter
    restarting at 1 collides after a restart; a millisecond timestamp collides between
    two processes trading in the same millisecond (ccxt issue 30348). ``NonceGenerator``
    returns ``(microseconds since 2025-01-01 UTC) << 16 | salt`` with a 16-bit ``salt``
    drawn at random once per generator, forced strictly increasing:

    - within one client: strictly increasing, so never repeated;
    - across restarts: a new process starts at the current microsecond, after every
      nonce the old one used (it could run ahead of the clock only by signing more than
      one message per microsecond on average), unless the wall clock is stepped back;
    - across parallel clients: their nonces differ in the low 16 bits unless they drew
      the same salt (probability 2^-16 per pair) *and* hit the same microsecond slot.
    The venue keys nonces by signer, so a session key and its account never collide.
    The value stays below 2^64 until 2033-11 (2^48 microseconds after the epoch).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from fractions import Fraction
from typing import Any

from aggregator.client.errors import InvalidOrder

__all__ = [
    "QUOTE",
    "QUOTE_DECIMALS",
    "Human",
    "Market",
    "NonceGenerator",
    "to_units",
    "from_units",
    "market_from_info",
    "iso8601",
]

QUOTE = "USDC"
QUOTE_DECIMALS = 6
NONCE_EPOCH_US = 1_735_689_600_000_000  # 2025-01-01T00:00:00Z
UINT64_MAX = 2**64 - 1

Human = str | Decimal | int


def _fraction(value: Any, what: str) -> Fraction:
    if isinstance(value, bool) or isinstance(value, float):
        raise InvalidOrder(f"{what} must be a str, Decimal or int (not {type(value).__name__}): a float "
                           f"cannot say which decimal it means")
    if isinstance(value, int):
        return Fraction(value)
    if isinstance(value, str):
        try:
            value = Decimal(value.strip())
        except ArithmeticError:
            raise InvalidOrder(f"{what} {value[:40]!r} is not a decimal number") from None
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise InvalidOrder(f"{what} must be finite, got {value}")
        return Fraction(value)
    raise InvalidOrder(f"{what} must be a str, Decimal or int, got {type(value).__name__}")


def to_units(value: Human, decimals: int, step: int = 1, what: str = "value", *, allow_zero: bool = False) -> int:
    """Return ``value`` in integer units of ``10^-decimals``, a positive multiple of ``step``.

    Raise ``InvalidOrder`` if the value is negative, zero (unless ``allow_zero``), finer
    than the unit, or not a multiple of ``step``: nothing is ever rounded.
    """
    f = _fraction(value, what) * 10**decimals
    if f.denominator != 1:
        raise InvalidOrder(f"{what} {value} has more than {decimals} decimals: refusing to round it")
    n = f.numerator
    if n < 0 or (n == 0 and not allow_zero):
        raise InvalidOrder(f"{what} must be {'non-negative' if allow_zero else 'positive'}, got {value}")
    if n % step:
        raise InvalidOrder(f"{what} {value} is not a multiple of {from_units(step, decimals)} "
                           f"({n} units, step {step}): refusing to round it")
    return n


def from_units(n: int | str, decimals: int) -> Decimal:
    """Return integer units as an exact ``Decimal`` (``from_units(3001000000, 6) == Decimal('3001.000000')``)."""
    n = int(n)
    sign = 1 if n < 0 else 0
    digits = tuple(int(c) for c in str(abs(n)))
    return Decimal((sign, digits, -decimals))


def iso8601(ts_ms: int | None) -> str | None:
    """Return a millisecond timestamp as ccxt's ISO 8601 text (``2026-09-21T12:53:20.000Z``)."""
    if ts_ms is None:
        return None
    d = datetime.fromtimestamp(ts_ms / 1000, UTC)
    return d.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts_ms % 1000:03d}Z"


@dataclass(frozen=True, slots=True)
class Market:
    """One instrument: its venue id, its ccxt symbol and the integer rules of its prices and sizes."""

    id: str
    symbol: str
    base: str
    kind: str  # "perpetual" | "option"
    tick_size: int
    lot_size: int
    min_size: int
    max_size: int
    size_decimals: int
    info: Mapping[str, Any] = field(compare=False, repr=False)

    def price_units(self, price: Human, what: str = "price") -> int:
        """Return ``price`` (USDC per whole underlying) in quote units, refusing an off-tick value."""
        return to_units(price, QUOTE_DECIMALS, self.tick_size, what)

    def size_units(self, amount: Human, what: str = "amount") -> int:
        """Return ``amount`` (underlying) in size units, refusing an off-lot or out-of-range value."""
        n = to_units(amount, self.size_decimals, self.lot_size, what)
        if not self.min_size <= n <= self.max_size:
            raise InvalidOrder(f"{what} {amount} is outside [{from_units(self.min_size, self.size_decimals)}, "
                               f"{from_units(self.max_size, self.size_decimals)}] for {self.id}")
        return n

    def price(self, n: int | str) -> Decimal:
        """Return quote units as a ``Decimal`` price."""
        return from_units(n, QUOTE_DECIMALS)

    def amount(self, n: int | str) -> Decimal:
        """Return size units as a ``Decimal`` amount of the underlying."""
        return from_units(n, self.size_decimals)

    def cost(self, price: int, size: int) -> Decimal:
        """Return the notional of ``size`` at ``price`` in USDC (exact by the instrument invariant)."""
        return from_units(price * size, self.size_decimals + QUOTE_DECIMALS)

    def ccxt(self) -> dict[str, Any]:
        """Return the ccxt market structure (precision and limits as exact ``Decimal``)."""
        i = self.info
        option = self.kind == "option"
        expiry = i.get("expiry_ms")
        return {
            "id": self.id, "symbol": self.symbol, "base": self.base, "quote": QUOTE, "settle": QUOTE,
            "baseId": self.base, "quoteId": QUOTE, "settleId": QUOTE,
            "type": "option" if option else "swap", "spot": False, "margin": False, "swap": not option,
            "future": False, "option": option, "active": i.get("status", "ok") == "ok", "contract": True,
            "linear": True, "inverse": False, "contractSize": Decimal(1),
            "expiry": expiry, "expiryDatetime": iso8601(expiry),
            "strike": from_units(i["strike"], QUOTE_DECIMALS) if option and i.get("strike") is not None else None,
            "optionType": {"C": "call", "P": "put"}.get(i.get("option_type") or "") if option else None,
            "taker": None, "maker": None,
            "precision": {"amount": self.amount(self.lot_size), "price": self.price(self.tick_size)},
            "limits": {"amount": {"min": self.amount(self.min_size), "max": self.amount(self.max_size)},
                       "price": {"min": self.price(self.tick_size), "max": None},
                       "cost": {"min": None, "max": None}, "leverage": {"min": None, "max": None}},
            "created": None, "info": dict(i),
        }


def _strike_text(strike: int) -> str:
    d = from_units(strike, QUOTE_DECIMALS).normalize()
    return f"{d:f}"


def market_from_info(info: Mapping[str, Any]) -> Market:
    """Return the ``Market`` of one ``GET /v1/markets`` entry (ccxt symbol ``ETH/USDC:USDC[-YYMMDD-K-C]``)."""
    name = str(info["instrument"])
    base = str(info.get("underlying") or name.split("-")[0])
    kind = str(info.get("kind") or ("perpetual" if name.endswith("-PERP") else "option"))
    symbol = f"{base}/{QUOTE}:{QUOTE}"
    if kind == "option":
        exp = datetime.fromtimestamp(int(info["expiry_ms"]) / 1000, UTC)
        symbol += f"-{exp:%y%m%d}-{_strike_text(int(info['strike']))}-{info['option_type']}"
    return Market(name, symbol, base, kind, int(info["tick_size"]), int(info["lot_size"]), int(info["min_size"]),
                  int(info["max_size"]), int(info["size_decimals"]), info)


class NonceGenerator:
    """Strictly increasing uint64 nonces, unique across restarts and parallel clients (module doc)."""

    __slots__ = ("salt", "_last", "_clock_us")

    def __init__(self, salt: int | None = None, clock_us: Callable[[], int] | None = None) -> None:
        self.salt = secrets.randbits(16) if salt is None else salt
        if not 0 <= self.salt < 1 << 16:
            raise ValueError(f"salt must be 16 bits, got {self.salt}")
        self._clock_us = clock_us or (lambda: time.time_ns() // 1000)
        self._last = -1

    def __call__(self) -> int:
        """Return the next nonce."""
        n = ((self._clock_us() - NONCE_EPOCH_US) << 16) | self.salt
        if n <= self._last:
            n = self._last + (1 << 16)  # keep the salt in the low bits
        if not 0 <= n <= UINT64_MAX:
            raise OverflowError(f"nonce {n} does not fit in uint64 (clock before 2025 or after 2033?)")
        self._last = n
        return n
