"""``OracleService``: polls sources, applies the feed rules, signs and publishes reports.

The asyncio shell around the pure core (``rules``, ``report``, ``twap``). One poll:
fetch every source concurrently (each with a timeout; a failing source is logged and
contributes nothing), keep the newest observation per (feed, source), evaluate every
feed at the poll's time, sign a report where there is something new to say, hand it to
the subscribers and the on-chain publishers, then persist the poll's rows.

When a report is signed:
- ``live``: the feed is ``ok`` and its (price, confidence, timestamp, market status)
  changed; timestamps never go backwards;
- ``status``: the feed just became ``market-closed`` or ``halted``: the last good price
  with that market status, timestamped at the poll. A report whose market status is
  not OPEN (or PRE/POST where a feed trades extended hours) is never a tradable price;
- ``settlement``: ``settlement_report(feed, expiry_ms)`` on request.
A ``stale`` or ``deviating`` feed signs nothing: consumers see the age of the last report.

Subscribers (``subscribe``) get every signed report in order, in-process; a subscriber
that raises is logged and kept. ``on_status`` subscribers get each status change.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from oracles.config import FeedConfig
from oracles.report import Eip712Domain, PriceReport, ReportSigner, SignedPriceReport, feed_id
from oracles.rules import FeedState, evaluate, operator_halt, operator_resume
from oracles.sources.base import Clock, PriceSource, SourceError, wall_clock_ms
from oracles.store import ObservationRecord, OracleStore, point_of
from oracles.twap import PricePoint, settlement_report, twap
from oracles.types import Aggregate, FeedStatus, MarketStatus, Observation, format_fixed

log = logging.getLogger(__name__)

ReportSubscriber = Callable[[SignedPriceReport], Awaitable[None] | None]
StatusSubscriber = Callable[[Aggregate], Awaitable[None] | None]


class Publisher(Protocol):
    def offer(self, signed: SignedPriceReport) -> bool: ...
    async def run(self) -> None: ...
    async def close(self) -> None: ...


@dataclass
class FeedRuntime:
    cfg: FeedConfig
    state: FeedState = field(default_factory=FeedState)
    observations: dict[str, Observation] = field(default_factory=dict)
    aggregate: Aggregate | None = None
    report: SignedPriceReport | None = None
    points: deque[PricePoint] = field(default_factory=deque)
    logged: dict[str, tuple[int | None, str]] = field(default_factory=dict)


class OracleService:
    """See the module docstring. Drive it with ``poll_once(now_ms)`` or ``start()``/``stop()``."""

    def __init__(
        self,
        feeds: Mapping[str, FeedConfig],
        sources: Sequence[PriceSource],
        signer: ReportSigner,
        domain: Eip712Domain,
        *,
        store: OracleStore | None = None,
        publishers: Sequence[Publisher] = (),
        clock: Clock = wall_clock_ms,
        poll_interval_s: float = 1.0,
        source_timeout_s: float = 2.0,
        history_ms: int = 3 * 3600 * 1000,
    ) -> None:
        self.feeds = {name: FeedRuntime(cfg) for name, cfg in feeds.items()}
        self.sources = list(sources)
        self.signer = signer
        self.domain = domain
        self.store = store
        self.publishers = list(publishers)
        self.clock = clock
        self.poll_interval_s = poll_interval_s
        self.source_timeout_s = source_timeout_s
        self.history_ms = history_ms
        self._subscribers: list[ReportSubscriber] = []
        self._status_subscribers: list[StatusSubscriber] = []
        self._tasks: list[asyncio.Task[Any]] = []
        self._stopping = asyncio.Event()
        self.polls = 0

    # -------------------------------------------------------------- subscribers

    def subscribe(self, callback: ReportSubscriber) -> Callable[[], None]:
        """Call ``callback(report)`` for every signed report; return an unsubscribe function."""
        self._subscribers.append(callback)
        return lambda: self._subscribers.remove(callback) if callback in self._subscribers else None

    def on_status(self, callback: StatusSubscriber) -> Callable[[], None]:
        """Call ``callback(aggregate)`` whenever a feed's status changes."""
        self._status_subscribers.append(callback)
        return lambda: self._status_subscribers.remove(callback) if callback in self._status_subscribers else None

    # -------------------------------------------------------------- polling

    async def _fetch(self, src: PriceSource) -> list[Observation]:
        wanted = [f for f in self.feeds if f in src.symbols]
        if not wanted:
            return []
        try:
            return await asyncio.wait_for(src.fetch(wanted), self.source_timeout_s)
        except (SourceError, TimeoutError) as e:
            log.warning("source %s failed: %s", src.name, e or type(e).__name__)
            return []

    def ingest(self, observations: Sequence[Observation]) -> list[Observation]:
        """Keep the newest observation per (feed, source); return those that are new."""
        new = []
        for o in observations:
            rt = self.feeds.get(o.feed)
            if rt is None:
                continue
            cur = rt.observations.get(o.source)
            if cur is None or o.publish_ms > cur.publish_ms or (o.publish_ms == cur.publish_ms and o != cur):
                rt.observations[o.source] = o
                new.append(o)
        return new

    async def poll_once(self, now_ms: int | None = None) -> list[SignedPriceReport]:
        """Fetch all sources, evaluate all feeds at ``now_ms`` (default: the clock), publish."""
        batches = await asyncio.gather(*(self._fetch(s) for s in self.sources))
        now = self.clock() if now_ms is None else now_ms
        new = self.ingest([o for b in batches for o in b])
        reports, aggregates, rejected = self.evaluate_all(now)
        await self._publish(reports)
        self.polls += 1
        if self.store is not None:
            records = [ObservationRecord(o, now, rejected.get((o.feed, o.source, o.publish_ms))) for o in new]
            rows = [(kind, r, now) for kind, r in reports]
            await asyncio.to_thread(self.store.write, records, aggregates, rows)
        return [r for _, r in reports]

    def evaluate_all(
        self, now_ms: int
    ) -> tuple[list[tuple[str, SignedPriceReport]], list[Aggregate], dict[tuple[str, str, int | None], str]]:
        """Evaluate every feed; return (kind, report) pairs, changed aggregates, rejections."""
        reports: list[tuple[str, SignedPriceReport]] = []
        changed: list[Aggregate] = []
        rejected: dict[tuple[str, str, int | None], str] = {}
        for rt in self.feeds.values():
            ev = evaluate(rt.cfg, rt.state, rt.observations.values(), now_ms)
            rt.state = ev.state
            for r in ev.rejections:
                rejected[(r.feed, r.source, r.publish_ms)] = r.reason
                if rt.logged.get(r.source) != (r.publish_ms, r.reason.split(":")[0]):
                    rt.logged[r.source] = (r.publish_ms, r.reason.split(":")[0])
                    log.warning("%s: rejected %s observation published at %s: %s",
                                r.feed, r.source, r.publish_ms, r.reason)
            agg, prev = ev.aggregate, rt.aggregate
            if prev is None or _key(agg) != _key(prev):
                changed.append(agg)
                rt.points.append(point_of(agg))
                self._trim(rt, now_ms)
                if prev is None or prev.status is not agg.status:
                    log.info("%s: %s (%s)", agg.feed, agg.status.value, agg.reason)
                    for cb in list(self._status_subscribers):
                        _call_soon(cb, agg)
            rt.aggregate = agg
            made = self._maybe_sign(rt, agg, prev, now_ms)
            if made is not None:
                reports.append(made)
        return reports, changed, rejected

    def _trim(self, rt: FeedRuntime, now_ms: int) -> None:
        cutoff = now_ms - self.history_ms
        while len(rt.points) > 1 and rt.points[1].ts_ms < cutoff:
            rt.points.popleft()

    def _maybe_sign(self, rt: FeedRuntime, agg: Aggregate, prev: Aggregate | None,
                    now_ms: int) -> tuple[str, SignedPriceReport] | None:
        last = rt.report.report if rt.report else None
        if agg.usable:
            assert agg.price is not None and agg.confidence is not None and agg.timestamp_ms is not None
            rep = PriceReport(feed_id(agg.feed), agg.price, agg.confidence, agg.timestamp_ms // 1000,
                              int(agg.market_status))
            if last is not None and (rep == last or rep.timestamp < last.timestamp):
                return None
            kind = "live"
        elif (agg.status in (FeedStatus.MARKET_CLOSED, FeedStatus.HALTED) and agg.price is not None
              and (prev is None or prev.status is not agg.status)):
            ts = now_ms // 1000 if last is None else max(now_ms // 1000, last.timestamp)
            status = agg.market_status if agg.market_status != MarketStatus.OPEN else MarketStatus.CLOSED
            rep = PriceReport(feed_id(agg.feed), agg.price, agg.confidence or 0, ts, int(status))
            kind = "status"
        else:
            return None
        signed = self.signer.sign(rep, self.domain)
        rt.report = signed
        return kind, signed

    async def _publish(self, reports: Sequence[tuple[str, SignedPriceReport]]) -> None:
        for _, r in reports:
            for cb in list(self._subscribers):
                try:
                    res = cb(r)
                    if inspect.isawaitable(res):
                        await res
                except Exception:  # a subscriber's bug must not stop the oracle
                    log.exception("report subscriber %r failed", cb)
            for p in self.publishers:
                p.offer(r)

    # -------------------------------------------------------------- operator

    def halt(self, feed: str, reason: str) -> None:
        """Pull the ripcord on ``feed``: it reports ``halted`` until ``resume``."""
        rt = self.feeds[feed]
        rt.state = operator_halt(rt.state, reason)

    def resume(self, feed: str, now_ms: int | None = None) -> None:
        """Lift an operator halt; the feed reopens on a price published after now."""
        rt = self.feeds[feed]
        rt.state = operator_resume(rt.state, self.clock() if now_ms is None else now_ms)

    # -------------------------------------------------------------- settlement

    def settlement_twap(self, feed: str, expiry_ms: int, window_s: int | None = None):
        """Return the live ``Twap`` of ``feed`` over the window before ``expiry_ms``."""
        rt = self.feeds[feed]
        w = window_s or rt.cfg.twap_window_s
        return twap(feed, list(rt.points), expiry_ms, w * 1000, max_hold_ms=rt.cfg.heartbeat_s * 1000)

    async def settlement_report(self, feed: str, expiry_ms: int, window_s: int | None = None) -> SignedPriceReport:
        """Sign, publish and store the settlement TWAP report of ``feed`` at ``expiry_ms``."""
        signed = self.signer.sign(settlement_report(self.settlement_twap(feed, expiry_ms, window_s)), self.domain)
        await self._publish([("settlement", signed)])
        if self.store is not None:
            await asyncio.to_thread(self.store.write, (), (), [("settlement", signed, self.clock())])
        return signed

    # -------------------------------------------------------------- views

    def latest(self, feed: str) -> tuple[Aggregate | None, SignedPriceReport | None]:
        """Return the feed's current aggregate and its last signed report (KeyError if unknown)."""
        rt = self.feeds[feed]
        return rt.aggregate, rt.report

    def snapshot(self) -> list[dict[str, Any]]:
        """Return one line per feed: name, price, status, reason (for the demo to print)."""
        out = []
        for name, rt in self.feeds.items():
            a = rt.aggregate
            out.append({
                "feed": name,
                "price": None if a is None or a.price is None else format_fixed(a.price),
                "status": "stale" if a is None else a.status.value,
                "reason": "no evaluation yet" if a is None else a.reason,
                "market_status": None if a is None else a.market_status.name.lower(),
                "timestamp": None if a is None or a.timestamp_ms is None else a.timestamp_ms // 1000,
                "usable": bool(a and a.usable),
            })
        return out

    # -------------------------------------------------------------- lifecycle

    async def run(self) -> None:
        """Poll every ``poll_interval_s`` until ``stop()``."""
        while not self._stopping.is_set():
            t0 = time.monotonic()
            try:
                await self.poll_once()
            except Exception:  # keep polling: one bad poll must not end the oracle
                log.exception("oracle poll failed")
            delay = self.poll_interval_s - (time.monotonic() - t0)
            try:
                await asyncio.wait_for(self._stopping.wait(), max(delay, 0.0))
            except TimeoutError:
                pass

    async def start(self) -> None:
        """Start polling and the publishers in background tasks."""
        self._stopping.clear()
        self._tasks = [asyncio.create_task(self.run(), name="oracle-poll")]
        self._tasks += [asyncio.create_task(p.run(), name=f"oracle-publish-{i}") for i, p in enumerate(self.publishers)]

    async def stop(self) -> None:
        """Stop polling and publishing, and close sources and publishers."""
        self._stopping.set()
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        for s in self.sources:
            await s.close()
        for p in self.publishers:
            await p.close()


def _key(a: Aggregate) -> tuple[Any, ...]:
    return (a.status, a.price, a.confidence, a.timestamp_ms, a.market_status)


def _call_soon(cb: StatusSubscriber, agg: Aggregate) -> None:
    try:
        res = cb(agg)
        if inspect.isawaitable(res):
            asyncio.ensure_future(res)
    except Exception:
        log.exception("status subscriber %r failed", cb)
