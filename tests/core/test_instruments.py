"""Instruments: names both ways, units, value-type validation, registry listings by timestamp."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from importlib.resources import files

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aggregator.core.instruments import (
    AssetClass,
    ContractSpec,
    ExpirySchedule,
    Instrument,
    InstrumentDelisted,
    InstrumentError,
    InstrumentKind,
    InstrumentListed,
    InstrumentRegistry,
    InstrumentStatus,
    OptionType,
    Underlying,
    UnderlyingConfig,
    UnknownInstrument,
    book_for,
    expiry_ms,
    format_option_name,
    format_strike,
    parse_name,
    parse_strike,
)

ETH = Underlying("ETH", AssetClass.CRYPTO, 3)
PERP_SPEC = ContractSpec(tick_size=10_000, lot_size=1, min_size=1)
OPT_SPEC = ContractSpec(tick_size=100_000, lot_size=10, min_size=10)
NOW = expiry_ms(date(2026, 11, 24)) + 4 * 3_600_000  # Tue 24 Nov 2026 12:00 UTC


@pytest.fixture
def registry() -> InstrumentRegistry:
    text = files("aggregator").joinpath("instruments.toml").read_text()
    return InstrumentRegistry.from_toml(text)


# ---------------------------------------------------------------------- names


def test_parse_perp_name_returns_parts():
    assert parse_name("ETH-PERP") == (("ETH", InstrumentKind.PERPETUAL, None, None, None))


def test_parse_option_name_returns_parts():
    p = parse_name("ETH-27DEC26-3000-C")
    assert p.underlying == "ETH" and p.kind is InstrumentKind.OPTION
    assert p.expiry == date(2026, 12, 27) and p.strike == 3_000_000_000 and p.option_type is OptionType.CALL


def test_format_option_name_round_trips():
    name = format_option_name("XAU", date(2027, 1, 5), 2_500_500_000, "P")
    assert name == "XAU-5JAN27-2500d5-P"
    p = parse_name(name)
    assert format_option_name(p.underlying, p.expiry, p.strike, p.option_type) == name


@pytest.mark.parametrize(
    ("name", "needle"),
    [
        ("ETH", "neither"),
        ("eth-PERP", "neither"),
        ("ETH-PERPETUAL", "neither"),
        ("ETH-05DEC26-3000-C", "leading zero"),
        ("ETH-5DEX26-3000-C", "unknown month"),
        ("ETH-31NOV26-3000-C", "no day 31"),
        ("ETH-5DEC26-03000-C", "leading zero"),
        ("ETH-5DEC26-3000d50-C", "trailing zeros"),
        ("ETH-5DEC26-3000d-C", "neither"),
        ("ETH-5DEC26-0d0000001-C", "more than 6 decimals"),
        ("ETH-5DEC26-0-C", "positive"),
        ("ETH-5DEC26-3000-X", "'C' or 'P'"),
    ],
)
def test_parse_bad_name_raises_clear_error(name, needle):
    with pytest.raises(InstrumentError, match=needle):
        parse_name(name)


def test_parse_non_string_name_raises():
    with pytest.raises(InstrumentError):
        parse_name(42)  # type: ignore[arg-type]


@given(
    st.sampled_from(["ETH", "BTC", "SPY", "XAU", "AB1"]),
    st.dates(date(2000, 1, 1), date(2099, 12, 31)),
    st.integers(1, 10**12),
    st.sampled_from(list(OptionType)),
)
def test_any_option_name_round_trips(sym, d, strike, ot):
    name = format_option_name(sym, d, strike, ot)
    assert parse_name(name) == (sym, InstrumentKind.OPTION, d, strike, ot)


@pytest.mark.parametrize(("units", "text"), [(3_000_000_000, "3000"), (625_000, "0d625"), (1, "0d000001"),
                                             (550_500_000, "550d5")])
def test_strike_formats_both_ways(units, text):
    assert format_strike(units) == text and parse_strike(text) == units


# ---------------------------------------------------------------- value types


def test_underlying_bad_values_refused():
    with pytest.raises(InstrumentError, match="symbol"):
        Underlying("eth", AssetClass.CRYPTO, 3)
    with pytest.raises(InstrumentError, match="asset class"):
        Underlying("ETH", "stocks", 3)  # type: ignore[arg-type]
    with pytest.raises(InstrumentError, match="size_decimals"):
        Underlying("ETH", AssetClass.CRYPTO, 19)


def test_contract_spec_bad_values_refused():
    for kw in ({"tick_size": 0, "lot_size": 1, "min_size": 1}, {"tick_size": 1, "lot_size": 5, "min_size": 7},
               {"tick_size": 1, "lot_size": 5, "min_size": 5, "max_size": 3},
               {"tick_size": True, "lot_size": 1, "min_size": 1}):
        with pytest.raises(InstrumentError):
            ContractSpec(**kw)


def test_spec_with_fractional_notional_refused():
    with pytest.raises(InstrumentError, match="notionals would need rounding"):
        UnderlyingConfig(ETH, perpetual=ContractSpec(tick_size=10, lot_size=1, min_size=1))


def test_option_expiry_not_0800_utc_refused():
    with pytest.raises(InstrumentError, match="08:00 UTC"):
        Instrument(ETH, InstrumentKind.OPTION, OPT_SPEC, expiry_ms(date(2026, 12, 27)) + 1, 3_000_000_000, "C")


def test_perp_with_strike_refused():
    with pytest.raises(InstrumentError, match="perpetual"):
        Instrument(ETH, InstrumentKind.PERPETUAL, PERP_SPEC, strike=1)


def test_option_without_expiry_refused():
    with pytest.raises(InstrumentError, match="needs"):
        Instrument(ETH, InstrumentKind.OPTION, OPT_SPEC, strike=1, option_type=OptionType.CALL)


def test_instrument_is_frozen():
    inst = Instrument(ETH, InstrumentKind.PERPETUAL, PERP_SPEC)
    with pytest.raises(AttributeError):
        inst.name = "x"  # type: ignore[misc]
    assert inst.name == "ETH-PERP"


def test_units_conversion_refuses_lossy_values():
    inst = Instrument(ETH, InstrumentKind.PERPETUAL, PERP_SPEC)
    assert inst.price_units("3000.25") == 3_000_250_000
    assert inst.size_units(Decimal("1.5")) == 1500
    assert inst.format_price(3_000_250_000) == "3000.25" and inst.format_size(1500) == "1.5"
    with pytest.raises(InstrumentError, match="tick"):
        inst.price_units("3000.255")
    with pytest.raises(InstrumentError, match="decimals"):
        inst.size_units("0.0001")
    with pytest.raises(InstrumentError, match="float"):
        inst.price_units(3000.25)  # type: ignore[arg-type]
    with pytest.raises(InstrumentError, match="finite"):
        inst.price_units("NaN")


def test_notional_exact_for_valid_price_and_size():
    inst = Instrument(ETH, InstrumentKind.PERPETUAL, PERP_SPEC)
    assert inst.notional(3_000_010_000, 1) == 3_000_010  # 3000.01 USDC * 0.001 ETH = 3.00001 USDC
    with pytest.raises(InstrumentError):
        inst.notional(3_000_000_001, 1)


# ------------------------------------------------------------------ registry


def test_packaged_config_lists_four_perps(registry):
    assert [i.name for i in registry.active()] == ["BTC-PERP", "ETH-PERP", "SPY-PERP", "XAU-PERP"]
    assert {u.asset_class for u in registry.underlyings()} == {AssetClass.CRYPTO, AssetClass.EQUITY_ETF,
                                                               AssetClass.METAL}
    assert registry.config("SPY").underlying.calendar == "nyse"


def test_roll_lists_scheduled_expiries_with_calls_and_puts(registry):
    events = registry.roll(NOW)
    assert events and all(isinstance(e, InstrumentListed) and e.at_ms == NOW for e in events)
    exp = [parse_name(registry.chain("ETH", e)[0].name).expiry for e in registry.expiries("ETH")]
    assert exp == [date(2026, 11, 25), date(2026, 11, 26), date(2026, 11, 27), date(2026, 12, 4),
                   date(2026, 12, 25), date(2027, 3, 26)]
    spy = [parse_name(registry.chain("SPY", e)[0].name).expiry for e in registry.expiries("SPY")]
    assert date(2026, 11, 25) not in spy  # no SPY dailies
    chain = registry.chain("ETH", expiry_ms(date(2026, 12, 25)))
    assert [c.name for c in chain[:2]] == ["ETH-25DEC26-2000-C", "ETH-25DEC26-2000-P"]
    assert registry.roll(NOW) == []  # idempotent at the same instant


def test_roll_delists_expired_at_expiry_instant(registry):
    registry.roll(NOW)
    first = expiry_ms(date(2026, 11, 25))
    assert registry.delist_expired(first - 1) == []
    events = registry.roll(first)
    gone = [e for e in events if isinstance(e, InstrumentDelisted)]
    assert gone and all(e.instrument.expiry_ms == first and e.reason is InstrumentStatus.EXPIRED for e in gone)
    assert registry.status("ETH-25NOV26-3000-C") is InstrumentStatus.EXPIRED
    assert registry.get("ETH-25NOV26-3000-C").strike == 3_000_000_000  # still resolvable
    assert not registry.is_active("ETH-25NOV26-3000-C")
    events = registry.roll(expiry_ms(date(2026, 11, 26)))
    listed = [e.instrument.name for e in events if isinstance(e, InstrumentListed)]
    assert "ETH-28NOV26-3000-C" in listed  # the next daily rolled in
    assert "ETH-26NOV26-3000-C" in [e.instrument.name for e in events if isinstance(e, InstrumentDelisted)]


def test_list_series_explicit_strikes_and_past_expiry_refused(registry):
    exp = expiry_ms(date(2027, 6, 25))
    ev = registry.list_series("BTC", exp, NOW, [95_000_000_000])
    assert [e.instrument.name for e in ev] == ["BTC-25JUN27-95000-C", "BTC-25JUN27-95000-P"]
    assert registry.list_series("BTC", exp, NOW, [95_000_000_000]) == []
    with pytest.raises(InstrumentError, match="before now"):
        registry.list_series("BTC", expiry_ms(date(2026, 11, 24)), NOW)


def test_roll_with_strike_override(registry):
    registry.roll(NOW, strikes={"ETH": [3_100_000_000]})
    assert {i.strike for i in registry.active("ETH") if i.is_option} == {3_100_000_000}


def test_get_unknown_or_malformed_name_raises(registry):
    with pytest.raises(UnknownInstrument, match="not listed"):
        registry.get("DOGE-PERP")
    with pytest.raises(InstrumentError, match="neither"):
        registry.get("nonsense")


@pytest.mark.parametrize(
    ("toml", "needle"),
    [
        ("[[underlyings]]\nsymbol='ETH'\nasset_class='crypto'\n", "size_decimals"),
        ("[[underlyings]]\nsymbol='ETH'\nasset_class='crypto'\nsize_decimals=3\n[underlyings.perpetual]\n"
         "tick_size=10000\nlot_size=1\nmin_size=1\nbogus=1\n", "unexpected"),
        ("[[underlyings]]\nsymbol='ETH'\nasset_class='crypto'\nsize_decimals=3\nstrikes=1\n[underlyings.option]\n"
         "tick_size=10\nlot_size=1\nmin_size=1\n", "rounding"),
        ("x = [", "TOML"),
    ],
)
def test_bad_config_raises_clear_error(toml, needle):
    with pytest.raises(InstrumentError, match=needle):
        InstrumentRegistry.from_toml(toml)


def test_schedule_weekdays_only_skips_weekends():
    fri = expiry_ms(date(2026, 11, 27)) + 1
    exps = ExpirySchedule(daily=3, weekdays_only=True).expiries(fri)
    assert [(date(1970, 1, 1) + timedelta(days=e // 86_400_000)).weekday() for e in exps] == [0, 1, 2]


def test_book_for_uses_instrument_spec(registry):
    b = book_for(registry.get("ETH-PERP"))
    assert (b.instrument, b.tick_size, b.lot_size, b.max_size) == ("ETH-PERP", 10_000, 1, 10_000_000)
