"""Ledger entities of the sequencer: accounts, positions with open-order reserves, market info.

Invariants
    - ``Account.balances`` maps chain id -> balance in ledger internal units (1e-6 USDC);
      ``Account.total`` is always their sum (kept incrementally). Only the sequencer's
      ``_move`` changes a balance, and it keeps the per-step conservation sum.
    - ``Exposure`` is one account's state in one instrument: the signed position ``size``
      (size units; > 0 long), the open position's cost ``cost`` (sum of price * size,
      unscaled: quote units x size units, for the average entry), informational realised
      PnL ``realised_raw`` (same unscaled unit), and the open orders' reserves:
      ``buy_qty`` / ``sell_qty`` (remaining size) and ``buy_value`` (sum of price *
      remaining of buys, unscaled). An exposure with everything zero is removed.
    - ``Market`` is the sequencer's view of one listed instrument: contract constants,
      its order book, the holders of non-zero positions (account -> exposure, insertion
      ordered, so iteration is deterministic), the last trade price, recent trades and the
      rolling 24-hour statistics.
"""

from __future__ import annotations

from collections import deque

from aggregator.core.marketdata import DayStats
from aggregator.core.matching import OrderBook

__all__ = ["Account", "Exposure", "Market", "RestingOrder"]


class Market:
    """One listed instrument as the sequencer sees it."""

    __slots__ = ("name", "underlying", "is_perp", "is_call", "strike", "expiry_ms", "scale", "tick",
                 "lot", "min_size", "max_size", "book", "holders", "active", "last_price", "trades",
                 "settled", "instrument", "risk", "im_bps", "mm_bps", "day")

    def __init__(self, instrument, book: OrderBook, trades_kept: int, risk=None) -> None:  # noqa: ANN001
        self.instrument = instrument
        self.name: str = instrument.name
        self.underlying: str = instrument.underlying.symbol
        self.is_perp: bool = not instrument.is_option
        self.is_call: bool = bool(instrument.is_option and instrument.option_type.value == "C")
        self.strike: int = instrument.strike or 0
        self.expiry_ms: int | None = instrument.expiry_ms
        self.scale: int = 10**instrument.underlying.size_decimals
        s = instrument.spec
        self.tick: int = s.tick_size
        self.lot: int = s.lot_size
        self.min_size: int = s.min_size
        self.max_size: int = s.max_size if s.max_size is not None else 1 << 62
        self.book = book
        self.holders: dict[Account, Exposure] = {}
        self.active = True
        self.settled = False
        self.last_price: int | None = None
        self.trades: deque = deque(maxlen=trades_kept)
        self.day = DayStats()  # rolling 24-hour volume, high, low (aggregator.core.marketdata)
        # the underlying's RiskParams (aggregator.core.risk), kept here for the margin hot path
        self.risk = risk
        self.im_bps: int = risk.im_bps if risk is not None else 0
        self.mm_bps: int = risk.mm_bps if risk is not None else 0


class Exposure:
    """An account's position and open-order reserves in one market."""

    __slots__ = ("market", "size", "cost", "realised_raw", "buy_qty", "sell_qty", "buy_value", "funding")

    def __init__(self, market: Market) -> None:
        self.market = market
        self.size = 0
        self.cost = 0
        self.realised_raw = 0
        self.buy_qty = 0
        self.sell_qty = 0
        self.buy_value = 0
        self.funding = 0  # cumulative funding paid (>0) / received (<0), internal units

    def empty(self) -> bool:
        """Return whether nothing is held or reserved."""
        return not (self.size or self.buy_qty or self.sell_qty)

    def trade(self, delta: int, price: int) -> int:
        """Apply a fill of signed ``delta`` at ``price`` to size and cost; return realised (unscaled)."""
        s = self.size
        if s == 0 or (s > 0) == (delta > 0):
            self.cost += price * abs(delta)
            self.size = s + delta
            return 0
        a = abs(s)
        closing = min(abs(delta), a)
        removed = self.cost * closing // a
        pnl = price * closing - removed if s > 0 else removed - price * closing
        self.cost -= removed
        self.size = s + delta
        rest = abs(delta) - closing
        if rest:
            self.cost = price * rest
        elif self.size == 0:
            self.cost = 0
        self.realised_raw += pnl
        return pnl

    def avg_entry(self) -> int:
        """Return the average entry price (quote units, floored), 0 when flat."""
        return self.cost // abs(self.size) if self.size else 0


class RestingOrder:
    """The sequencer's record of an order resting in a book (for reserves and reads)."""

    __slots__ = ("order_id", "client_order_id", "account", "market", "side", "price", "size", "remaining",
                 "reduce_only", "tif", "ts_ms", "expiry_ms", "value")

    def __init__(self, order_id: int, client_order_id: int, account: Account, market: Market, side: int,
                 price: int, size: int, remaining: int, reduce_only: bool, tif: int, ts_ms: int,
                 expiry_ms: int = 1 << 64) -> None:
        self.order_id = order_id
        self.client_order_id = client_order_id
        self.account = account
        self.market = market
        self.side = side
        self.price = price
        self.size = size
        self.remaining = remaining
        self.reduce_only = reduce_only
        self.tif = tif
        self.ts_ms = ts_ms
        self.expiry_ms = expiry_ms  # the signed order's expiry: it rests until then (good-til-time)
        self.value = 0  # sum of price * size of its fills so far (unscaled), for the average fill price


class Account:
    """A unified cross-margin account: balances per chain, exposures, resting orders."""

    __slots__ = ("address", "balances", "total", "primary_chain", "exposures", "orders", "sessions", "fills",
                 "liquidations", "ro_orders", "mm_cap", "mm_sens", "done")

    def __init__(self, address: str, primary_chain: int, fills_kept: int, orders_kept: int = 200) -> None:
        self.address = address
        self.balances: dict[int, int] = {}
        self.total = 0
        self.primary_chain = primary_chain  # where trading flows are booked
        self.exposures: dict[str, Exposure] = {}
        self.orders: dict[int, RestingOrder] = {}
        self.sessions: dict[str, int] = {}  # session key -> valid until (ms)
        self.fills: deque = deque(maxlen=fills_kept)
        # the last orders that ended (filled, cancelled, expired), oldest first; see Sequencer._done
        self.done: deque = deque(maxlen=orders_kept)
        self.liquidations = 0
        self.ro_orders = 0  # resting reduce-only orders (the sequencer re-checks them when a position moves)
        # the liquidation sweep's cache (see Sequencer._sweep): the exact maintenance requirement when
        # last computed (None: positions changed since) and, per underlying, how fast it can grow
        self.mm_cap: int | None = None
        self.mm_sens: list = []  # [underlying, drift then, growth numerator, denominator, slack]

    def exposure(self, market: Market) -> Exposure:
        """Return (creating if needed) the exposure in ``market``."""
        ex = self.exposures.get(market.name)
        if ex is None:
            ex = self.exposures[market.name] = Exposure(market)
        return ex

