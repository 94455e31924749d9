"""Value types of the oracle core: observations, statuses, aggregates.

Invariants:
- Prices handed to aggregation are fixed-point integers with ``PRICE_DECIMALS`` (8)
  decimals, Chainlink-style; an ``Observation`` carries an exact ``Decimal`` as the source
  reported it, so that zero, negative, NaN and infinite values reach the rules and are
  rejected there with a reason instead of being lost in a conversion.
- Every time in the core is an integer of milliseconds since the Unix epoch (UTC);
  signed reports carry whole seconds.
- ``to_fixed`` is the one place where a price is rounded (half to even), and it refuses
  non-finite values.
- All types are frozen: an observation or an aggregate never changes after it is made.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from enum import Enum, IntEnum

PRICE_DECIMALS = 8
PRICE_SCALE = 10**PRICE_DECIMALS
BPS = 10_000


class OracleError(Exception):
    """Root of every error raised by the oracle package."""


class LossyConversion(OracleError):
    """A value cannot be represented as a fixed-point integer (NaN, infinite)."""


def to_fixed(value: Decimal | int | str, decimals: int = PRICE_DECIMALS) -> int:
    """Return ``value`` as an integer with ``decimals`` decimals, rounding half to even.

    Raise ``LossyConversion`` for NaN or infinite values.
    """
    try:
        d = Decimal(value)
    except (InvalidOperation, ValueError, TypeError) as e:
        raise LossyConversion(f"not a number: {value!r}") from e
    if not d.is_finite():
        raise LossyConversion(f"not a finite number: {value!r}")
    return int(d.scaleb(decimals).quantize(Decimal(1), rounding=ROUND_HALF_EVEN))


def from_fixed(value: int, decimals: int = PRICE_DECIMALS) -> Decimal:
    """Return the exact ``Decimal`` for a fixed-point integer."""
    return Decimal(value).scaleb(-decimals)


def format_fixed(value: int, decimals: int = PRICE_DECIMALS) -> str:
    """Format a fixed-point integer as a plain decimal string with all its decimals."""
    sign = "-" if value < 0 else ""
    q, r = divmod(abs(value), 10**decimals)
    return f"{sign}{q}.{r:0{decimals}d}" if decimals else f"{sign}{q}"


class FeedStatus(str, Enum):
    """What a consumer may do with a feed's price right now."""

    OK = "ok"
    STALE = "stale"
    MARKET_CLOSED = "market-closed"
    HALTED = "halted"
    DEVIATING = "deviating"


class MarketStatus(IntEnum):
    """Market status carried in a signed report (``uint8 marketStatus``).

    0 is never signed, so that an empty storage slot on-chain never reads as open.
    """

    UNKNOWN = 0
    OPEN = 1
    CLOSED = 2
    PRE_MARKET = 3
    POST_MARKET = 4
    HALTED = 5


class Session(str, Enum):
    """Trading session of a market at an instant, as a calendar sees it."""

    REGULAR = "regular"
    PRE_MARKET = "pre-market"
    POST_MARKET = "post-market"
    CLOSED = "closed"


@dataclass(frozen=True, slots=True)
class Observation:
    """One price seen by one source for one feed.

    ``price`` and ``confidence`` are exact decimals in the quote currency (USD);
    ``publish_ms`` is when the source says the price was valid; ``halted`` is a source's
    own halt/ripcord flag (a fund that stopped subscriptions and redemptions).
    """

    feed: str
    source: str
    price: Decimal
    publish_ms: int
    confidence: Decimal = Decimal(0)
    halted: bool = False


@dataclass(frozen=True, slots=True)
class Rejection:
    """An observation the rules refused, and why."""

    feed: str
    source: str
    reason: str
    publish_ms: int | None = None


@dataclass(frozen=True, slots=True)
class Aggregate:
    """The result of evaluating one feed at one instant.

    ``price``/``confidence`` (8 decimals) and ``timestamp_ms`` describe the last good
    aggregate; they are ``None`` until the feed has produced one. Only a status of
    ``OK`` means the price may be used as current. ``timestamp_ms`` is the oldest publish
    time among the observations the median was taken over (the price is at least that
    fresh). ``sources`` names those observations' sources.
    """

    feed: str
    status: FeedStatus
    reason: str
    evaluated_ms: int
    market_status: MarketStatus
    price: int | None = None
    confidence: int | None = None
    timestamp_ms: int | None = None
    sources: tuple[str, ...] = field(default_factory=tuple)

    @property
    def usable(self) -> bool:
        return self.status is FeedStatus.OK and self.price is not None
