"""DEVNET MARKET SIMULATOR: deterministic synthetic prices. Not a market, never production.

``MarketSimulator`` produces, for each symbol, a price path that is a pure function of
``(seed, start_ms, step_ms)`` and the time asked for:
- crypto (ETH, BTC): a log random walk every step with rare jumps (24/7);
- equity (SPY): moves only in NYSE sessions (full volatility in the regular session,
  a quarter of it pre/post-market), with an overnight gap at the open; nothing moves on
  weekends and holidays, so the last publish time stays at the last session;
- metals (XAU) and FX (EUR/USD): move only while their calendars are open;
- fund NAV (TBILL): one step a day at 00:00 UTC (interest accrual, no randomness), with a
  halt/ripcord flag the devnet can raise (``set_halt``).
Randomness comes from BLAKE2b over ``(seed, symbol, step)`` with Box-Muller, so the path
is the same on every machine and every run. Floats are used inside the walk only; prices
leave the simulator as ``Decimal`` rounded to 8 decimals by formatting, deterministically.

``SimulatedVenue`` is a ``PriceSource`` reading the simulator as one venue (``sim-a``,
``sim-b``, ...): the common price plus a small deterministic venue noise and a confidence
of a few basis points. Tests can take a venue down or bias it to exercise quorum and
deviation rules.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal

from oracles.calendar import FX, METALS, MarketCalendar, NyseCalendar
from oracles.sources.base import Clock, PriceSource, SourceUnavailable, wall_clock_ms
from oracles.types import Observation, Session

YEAR_S = 365 * 86400
DAY_MS = 86_400_000


@dataclass(frozen=True)
class AssetModel:
    """How one simulated symbol moves. Volatilities are annualised fractions."""

    symbol: str
    kind: str  # crypto | equity | metal | fx | nav
    initial: float
    vol: float = 0.0
    jump_prob: float = 0.0  # per step
    jump_sigma: float = 0.0
    gap_sigma: float = 0.0  # equity: overnight gap at the open
    nav_apr: float = 0.0
    noise_bps: float = 1.0  # venue noise (std dev)
    conf_bps: float = 2.0


DEFAULT_MODELS: dict[str, AssetModel] = {
    m.symbol: m
    for m in (
        AssetModel("ETH", "crypto", 3000.0, vol=0.8, jump_prob=2e-5, jump_sigma=0.02),
        AssetModel("BTC", "crypto", 95000.0, vol=0.6, jump_prob=2e-5, jump_sigma=0.015),
        AssetModel("SPY", "equity", 600.0, vol=0.18, gap_sigma=0.004, noise_bps=0.5, conf_bps=1.0),
        AssetModel("XAU", "metal", 2900.0, vol=0.15, noise_bps=0.5, conf_bps=1.0),
        AssetModel("EURUSD", "fx", 1.08, vol=0.07, noise_bps=0.2, conf_bps=0.5),
        AssetModel("TBILL", "nav", 1.0, nav_apr=0.045, noise_bps=0.0, conf_bps=0.0),
    )
}

_CALENDARS: dict[str, MarketCalendar] = {
    "equity": NyseCalendar(extended_hours=True),
    "metal": METALS,
    "fx": FX,
}


def _uniforms(seed: int, *key: object) -> tuple[float, float, float, float]:
    h = hashlib.blake2b(repr((seed, *key)).encode(), digest_size=32).digest()
    return tuple((int.from_bytes(h[i:i + 8], "big") + 0.5) / 2**64 for i in (0, 8, 16, 24))  # type: ignore[return-value]


def _gauss(u1: float, u2: float) -> float:
    return math.sqrt(-2.0 * math.log(u1)) * math.cos(2.0 * math.pi * u2)


def _dec8(x: float) -> Decimal:
    return Decimal(f"{x:.8f}")


@dataclass
class _Cursor:
    step: int
    logp: float
    last_tick_step: int
    was_regular: bool


class MarketSimulator:
    """The devnet's synthetic market; see the module docstring."""

    def __init__(self, seed: int = 7, start_ms: int = 0, step_ms: int = 1000,
                 models: Mapping[str, AssetModel] | None = None) -> None:
        self.seed = seed
        self.start_ms = start_ms
        self.step_ms = step_ms
        self.models = dict(models or DEFAULT_MODELS)
        self._cursors: dict[str, _Cursor] = {}
        self._shocks: dict[str, dict[int, float]] = {}
        self._halts: dict[str, list[tuple[int, bool]]] = {}

    # -------------------------------------------------------------- controls (devnet/tests)

    def shock(self, symbol: str, at_ms: int, factor: float) -> None:
        """Multiply ``symbol``'s price by ``factor`` from the step at ``at_ms`` on."""
        k = max(0, (at_ms - self.start_ms) // self.step_ms)
        self._shocks.setdefault(symbol, {})[k] = factor
        self._cursors.pop(symbol, None)

    def set_halt(self, symbol: str, halted: bool, at_ms: int) -> None:
        """Raise or lower the fund's halt (ripcord) flag at ``at_ms``."""
        self._halts.setdefault(symbol, []).append((at_ms, halted))
        self._halts[symbol].sort()

    # -------------------------------------------------------------- prices

    def quote(self, symbol: str, now_ms: int) -> tuple[Decimal, int, bool] | None:
        """Return ``(price, publish_ms, halted)`` of ``symbol`` at ``now_ms``, or ``None``
        before the simulation starts."""
        if now_ms < self.start_ms:
            return None
        m = self.models[symbol]
        if m.kind == "nav":
            return self._nav(m, now_ms)
        k = (now_ms - self.start_ms) // self.step_ms
        cur = self._advance(m, k)
        return _dec8(m.initial * math.exp(cur.logp)), self.start_ms + cur.last_tick_step * self.step_ms, False

    def _nav(self, m: AssetModel, now_ms: int) -> tuple[Decimal, int, bool]:
        day = now_ms // DAY_MS
        day0 = self.start_ms // DAY_MS
        nav = Decimal(repr(m.initial)) * (1 + Decimal(repr(m.nav_apr)) / 365) ** (day - day0)
        publish = day * DAY_MS
        halted = False
        for at_ms, flag in self._halts.get(m.symbol, ()):
            if at_ms <= now_ms:
                halted = flag
                publish = max(publish, at_ms)
        return nav.quantize(Decimal("1e-8")), publish, halted

    def _session(self, m: AssetModel, t_ms: int) -> Session:
        cal = _CALENDARS.get(m.kind)
        if cal is None:
            return Session.REGULAR
        info = cal.session_at(t_ms)
        return info.session if info.tradable else Session.CLOSED

    def _advance(self, m: AssetModel, k: int) -> _Cursor:
        cur = self._cursors.get(m.symbol)
        if cur is None or cur.step > k:
            s0 = self._session(m, self.start_ms)
            cur = _Cursor(0, 0.0, 0, s0 is Session.REGULAR)
        shocks = self._shocks.get(m.symbol, {})
        step_years = self.step_ms / 1000 / YEAR_S
        # trading-time scaling so that annual vol means the same over the open hours
        open_fraction = {"crypto": 1.0, "equity": 252 * 6.5 / (365 * 24), "metal": 5 * 23 / (7 * 24),
                         "fx": 5 / 7}.get(m.kind, 1.0)
        sigma = m.vol * math.sqrt(step_years / open_fraction)
        while cur.step < k:
            i = cur.step + 1
            t = self.start_ms + i * self.step_ms
            session = self._session(m, t)
            if session is not Session.CLOSED:
                u1, u2, u3, u4 = _uniforms(self.seed, m.symbol, i)
                s = sigma if session is Session.REGULAR else sigma / 4
                move = s * _gauss(u1, u2) - 0.5 * s * s
                if m.jump_prob and u3 < m.jump_prob:
                    move += m.jump_sigma * _gauss(u4, u2)
                if m.gap_sigma and session is Session.REGULAR and not cur.was_regular:
                    move += m.gap_sigma * _gauss(u4, u1)
                cur.logp += move
                cur.last_tick_step = i
            if i in shocks:
                cur.logp += math.log(shocks[i])
                cur.last_tick_step = i
            cur.was_regular = session is Session.REGULAR
            cur.step = i
        self._cursors[m.symbol] = cur
        return cur

    def venue_quote(self, venue: str, symbol: str, now_ms: int) -> tuple[Decimal, Decimal, int, bool] | None:
        """Return ``(price, confidence, publish_ms, halted)`` as venue ``venue`` shows it."""
        q = self.quote(symbol, now_ms)
        if q is None:
            return None
        price, publish, halted = q
        m = self.models[symbol]
        if m.noise_bps:
            u1, u2, _, _ = _uniforms(self.seed, venue, symbol, publish)
            price = _dec8(float(price) * (1 + m.noise_bps / 10_000 * _gauss(u1, u2)))
        conf = _dec8(float(price) * m.conf_bps / 10_000)
        return price, conf, publish, halted


class SimulatedVenue(PriceSource):
    """One venue of the DEVNET MARKET SIMULATOR as a price source."""

    def __init__(self, simulator: MarketSimulator, name: str, symbols: Mapping[str, str],
                 clock: Clock = wall_clock_ms) -> None:
        super().__init__(name, symbols)
        self.simulator = simulator
        self.clock = clock
        self.down = False
        self.bias_bps: dict[str, int] = {}

    async def fetch(self, feeds: Sequence[str] | None = None) -> list[Observation]:
        if self.down:
            raise SourceUnavailable(f"{self.name}: simulated outage")
        now = self.clock()
        out = []
        for feed, symbol in self._wanted(feeds).items():
            q = self.simulator.venue_quote(self.name, symbol, now)
            if q is None:
                continue
            price, conf, publish, halted = q
            bias = self.bias_bps.get(feed)
            if bias:
                price = (price * (10_000 + bias) / 10_000).quantize(Decimal("1e-8"))
            out.append(Observation(feed, self.name, price, publish, conf, halted))
        return out
