"""Feed rules and median aggregation: the pure heart of the oracle.

``evaluate(config, state, observations, now_ms)`` returns the feed's aggregate, its next
state and the observations it rejected (each with a reason the caller logs). No I/O, no
clock, no randomness: the same inputs always give the same outputs.

Order of the rules (the first that fires decides the status):
1. operator halt or a source's halt flag  -> ``halted``
2. calendar says the market is not tradable -> ``market-closed``
3. per observation: NaN/infinite, zero, negative, future-dated (beyond ``max_future_s``),
   out of bounds, confidence too wide, older than the heartbeat, or published before the
   market (or the feed, after a halt) reopened -> rejected with a reason
4. fewer valid observations than the quorum -> ``stale``
5. median; sources further than ``max_deviation_bps`` from it are outliers; fewer
   agreeing sources than the quorum, or an aggregate confidence wider than
   ``max_confidence_bps`` -> ``deviating``
6. circuit breaker: a median further than ``max_jump_bps`` from the last good price
   halts the feed; the new level is accepted only once it has held (within
   ``max_deviation_bps``) for ``breaker_confirm_s``; a return near the last good price
   clears the breaker at once
7. otherwise ``ok``.

Invariants:
- a non-``ok`` aggregate never carries a new price: ``price`` is the last good one,
  shown for information, and ``usable`` is false (a feed goes stale, never wrong);
- the aggregate timestamp is the oldest publish time among the agreeing observations;
- after a market close or a halt, only an observation published at or after the reopen
  (strictly after the halting observation) can make the feed ``ok`` again;
- the median of an even count is the floor of the mean of the two middle values.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

from oracles.calendar import SessionInfo
from oracles.config import FeedConfig
from oracles.types import (
    BPS,
    Aggregate,
    FeedStatus,
    LossyConversion,
    MarketStatus,
    Observation,
    Rejection,
    Session,
    format_fixed,
    to_fixed,
)

_SESSION_STATUS = {
    Session.REGULAR: MarketStatus.OPEN,
    Session.PRE_MARKET: MarketStatus.PRE_MARKET,
    Session.POST_MARKET: MarketStatus.POST_MARKET,
    Session.CLOSED: MarketStatus.CLOSED,
}


@dataclass(frozen=True, slots=True)
class BreakerTrip:
    """A tripped circuit breaker: the jumped level and since when it has held."""

    candidate: int
    since_ms: int
    tripped_ms: int


@dataclass(frozen=True, slots=True)
class FeedState:
    """What a feed remembers between evaluations."""

    last_price: int | None = None
    last_confidence: int | None = None
    last_timestamp_ms: int | None = None
    operator_halt: str | None = None
    halted_until_after_ms: int | None = None
    source_halt: str | None = None
    breaker: BreakerTrip | None = None


@dataclass(frozen=True, slots=True)
class Evaluation:
    aggregate: Aggregate
    state: FeedState
    rejections: tuple[Rejection, ...]


def median(values: Sequence[int]) -> int:
    """Return the median of integers; for an even count, floor of the two middle values' mean."""
    if not values:
        raise ValueError("median of nothing")
    s = sorted(values)
    n = len(s)
    mid = n // 2
    return s[mid] if n % 2 else (s[mid - 1] + s[mid]) // 2


def deviation_bps(a: int, ref: int) -> int:
    """Return |a - ref| / ref in basis points, rounded up (``ref`` > 0)."""
    return -(-abs(a - ref) * BPS // ref)


def _fmt_bps(bps: int) -> str:
    return f"{bps / 100:.2f}%"


def latest_per_source(observations: Iterable[Observation], feed: str) -> list[Observation]:
    """Keep the newest observation of each source for ``feed``."""
    best: dict[str, Observation] = {}
    for o in observations:
        if o.feed != feed:
            continue
        cur = best.get(o.source)
        if cur is None or o.publish_ms > cur.publish_ms:
            best[o.source] = o
    return [best[k] for k in sorted(best)]


def check_observation(
    cfg: FeedConfig, o: Observation, now_ms: int, fresh_from_ms: int
) -> tuple[int, int] | str:
    """Return ``(price, confidence)`` as 8-decimal ints, or the reason to reject ``o``."""
    if not o.price.is_finite():
        return f"price is not a finite number ({o.price})"
    if o.price == 0:
        return "price is zero"
    if o.price < 0:
        return f"price is negative ({o.price})"
    if o.publish_ms > now_ms + cfg.max_future_s * 1000:
        return f"future-dated by {(o.publish_ms - now_ms) / 1000:.3f}s"
    try:
        price = to_fixed(o.price)
        conf = to_fixed(o.confidence)
    except LossyConversion as e:
        return str(e)
    if not cfg.min_price_fixed <= price <= cfg.max_price_fixed:
        return f"price {o.price} outside bounds [{cfg.min_price}, {cfg.max_price}]"
    if conf < 0:
        return f"confidence is negative ({o.confidence})"
    if conf * BPS > cfg.max_confidence_bps * price:
        return f"confidence {o.confidence} wider than {_fmt_bps(cfg.max_confidence_bps)} of price"
    age_ms = now_ms - o.publish_ms
    if age_ms > cfg.heartbeat_s * 1000:
        return f"stale: {age_ms // 1000}s old > heartbeat {cfg.heartbeat_s}s"
    if o.publish_ms < fresh_from_ms:
        return "published before the feed reopened (waiting for a fresh price)"
    return price, conf


def evaluate(
    cfg: FeedConfig,
    state: FeedState,
    observations: Iterable[Observation],
    now_ms: int,
    session: SessionInfo | None = None,
) -> Evaluation:
    """Apply the feed's rules to the latest observation of each source at ``now_ms``."""
    obs = latest_per_source(observations, cfg.name)
    if session is None:
        session = cfg.market_calendar.session_at(now_ms)
    market = _SESSION_STATUS[session.session]

    def result(status: FeedStatus, reason: str, st: FeedState, rej: Sequence[Rejection] = (),
               ms: MarketStatus | None = None) -> Evaluation:
        agg = Aggregate(
            feed=cfg.name, status=status, reason=reason, evaluated_ms=now_ms,
            market_status=ms if ms is not None else market,
            price=st.last_price, confidence=st.last_confidence, timestamp_ms=st.last_timestamp_ms,
        )
        return Evaluation(agg, st, tuple(rej))

    # 1. halts
    if state.operator_halt:
        return result(FeedStatus.HALTED, f"halted by operator: {state.operator_halt}", state,
                      ms=MarketStatus.HALTED)
    flagged = [o for o in obs if o.halted]
    if flagged:
        last_flag = max(o.publish_ms for o in flagged)
        prev = state.halted_until_after_ms or 0
        st = replace(state, source_halt=", ".join(o.source for o in flagged),
                     halted_until_after_ms=max(prev, last_flag))
        return result(FeedStatus.HALTED, f"halt flag set by {st.source_halt}", st, ms=MarketStatus.HALTED)
    if state.source_halt:
        state = replace(state, source_halt=None)

    # 2. calendar
    if not session.tradable:
        return result(FeedStatus.MARKET_CLOSED, session.reason, state)

    # 3. per-observation checks
    fresh_from = session.open_since_ms or 0
    if state.halted_until_after_ms is not None:
        fresh_from = max(fresh_from, state.halted_until_after_ms + 1)
    rejections: list[Rejection] = []
    valid: list[tuple[Observation, int, int]] = []
    for o in obs:
        checked = check_observation(cfg, o, now_ms, fresh_from)
        if isinstance(checked, str):
            rejections.append(Rejection(cfg.name, o.source, checked, o.publish_ms))
        else:
            valid.append((o, *checked))

    # 4. quorum
    if len(valid) < cfg.quorum:
        why = f"quorum not met: {len(valid)} of {cfg.quorum} valid fresh sources"
        if rejections:
            why += "; " + "; ".join(f"{r.source}: {r.reason}" for r in rejections[:3])
        return result(FeedStatus.STALE, why, state, rejections)

    # 5. median, outliers, confidence
    mid = median([p for _, p, _ in valid])
    agreeing = [(o, p, c) for o, p, c in valid if deviation_bps(p, mid) <= cfg.max_deviation_bps]
    outliers = [(o, p) for o, p, _ in valid if deviation_bps(p, mid) > cfg.max_deviation_bps]
    if len(agreeing) < cfg.quorum:
        spread = deviation_bps(max(p for _, p, _ in valid), min(p for _, p, _ in valid))
        why = (f"sources disagree: spread {_fmt_bps(spread)} > {_fmt_bps(cfg.max_deviation_bps)}, "
               f"{len(agreeing)} of {cfg.quorum} agree")
        return result(FeedStatus.DEVIATING, why, state, rejections)
    price = median([p for _, p, _ in agreeing])
    conf = max(median([c for _, _, c in agreeing]), max(abs(p - price) for _, p, _ in agreeing))
    if conf * BPS > cfg.max_confidence_bps * price:
        why = f"aggregate confidence {format_fixed(conf)} wider than {_fmt_bps(cfg.max_confidence_bps)}"
        return result(FeedStatus.DEVIATING, why, state, rejections)
    ts = min(o.publish_ms for o, _, _ in agreeing)
    sources = tuple(o.source for o, _, _ in agreeing)

    # 6. circuit breaker
    reason = "ok"
    if outliers:
        reason = "ok; outliers dropped: " + ", ".join(
            f"{o.source} {'+' if p > mid else '-'}{_fmt_bps(deviation_bps(p, mid))}" for o, p in outliers
        )
    if state.last_price is not None and deviation_bps(price, state.last_price) > cfg.max_jump_bps:
        trip = state.breaker
        if trip is None or deviation_bps(price, trip.candidate) > cfg.max_deviation_bps:
            trip = BreakerTrip(candidate=price, since_ms=now_ms,
                               tripped_ms=trip.tripped_ms if trip else now_ms)
        st = replace(state, breaker=trip)
        if now_ms - trip.since_ms < cfg.breaker_confirm_s * 1000 or trip.since_ms == now_ms:
            jump = deviation_bps(price, state.last_price)
            why = (f"circuit breaker: jump {_fmt_bps(jump)} > {_fmt_bps(cfg.max_jump_bps)} "
                   f"from {format_fixed(state.last_price)} to {format_fixed(price)}; "
                   f"new level must hold {cfg.breaker_confirm_s}s")
            return result(FeedStatus.HALTED, why, st, rejections, ms=MarketStatus.HALTED)
        reason = f"ok; circuit breaker cleared, new level held {cfg.breaker_confirm_s}s"

    # 7. ok
    st = replace(state, last_price=price, last_confidence=conf, last_timestamp_ms=ts, breaker=None,
                 halted_until_after_ms=None)
    agg = Aggregate(
        feed=cfg.name, status=FeedStatus.OK, reason=reason, evaluated_ms=now_ms, market_status=market,
        price=price, confidence=conf, timestamp_ms=ts, sources=sources,
    )
    return Evaluation(agg, st, tuple(rejections))


def operator_halt(state: FeedState, reason: str) -> FeedState:
    """Return ``state`` halted by an operator (the ripcord)."""
    return replace(state, operator_halt=reason or "no reason given")


def operator_resume(state: FeedState, now_ms: int) -> FeedState:
    """Lift an operator halt; the feed needs a price published after ``now_ms``."""
    return replace(state, operator_halt=None, halted_until_after_ms=now_ms)
