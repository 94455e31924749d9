"""Market calendars: NYSE holidays and sessions, gold 23/5, EUR/USD 24/5."""

from __future__ import annotations

from datetime import date, datetime, time

import pytest

from oracles.calendar import (
    FX,
    METALS,
    NEW_YORK,
    AlwaysOpen,
    NyseCalendar,
    at,
    easter_sunday,
    nyse_early_closes,
    nyse_holidays,
    to_ms,
)
from oracles.types import Session


def ny(y: int, m: int, d: int, hh: int = 12, mm: int = 0) -> int:
    return to_ms(datetime(y, m, d, hh, mm, tzinfo=NEW_YORK))


@pytest.mark.parametrize(
    "year,expected",
    [(2024, date(2024, 3, 31)), (2025, date(2025, 4, 20)), (2026, date(2026, 4, 5)),
     (2000, date(2000, 4, 23)), (2038, date(2038, 4, 25)), (1818, date(1818, 3, 22))],
)
def test_easter_known_years_match(year: int, expected: date) -> None:
    assert easter_sunday(year) == expected


def test_nyse_holidays_2025_match_published_calendar() -> None:
    assert sorted(nyse_holidays(2025)) == [
        date(2025, 1, 1), date(2025, 1, 9), date(2025, 1, 20), date(2025, 2, 17), date(2025, 4, 18),
        date(2025, 5, 26), date(2025, 6, 19), date(2025, 7, 4), date(2025, 9, 1), date(2025, 11, 27),
        date(2025, 12, 25),
    ]


def test_nyse_holidays_2026_observed_shifts_match_published_calendar() -> None:
    h = nyse_holidays(2026)
    assert h[date(2026, 7, 3)] == "Independence Day"  # July 4 is a Saturday
    assert h[date(2026, 4, 3)] == "Good Friday"
    assert len(h) == 10


def test_new_year_on_saturday_not_observed() -> None:
    # 2022-01-01 was a Saturday: NYSE traded on Friday 2021-12-31.
    assert date(2021, 12, 31) not in nyse_holidays(2021)
    assert date(2022, 1, 1) not in nyse_holidays(2022)
    assert NyseCalendar().session_at(ny(2021, 12, 31, 10)).session is Session.REGULAR


def test_sunday_holiday_observed_monday() -> None:
    assert nyse_holidays(2022)[date(2022, 12, 26)] == "Christmas Day"
    assert nyse_holidays(2022)[date(2022, 6, 20)].startswith("Juneteenth")


def test_early_closes_2024_and_2026_match_published_calendar() -> None:
    assert sorted(nyse_early_closes(2024)) == [date(2024, 7, 3), date(2024, 11, 29), date(2024, 12, 24)]
    assert sorted(nyse_early_closes(2026)) == [date(2026, 11, 27), date(2026, 12, 24)]


def test_good_friday_session_closed_with_holiday_reason() -> None:
    info = NyseCalendar().session_at(ny(2025, 4, 18, 11))
    assert info.session is Session.CLOSED and not info.tradable
    assert info.reason == "NYSE holiday: Good Friday"


def test_weekend_session_closed() -> None:
    info = NyseCalendar().session_at(ny(2025, 3, 8, 11))
    assert (info.session, info.reason) == (Session.CLOSED, "weekend")


def test_regular_session_open_since_0930_new_york_across_dst() -> None:
    cal = NyseCalendar()
    winter = cal.session_at(ny(2025, 1, 6, 10))
    summer = cal.session_at(ny(2025, 7, 7, 10))
    assert winter.open_since_ms == ny(2025, 1, 6, 9, 30)
    assert summer.open_since_ms == ny(2025, 7, 7, 9, 30)
    # 09:30 ET is 14:30 UTC in winter and 13:30 UTC in summer
    assert (winter.open_since_ms // 1000) % 86400 == 14 * 3600 + 1800
    assert (summer.open_since_ms // 1000) % 86400 == 13 * 3600 + 1800


def test_pre_and_post_market_marked_not_tradable_without_extended_hours() -> None:
    cal = NyseCalendar()
    pre, post = cal.session_at(ny(2025, 3, 4, 8)), cal.session_at(ny(2025, 3, 4, 17))
    assert pre.session is Session.PRE_MARKET and not pre.tradable
    assert post.session is Session.POST_MARKET and not post.tradable
    assert cal.session_at(ny(2025, 3, 4, 21)).session is Session.CLOSED


def test_pre_market_tradable_with_extended_hours() -> None:
    info = NyseCalendar(extended_hours=True).session_at(ny(2025, 3, 4, 8))
    assert info.session is Session.PRE_MARKET and info.tradable
    assert info.open_since_ms == ny(2025, 3, 4, 4)


def test_early_close_day_after_thanksgiving_closes_at_1300() -> None:
    cal = NyseCalendar()
    assert cal.session_at(ny(2025, 11, 28, 12, 59)).session is Session.REGULAR
    assert cal.session_at(ny(2025, 11, 28, 13, 0)).session is Session.POST_MARKET


def test_gold_daily_break_closed_then_reopens_at_1800() -> None:
    assert METALS.session_at(ny(2025, 3, 4, 16, 59)).tradable
    brk = METALS.session_at(ny(2025, 3, 4, 17, 30))
    assert not brk.tradable and "daily break" in brk.reason
    after = METALS.session_at(ny(2025, 3, 4, 18, 1))
    assert after.tradable and after.open_since_ms == ny(2025, 3, 4, 18)


def test_gold_weekend_closed_friday_1700_to_sunday_1800() -> None:
    assert METALS.session_at(ny(2025, 3, 7, 16, 59)).tradable
    assert not METALS.session_at(ny(2025, 3, 7, 17, 0)).tradable
    assert not METALS.session_at(ny(2025, 3, 8, 12)).tradable
    assert not METALS.session_at(ny(2025, 3, 9, 17, 59)).tradable
    sunday = METALS.session_at(ny(2025, 3, 9, 18, 0))
    assert sunday.tradable and sunday.open_since_ms == ny(2025, 3, 9, 18)
    monday = METALS.session_at(ny(2025, 3, 10, 10))
    assert monday.open_since_ms == ny(2025, 3, 9, 18)


def test_eurusd_weekend_closed_friday_1700_to_sunday_1700() -> None:
    assert not FX.session_at(ny(2025, 3, 7, 17, 0)).tradable
    assert not FX.session_at(ny(2025, 3, 9, 16, 59)).tradable
    open_ = FX.session_at(ny(2025, 3, 9, 17, 0))
    assert open_.tradable and open_.open_since_ms == ny(2025, 3, 9, 17)
    # no daily break in FX
    assert FX.session_at(ny(2025, 3, 11, 17, 30)).tradable
    assert FX.session_at(ny(2025, 3, 12, 9)).open_since_ms == ny(2025, 3, 9, 17)


def test_always_open_is_tradable() -> None:
    assert AlwaysOpen().session_at(0).tradable


def test_at_uses_wall_clock_time_in_new_york() -> None:
    assert at(date(2025, 3, 10), time(9, 30)) == ny(2025, 3, 10, 9, 30)
