"""Risk parameters and integer margin arithmetic of the sequencer.

Units: prices and marks in quote units (1e-6 USDC per whole underlying), sizes in the
instrument's size units (10^-size_decimals underlying), money in ledger internal units
(1e-6 USDC, the same as a quote unit). ``scale = 10**size_decimals``. Every amount that
reaches the ledger is an integer; a requirement or a fee rounds *up* (ceiling), a
payout rounds *down* (floor). Floats appear only in option marks (Black-76), which are
informational (display, unrealised PnL) and never reach a balance; they convert through
``aggregator.core.units.to_units`` rounding down.

Rules (see also ``aggregator.core.sequencer``'s module doc)
    - Perp mark: the oracle index (8-decimal ``PriceUpdate.price``) converted to quote
      units by flooring to 1e-6 USDC, then rounded to the nearest perp tick (half up, at
      least one tick). One mark per underlying, so variation PnL between two sides of a
      position is exactly zero-sum (tick*lot is a multiple of scale).
    - Perp initial margin for one instrument, with open orders reserved:
      ``ceil(max(|s + B|, |s - S|) * mark * im_bps / (scale * 10^4))`` where ``s`` is the
      signed position, ``B``/``S`` the open buy/sell quantity. Maintenance:
      ``ceil(|s| * mark * mm_bps / (scale * 10^4))``.
    - Options, fully collateralised: a long needs nothing beyond its premium, which is
      paid at trade; open buy orders reserve ``ceil(sum(price*remaining) / scale)``.
      A short (position plus open sells beyond the long) needs, per whole underlying:
      put ``strike`` (its maximum loss); call ``max(mark*(1+shock) - strike,
      mark*floor)``: the loss if spot jumps by ``call_shock_bps`` (default +100%), never
      less than ``call_floor_bps`` of spot (default 10%). Long options count zero
      collateral. The same requirement is used for initial and maintenance margin.
    - Funding rate per interval, in 1e-8 units: ``clamp((ref - index) * 10^8 / index,
      +-clamp)`` truncated toward zero, with ``ref`` the book mid (both sides quoted), else
      the last trade, else no funding. A long pays ``size * mark * rate / (scale*10^8)``
      (payers round up, receivers down; the remainder goes to the insurance fund).
"""

from __future__ import annotations

from dataclasses import dataclass

from aggregator.core.units import to_units

__all__ = [
    "BPS",
    "RATE_ONE",
    "RiskParams",
    "ceil_div",
    "fee",
    "index_to_quote",
    "round_to_tick",
    "perp_initial",
    "perp_maintenance",
    "short_option_unit",
    "funding_rate_e8",
    "funding_payment",
    "option_mark",
]

BPS = 10_000
RATE_ONE = 100_000_000  # funding rates are in 1e-8
ORACLE_DECIMALS = 8
YEAR_MS = 365 * 86_400_000


@dataclass(frozen=True, slots=True)
class RiskParams:
    """Per-underlying risk parameters (integers in basis points, except ``option_vol``)."""

    im_bps: int = 1_000  # perp initial margin ratio (10%)
    mm_bps: int = 500  # perp maintenance margin ratio (5%)
    call_shock_bps: int = 10_000  # short call: loss at spot * (1 + 100%)
    call_floor_bps: int = 1_000  # short call: at least 10% of spot per unit
    option_vol: float = 0.6  # Black-76 vol for option marks (an SVI surface later)

    def __post_init__(self) -> None:
        for n in ("im_bps", "mm_bps", "call_shock_bps", "call_floor_bps"):
            v = getattr(self, n)
            if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                raise ValueError(f"{n} must be a non-negative int, got {v!r}")
        if not 0 < self.mm_bps <= self.im_bps <= BPS:
            raise ValueError(f"need 0 < mm_bps ({self.mm_bps}) <= im_bps ({self.im_bps}) <= 10000")
        if not self.option_vol > 0:
            raise ValueError("option_vol must be positive")


def ceil_div(a: int, b: int) -> int:
    """Return ceil(a / b) for b > 0."""
    return -(-a // b)


def fee(notional: int, bps: int) -> int:
    """Return the fee on ``notional`` internal units, rounded up."""
    return -(-notional * bps // BPS)


def index_to_quote(price8: int, quote_decimals: int = 6) -> int:
    """Convert an 8-decimal oracle price to quote units, flooring what they cannot express."""
    shift = ORACLE_DECIMALS - quote_decimals
    return price8 // 10**shift if shift >= 0 else price8 * 10**(-shift)


def round_to_tick(q: int, tick: int) -> int:
    """Round quote units to the nearest multiple of ``tick`` (half up), at least one tick."""
    return max(tick, (q + tick // 2) // tick * tick)


def perp_initial(size: int, buy_qty: int, sell_qty: int, mark: int, scale: int, im_bps: int) -> int:
    """Return the initial margin of a perp position plus its open orders (rounded up)."""
    q = max(abs(size + buy_qty), abs(size - sell_qty))
    return -(-q * mark * im_bps // (scale * BPS))


def perp_maintenance(size: int, mark: int, scale: int, mm_bps: int) -> int:
    """Return the maintenance margin of a perp position (rounded up)."""
    return -(-abs(size) * mark * mm_bps // (scale * BPS))


def short_option_unit(is_call: bool, strike: int, mark: int, p: RiskParams) -> int:
    """Return the collateral per whole underlying of a short option (quote units, rounded up)."""
    if not is_call:
        return strike
    shocked = -(-mark * (BPS + p.call_shock_bps) // BPS) - strike
    floor_ = -(-mark * p.call_floor_bps // BPS)
    return max(shocked, floor_)


def funding_rate_e8(ref: int, index: int, clamp_e8: int) -> int:
    """Return the clamped premium ``(ref - index) / index`` in 1e-8, truncated toward zero."""
    diff = ref - index
    r = abs(diff) * RATE_ONE // index
    r = min(r, clamp_e8)
    return r if diff >= 0 else -r


def funding_payment(size: int, mark: int, rate_e8: int, scale: int) -> int:
    """Return what a position pays (>0) or receives (<0); payers round up, receivers down."""
    raw = size * mark * rate_e8
    den = scale * RATE_ONE
    return -(-raw // den) if raw > 0 else -((-raw) // den)


def option_mark(index: int, strike: int, expiry_ms: int, now_ms: int, is_call: bool, vol: float) -> int:
    """Return the Black-76 mark of an option in quote units (forward = index, r = 0), rounded down.

    Informational only (display, unrealised PnL): no balance depends on it.
    """
    from aggregator.core.pricing import black76_price

    t = max(expiry_ms - now_ms, 0) / YEAR_MS
    v = float(black76_price(index / 1e6, strike / 1e6, t, vol, 0.0, is_call))
    return max(to_units(v, 6, "down"), 0)
