"""Market calendars: when a real-world asset trades, computed by rule, never guessed.

Pure: every function takes the instant (milliseconds since the epoch, UTC) as an
argument and reads no clock. Local times come from ``zoneinfo`` (America/New_York), so
daylight-saving changes are handled by the tz database, not by fixed offsets.

Calendars:
- ``AlwaysOpen``: crypto and the tokenized-fund NAV (the fund's own halt flag is a
  feed rule, not a calendar).
- ``NyseCalendar``: NYSE regular session 09:30-16:00 ET on trading days; pre-market
  04:00-09:30 and post-market 16:00-20:00 are reported as such and are tradable only if
  the calendar was built with ``extended_hours=True``. Holidays by rule for any year
  (New Year, Martin Luther King Jr. Day from 1998, Washington's Birthday, Good Friday,
  Memorial Day, Juneteenth from 2022, Independence Day, Labor Day, Thanksgiving,
  Christmas) with the observed shifts (Saturday -> Friday, Sunday -> Monday, except New
  Year's Day on a Saturday, which NYSE does not observe), plus the known one-off
  closures in ``NYSE_SPECIAL_CLOSURES``. Early closes at 13:00 ET (post-market to 17:00)
  on July 3 (Mon-Thu), the day after Thanksgiving and December 24 (Mon-Thu), by the
  current rules; historical variations before 2013 are not modelled.
- ``WeeklyCalendar``: a market open from a weekly open to a weekly close with an
  optional daily break. ``METALS`` (gold, CME Globex): Sun 18:00 -> Fri 17:00 ET with a
  daily 17:00-18:00 break Mon-Thu. ``FX`` (EUR/USD): Sun 17:00 -> Fri 17:00 ET, no break.
  Exchange holidays of these markets are not modelled (a holiday shows as stale, since
  no fresh price arrives: the feed fails safe).

Invariant: ``SessionInfo.open_since_ms`` is the start of the contiguous tradable period
containing the instant; the feed rules accept only observations published at or after
it, so a market reopens only on a fresh price.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from functools import lru_cache
from typing import Protocol
from zoneinfo import ZoneInfo

from oracles.types import Session

NEW_YORK = ZoneInfo("America/New_York")
UTC = ZoneInfo("UTC")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

MON, TUE, WED, THU, FRI, SAT, SUN = range(7)

# Closures NYSE announced outside its rules (national days of mourning, emergencies).
NYSE_SPECIAL_CLOSURES: dict[date, str] = {
    date(2001, 9, 11): "September 11 attacks",
    date(2001, 9, 12): "September 11 attacks",
    date(2001, 9, 13): "September 11 attacks",
    date(2001, 9, 14): "September 11 attacks",
    date(2004, 6, 11): "National Day of Mourning (Reagan)",
    date(2007, 1, 2): "National Day of Mourning (Ford)",
    date(2012, 10, 29): "Hurricane Sandy",
    date(2012, 10, 30): "Hurricane Sandy",
    date(2018, 12, 5): "National Day of Mourning (G.H.W. Bush)",
    date(2025, 1, 9): "National Day of Mourning (Carter)",
}


@dataclass(frozen=True, slots=True)
class SessionInfo:
    """A market's state at one instant.

    ``tradable`` says whether prices published now count; ``open_since_ms`` is the start
    of the tradable period containing the instant (``None`` if not tradable, or 0 for a
    market that never closes).
    """

    session: Session
    tradable: bool
    reason: str
    open_since_ms: int | None


class MarketCalendar(Protocol):
    name: str

    def session_at(self, ms: int) -> SessionInfo:
        """Return the market's session at ``ms`` (UTC milliseconds)."""
        ...


def to_ms(dt: datetime) -> int:
    """Return an aware datetime as integer UTC milliseconds."""
    if dt.tzinfo is None:
        raise ValueError("naive datetime: give it a timezone")
    return (dt - _EPOCH) // timedelta(milliseconds=1)


def local(ms: int, tz: ZoneInfo = NEW_YORK) -> datetime:
    """Return ``ms`` as an aware datetime in ``tz``."""
    return (_EPOCH + timedelta(milliseconds=ms)).astimezone(tz)


def at(d: date, t: time, tz: ZoneInfo = NEW_YORK) -> int:
    """Return the instant (ms) of local wall time ``t`` on day ``d`` in ``tz``."""
    return to_ms(datetime.combine(d, t, tzinfo=tz))


# ---------------------------------------------------------------- always open


@dataclass(frozen=True)
class AlwaysOpen:
    """A market that never closes (crypto; a fund NAV that is consumed every day)."""

    name: str = "24/7"

    def session_at(self, ms: int) -> SessionInfo:
        return SessionInfo(Session.REGULAR, True, "24/7 market", 0)


# ---------------------------------------------------------------- NYSE


def easter_sunday(year: int) -> date:
    """Return Western (Gregorian) Easter Sunday of ``year`` (anonymous Gregorian algorithm)."""
    a = year % 19
    b, c = divmod(year, 100)
    d, e = divmod(b, 4)
    f = (b + 8) // 25
    g = (b - f + 1) // 3
    h = (19 * a + b - d - g + 15) % 30
    i, k = divmod(c, 4)
    l = (32 + 2 * e + 2 * i - h - k) % 7  # noqa: E741 - the algorithm's own name
    m = (a + 11 * h + 22 * l) // 451
    month, day = divmod(h + l - 7 * m + 114, 31)
    return date(year, month, day + 1)


def _nth_weekday(year: int, month: int, weekday: int, n: int) -> date:
    """Return the ``n``-th ``weekday`` of the month (n=-1: the last one)."""
    if n > 0:
        first = date(year, month, 1)
        return first + timedelta(days=(weekday - first.weekday()) % 7 + 7 * (n - 1))
    nxt = date(year + (month == 12), month % 12 + 1, 1)
    last = nxt - timedelta(days=1)
    return last - timedelta(days=(last.weekday() - weekday) % 7)


def _observed(d: date, saturday_to_friday: bool = True) -> date | None:
    if d.weekday() == SAT:
        return d - timedelta(days=1) if saturday_to_friday else None
    if d.weekday() == SUN:
        return d + timedelta(days=1)
    return d


@lru_cache(maxsize=256)
def nyse_holidays(year: int) -> dict[date, str]:
    """Return NYSE full-day closures of ``year`` (observed dates) with their names."""
    out: dict[date, str] = {}

    def add(d: date | None, name: str) -> None:
        if d is not None and d.year == year:
            out[d] = name

    add(_observed(date(year, 1, 1), saturday_to_friday=False), "New Year's Day")
    if year >= 1998:
        add(_nth_weekday(year, 1, MON, 3), "Martin Luther King Jr. Day")
    add(_nth_weekday(year, 2, MON, 3), "Washington's Birthday")
    add(easter_sunday(year) - timedelta(days=2), "Good Friday")
    add(_nth_weekday(year, 5, MON, -1), "Memorial Day")
    if year >= 2022:
        add(_observed(date(year, 6, 19)), "Juneteenth National Independence Day")
    add(_observed(date(year, 7, 4)), "Independence Day")
    add(_nth_weekday(year, 9, MON, 1), "Labor Day")
    add(_nth_weekday(year, 11, THU, 4), "Thanksgiving Day")
    add(_observed(date(year, 12, 25)), "Christmas Day")
    for d, name in NYSE_SPECIAL_CLOSURES.items():
        if d.year == year:
            out[d] = name
    return out


@lru_cache(maxsize=256)
def nyse_early_closes(year: int) -> dict[date, str]:
    """Return NYSE 13:00 ET early closes of ``year`` with their reasons."""
    holidays = nyse_holidays(year)
    out: dict[date, str] = {}
    candidates = [
        (date(year, 7, 3), "day before Independence Day"),
        (_nth_weekday(year, 11, THU, 4) + timedelta(days=1), "day after Thanksgiving"),
        (date(year, 12, 24), "Christmas Eve"),
    ]
    for d, why in candidates:
        if d.weekday() in (MON, TUE, WED, THU) or why == "day after Thanksgiving":
            if d not in holidays:
                out[d] = why
    return out


@dataclass(frozen=True)
class NyseCalendar:
    """NYSE sessions for US equities and ETFs (SPY)."""

    extended_hours: bool = False
    name: str = "NYSE"

    PRE_OPEN = time(4, 0)
    REGULAR_OPEN = time(9, 30)
    REGULAR_CLOSE = time(16, 0)
    EARLY_CLOSE = time(13, 0)
    POST_CLOSE = time(20, 0)
    EARLY_POST_CLOSE = time(17, 0)

    def closed_reason(self, d: date) -> str | None:
        """Return why ``d`` is not a trading day, or ``None`` if it is one."""
        if d.weekday() >= SAT:
            return "weekend"
        name = nyse_holidays(d.year).get(d)
        return f"NYSE holiday: {name}" if name else None

    def is_trading_day(self, d: date) -> bool:
        return self.closed_reason(d) is None

    def hours(self, d: date) -> tuple[time, time, time, time]:
        """Return (pre-open, regular open, regular close, post close) of a trading day."""
        if d in nyse_early_closes(d.year):
            return self.PRE_OPEN, self.REGULAR_OPEN, self.EARLY_CLOSE, self.EARLY_POST_CLOSE
        return self.PRE_OPEN, self.REGULAR_OPEN, self.REGULAR_CLOSE, self.POST_CLOSE

    def session_at(self, ms: int) -> SessionInfo:
        now = local(ms)
        d = now.date()
        why = self.closed_reason(d)
        if why:
            return SessionInfo(Session.CLOSED, False, why, None)
        pre, open_, close, post = self.hours(d)
        t = now.timetz().replace(tzinfo=None)
        early = d in nyse_early_closes(d.year)
        ext_start = at(d, pre)
        if open_ <= t < close:
            since = ext_start if self.extended_hours else at(d, open_)
            reason = "regular session (early close 13:00 ET)" if early else "regular session"
            return SessionInfo(Session.REGULAR, True, reason, since)
        if pre <= t < open_:
            return SessionInfo(
                Session.PRE_MARKET, self.extended_hours, "pre-market session",
                ext_start if self.extended_hours else None,
            )
        if close <= t < post:
            return SessionInfo(
                Session.POST_MARKET, self.extended_hours,
                "post-market session" + (" (after early close)" if early else ""),
                ext_start if self.extended_hours else None,
            )
        return SessionInfo(Session.CLOSED, False, "outside trading hours", None)


# ---------------------------------------------------------------- 23/5 and 24/5


@dataclass(frozen=True)
class WeeklyCalendar:
    """Open from ``open_day`` ``open_time`` to ``close_day`` ``close_time`` (local), with an
    optional daily break ``break_start``-``break_end`` on the days between."""

    name: str
    open_day: int
    open_time: time
    close_day: int
    close_time: time
    break_start: time | None = None
    break_end: time | None = None
    tz: ZoneInfo = NEW_YORK

    def _weekend(self, d: date, t: time) -> bool:
        wd = d.weekday()
        if wd == self.close_day:
            return t >= self.close_time
        if wd == self.open_day:
            return t < self.open_time
        # days strictly between close_day and open_day (e.g. Saturday)
        return (wd - self.close_day) % 7 < (self.open_day - self.close_day) % 7

    def _in_break(self, d: date, t: time) -> bool:
        if self.break_start is None or self.break_end is None:
            return False
        if d.weekday() in (self.open_day, self.close_day):
            return False  # the weekly open and close days have no break of their own
        return self.break_start <= t < self.break_end

    def _last_reopen(self, ms: int) -> int:
        """Return the latest instant <= ms at which the market went from closed to open."""
        d = local(ms, self.tz).date()
        best = 0
        for back in range(8):
            day = d - timedelta(days=back)
            candidates = []
            if day.weekday() == self.open_day:
                candidates.append(at(day, self.open_time, self.tz))
            elif self.break_end is not None and not self._weekend(day, self.break_end):
                if day.weekday() != self.close_day:
                    candidates.append(at(day, self.break_end, self.tz))
            for c in candidates:
                if c <= ms:
                    best = max(best, c)
            if best:
                return best
        return best

    def session_at(self, ms: int) -> SessionInfo:
        now = local(ms, self.tz)
        d, t = now.date(), now.timetz().replace(tzinfo=None)
        if self._weekend(d, t):
            return SessionInfo(Session.CLOSED, False, f"{self.name} weekend close", None)
        if self._in_break(d, t):
            return SessionInfo(
                Session.CLOSED, False,
                f"{self.name} daily break {self.break_start:%H:%M}-{self.break_end:%H:%M} ET", None,
            )
        return SessionInfo(Session.REGULAR, True, f"{self.name} open", self._last_reopen(ms))


METALS = WeeklyCalendar("metals 23/5", SUN, time(18, 0), FRI, time(17, 0), time(17, 0), time(18, 0))
FX = WeeklyCalendar("FX 24/5", SUN, time(17, 0), FRI, time(17, 0))


def calendar_by_name(name: str) -> MarketCalendar:
    """Return the calendar named in feed configuration."""
    table: dict[str, MarketCalendar] = {
        "24/7": AlwaysOpen(),
        "nyse": NyseCalendar(extended_hours=False),
        "nyse-extended": NyseCalendar(extended_hours=True),
        "metals": METALS,
        "fx": FX,
    }
    try:
        return table[name]
    except KeyError:
        raise ValueError(f"unknown calendar {name!r}; known: {sorted(table)}") from None
