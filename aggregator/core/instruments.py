"""Instruments: perpetuals and European cash-settled options, their names, units and listings.

Units (integers only)
    - Price: integer *quote units* of ``10^-quote_decimals`` USDC per one whole unit of the
      underlying (quote_decimals = 6, the ledger's unit: a price of 3,000.50 USDC is
      ``3_000_500_000``). A price must be a multiple of the instrument's ``tick_size``
      (in quote units). Strikes are in the same unit.
    - Size: integer *size units* of ``10^-size_decimals`` of the underlying (per
      underlying: ETH 3, BTC 4, SPY 2, XAU 3 in the packaged config). A size must be a
      multiple of ``lot_size`` (in size units) and at least ``min_size``. One option
      contract is on one whole unit of the underlying, so option sizes use the same unit.
    - Notional: ``price * size / 10^size_decimals`` quote units. Every instrument checks
      ``tick_size * lot_size % 10^size_decimals == 0``, so the notional of any valid
      (price, size) pair is an exact integer number of quote units: no fill ever needs
      rounding.
    - Time: integer milliseconds since the Unix epoch (UTC), passed in by the caller.

Names (Deribit style, canonical: one name per instrument, parse(format(x)) == x)
    - Perpetual: ``ETH-PERP``.
    - Option: ``ETH-27DEC26-3000-C``: underlying, expiry date as day (no leading zero),
      3-letter English month, 2-digit year (20YY), strike in whole quote currency with a
      ``d`` for the decimal point and no trailing zeros (``XRP-5JAN27-0d625-P``), then
      ``C`` or ``P``. Options expire at 08:00 UTC on the named date.
    Non-canonical spellings (``05DEC26``, ``03000``, ``2d50``) are refused, because the
    name is what users sign (EIP-712 ``Order.instrument``).

Listings
    ``InstrumentRegistry`` holds the contract specifications per underlying and the
    listed instruments. Perpetuals are listed when the registry is built. Option expiries
    are listed by ``list_series`` (explicit expiry and strikes) or by ``roll(now_ms)``,
    which delists every option whose expiry is at or before ``now_ms`` and lists the
    scheduled expiries (next N dailies, Friday weeklies, last-Friday monthlies and
    quarterlies) with the configured strikes. An instrument once delisted is never
    relisted: the name cannot come back because its expiry is in the past.

Invariants: every value type here is a frozen dataclass that refuses bad values at
construction; the registry never reads a clock; the same calls give the same listings.
"""

from __future__ import annotations

import calendar
import re
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Any, NamedTuple

from aggregator.core.matching import OrderBook

__all__ = [
    "QUOTE_DECIMALS",
    "EXPIRY_HOUR_UTC",
    "InstrumentError",
    "UnknownInstrument",
    "AssetClass",
    "InstrumentKind",
    "OptionType",
    "InstrumentStatus",
    "Underlying",
    "ContractSpec",
    "ExpirySchedule",
    "UnderlyingConfig",
    "Instrument",
    "ParsedName",
    "InstrumentListed",
    "InstrumentDelisted",
    "InstrumentRegistry",
    "parse_name",
    "format_perp_name",
    "format_option_name",
    "format_strike",
    "parse_strike",
    "expiry_ms",
    "book_for",
]

QUOTE_DECIMALS = 6
EXPIRY_HOUR_UTC = 8
MS_PER_DAY = 86_400_000
_EXPIRY_OFFSET_MS = EXPIRY_HOUR_UTC * 3_600_000
_MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
_SYMBOL_RE = re.compile(r"^[A-Z][A-Z0-9]{1,9}$")
_PERP_RE = re.compile(r"^([A-Z][A-Z0-9]{1,9})-PERP$")
_OPTION_RE = re.compile(r"^([A-Z][A-Z0-9]{1,9})-([0-9]{1,2})([A-Z]{3})([0-9]{2})-([0-9]+(?:d[0-9]+)?)-([A-Z])$")
_EPOCH = date(1970, 1, 1)


class InstrumentError(ValueError):
    """An instrument name, specification or configuration value is invalid."""


class UnknownInstrument(InstrumentError, KeyError):
    """No instrument of that name is listed."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


class AssetClass(StrEnum):
    CRYPTO = "crypto"
    EQUITY_ETF = "equity_etf"
    METAL = "metal"


class InstrumentKind(StrEnum):
    PERPETUAL = "perpetual"
    OPTION = "option"


class OptionType(StrEnum):
    CALL = "C"
    PUT = "P"


class InstrumentStatus(StrEnum):
    ACTIVE = "active"
    EXPIRED = "expired"


def _pos_int(name: str, v: object) -> int:
    if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
        raise InstrumentError(f"{name} must be a positive integer, got {v!r}")
    return v


# ----------------------------------------------------------------------- time helpers


def expiry_ms(d: date) -> int:
    """Return the expiry instant of date ``d``: 08:00 UTC, in ms since the epoch."""
    return (d - _EPOCH).days * MS_PER_DAY + _EXPIRY_OFFSET_MS


def _expiry_date(ms: int) -> date:
    if (ms - _EXPIRY_OFFSET_MS) % MS_PER_DAY:
        raise InstrumentError(f"option expiry {ms} is not at {EXPIRY_HOUR_UTC:02d}:00 UTC")
    return _EPOCH + timedelta(days=(ms - _EXPIRY_OFFSET_MS) // MS_PER_DAY)


# ---------------------------------------------------------------------- strikes, names


def format_strike(units: int, quote_decimals: int = QUOTE_DECIMALS) -> str:
    """Format a strike in quote units as in names: ``3000``, ``0d625``, ``550d5``."""
    _pos_int("strike", units)
    whole, frac = divmod(units, 10**quote_decimals)
    if not frac:
        return str(whole)
    return f"{whole}d{str(frac).rjust(quote_decimals, '0').rstrip('0')}"


def parse_strike(text: str, quote_decimals: int = QUOTE_DECIMALS) -> int:
    """Parse a canonical name strike (``3000``, ``0d625``) into quote units."""
    m = re.fullmatch(r"([0-9]+)(?:d([0-9]+))?", text)
    if not m:
        raise InstrumentError(f"strike {text!r} is not digits with an optional 'd' decimal point")
    whole, frac = m.group(1), m.group(2) or ""
    if len(whole) > 1 and whole[0] == "0":
        raise InstrumentError(f"strike {text!r} has a leading zero")
    if m.group(2) is not None and (not frac or frac[-1] == "0"):
        raise InstrumentError(f"strike {text!r} has trailing zeros after 'd' (write the shortest form)")
    if len(frac) > quote_decimals:
        raise InstrumentError(f"strike {text!r} has more than {quote_decimals} decimals")
    units = int(whole) * 10**quote_decimals + (int(frac.ljust(quote_decimals, "0")) if frac else 0)
    if units <= 0:
        raise InstrumentError(f"strike {text!r} must be positive")
    return units


def format_perp_name(underlying: str) -> str:
    """Return the perpetual's name, e.g. ``ETH-PERP``."""
    if not _SYMBOL_RE.match(underlying):
        raise InstrumentError(f"underlying symbol {underlying!r} must be 2-10 upper-case letters/digits")
    return f"{underlying}-PERP"


def format_option_name(underlying: str, expiry: date, strike: int, option_type: OptionType | str,
                       quote_decimals: int = QUOTE_DECIMALS) -> str:
    """Return the option's canonical name, e.g. ``ETH-27DEC26-3000-C``."""
    if not _SYMBOL_RE.match(underlying):
        raise InstrumentError(f"underlying symbol {underlying!r} must be 2-10 upper-case letters/digits")
    if not 2000 <= expiry.year <= 2099:
        raise InstrumentError(f"expiry year {expiry.year} is outside 2000-2099")
    ot = OptionType(option_type)
    return (f"{underlying}-{expiry.day}{_MONTHS[expiry.month - 1]}{expiry.year % 100:02d}-"
            f"{format_strike(strike, quote_decimals)}-{ot.value}")


class ParsedName(NamedTuple):
    """The parts of an instrument name (no contract specification)."""

    underlying: str
    kind: InstrumentKind
    expiry: date | None = None
    strike: int | None = None
    option_type: OptionType | None = None


def parse_name(name: str, quote_decimals: int = QUOTE_DECIMALS) -> ParsedName:
    """Parse a canonical instrument name; raise ``InstrumentError`` saying what is wrong."""
    if not isinstance(name, str):
        raise InstrumentError(f"instrument name must be a string, got {type(name).__name__}")
    m = _PERP_RE.match(name)
    if m:
        return ParsedName(m.group(1), InstrumentKind.PERPETUAL)
    m = _OPTION_RE.match(name)
    if not m:
        raise InstrumentError(
            f"instrument name {name!r} is neither 'SYMBOL-PERP' nor 'SYMBOL-DMMMYY-STRIKE-C|P' "
            "(e.g. 'ETH-PERP', 'ETH-27DEC26-3000-C')")
    sym, day_s, mon_s, yy, strike_s, cp = m.groups()
    if day_s[0] == "0":
        raise InstrumentError(f"{name!r}: day {day_s!r} has a leading zero (write {day_s.lstrip('0')!r})")
    if mon_s not in _MONTHS:
        raise InstrumentError(f"{name!r}: unknown month {mon_s!r} (use one of {', '.join(_MONTHS)})")
    if cp not in ("C", "P"):
        raise InstrumentError(f"{name!r}: option type must be 'C' or 'P', got {cp!r}")
    year, month, day = 2000 + int(yy), _MONTHS.index(mon_s) + 1, int(day_s)
    if not 1 <= day <= calendar.monthrange(year, month)[1]:
        raise InstrumentError(f"{name!r}: {mon_s} {year} has no day {day}")
    try:
        strike = parse_strike(strike_s, quote_decimals)
    except InstrumentError as e:
        raise InstrumentError(f"{name!r}: {e}") from None
    return ParsedName(sym, InstrumentKind.OPTION, date(year, month, day), strike, OptionType(cp))


# -------------------------------------------------------------------------- value types


@dataclass(frozen=True, slots=True)
class Underlying:
    """What an instrument is on: symbol, asset class, size unit and market calendar name."""

    symbol: str
    asset_class: AssetClass
    size_decimals: int
    calendar: str = "24/7"  # a name from ``oracles.calendar.calendar_by_name``

    def __post_init__(self) -> None:
        if not isinstance(self.symbol, str) or not _SYMBOL_RE.match(self.symbol):
            raise InstrumentError(f"underlying symbol {self.symbol!r} must be 2-10 upper-case letters/digits")
        try:
            object.__setattr__(self, "asset_class", AssetClass(self.asset_class))
        except ValueError:
            raise InstrumentError(f"{self.symbol}: unknown asset class {self.asset_class!r}; "
                                  f"known: {[a.value for a in AssetClass]}") from None
        if not isinstance(self.size_decimals, int) or isinstance(self.size_decimals, bool) \
                or not 0 <= self.size_decimals <= 18:
            raise InstrumentError(f"{self.symbol}: size_decimals must be an integer 0..18, got {self.size_decimals!r}")
        if not isinstance(self.calendar, str) or not self.calendar:
            raise InstrumentError(f"{self.symbol}: calendar must be a non-empty name")


@dataclass(frozen=True, slots=True)
class ContractSpec:
    """Tick and lot rules of one contract type, all in integer units (see module doc)."""

    tick_size: int
    lot_size: int
    min_size: int
    max_size: int | None = None

    def __post_init__(self) -> None:
        _pos_int("tick_size", self.tick_size)
        _pos_int("lot_size", self.lot_size)
        _pos_int("min_size", self.min_size)
        if self.min_size % self.lot_size:
            raise InstrumentError(f"min_size {self.min_size} is not a multiple of lot_size {self.lot_size}")
        if self.max_size is not None:
            _pos_int("max_size", self.max_size)
            if self.max_size % self.lot_size or self.max_size < self.min_size:
                raise InstrumentError(f"max_size {self.max_size} must be a multiple of lot_size {self.lot_size} "
                                      f"and at least min_size {self.min_size}")


@dataclass(frozen=True, slots=True)
class ExpirySchedule:
    """How many of each expiry family ``roll`` keeps listed ahead of now."""

    daily: int = 0
    weekly: int = 0
    monthly: int = 0
    quarterly: int = 0
    weekdays_only: bool = False  # dailies only Monday-Friday (for RWA underlyings)

    def __post_init__(self) -> None:
        for n in ("daily", "weekly", "monthly", "quarterly"):
            v = getattr(self, n)
            if not isinstance(v, int) or isinstance(v, bool) or not 0 <= v <= 60:
                raise InstrumentError(f"schedule.{n} must be an integer 0..60, got {v!r}")

    def expiries(self, now_ms: int) -> list[int]:
        """Return the scheduled expiry instants strictly after ``now_ms``, ascending."""
        d = (_EPOCH + timedelta(days=now_ms // MS_PER_DAY))
        if now_ms >= expiry_ms(d):
            d += timedelta(days=1)  # today's 08:00 already passed
        out: set[date] = set()
        dailies: list[date] = []
        x = d
        while len(dailies) < self.daily:
            if not (self.weekdays_only and x.weekday() >= 5):
                dailies.append(x)
            x += timedelta(days=1)
        out.update(dailies)
        x = d + timedelta(days=(4 - d.weekday()) % 7)  # next Friday on or after d
        for _ in range(self.weekly):
            out.add(x)
            x += timedelta(days=7)
        out.update(_last_fridays(d, self.monthly, (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12)))
        out.update(_last_fridays(d, self.quarterly, (3, 6, 9, 12)))
        return sorted(expiry_ms(x) for x in out)


def _last_friday(year: int, month: int) -> date:
    last = date(year, month, calendar.monthrange(year, month)[1])
    return last - timedelta(days=(last.weekday() - 4) % 7)


def _last_fridays(start: date, n: int, months: tuple[int, ...]) -> list[date]:
    out: list[date] = []
    y, m = start.year, start.month
    while len(out) < n:
        if m in months:
            f = _last_friday(y, m)
            if f >= start:
                out.append(f)
        m += 1
        if m == 13:
            y, m = y + 1, 1
    return out


@dataclass(frozen=True, slots=True)
class UnderlyingConfig:
    """One underlying's contracts: perpetual and option specifications, strikes, schedule."""

    underlying: Underlying
    perpetual: ContractSpec | None = None
    option: ContractSpec | None = None
    strikes: tuple[int, ...] = ()
    schedule: ExpirySchedule = ExpirySchedule()

    def __post_init__(self) -> None:
        scale = 10**self.underlying.size_decimals
        for kind, spec in (("perpetual", self.perpetual), ("option", self.option)):
            if spec is not None and (spec.tick_size * spec.lot_size) % scale:
                raise InstrumentError(
                    f"{self.underlying.symbol} {kind}: tick_size*lot_size = {spec.tick_size * spec.lot_size} is not a "
                    f"multiple of 10^size_decimals = {scale}; notionals would need rounding")
        for s in self.strikes:
            _pos_int(f"{self.underlying.symbol} strike", s)
        if len(set(self.strikes)) != len(self.strikes):
            raise InstrumentError(f"{self.underlying.symbol}: duplicate strikes")
        if (self.strikes or self.schedule != ExpirySchedule()) and self.option is None:
            raise InstrumentError(f"{self.underlying.symbol}: strikes or a schedule given without an option spec")


@dataclass(frozen=True, slots=True)
class Instrument:
    """A tradable contract. ``name`` is derived and canonical."""

    underlying: Underlying
    kind: InstrumentKind
    spec: ContractSpec
    expiry_ms: int | None = None
    strike: int | None = None
    option_type: OptionType | None = None
    quote: str = "USDC"
    quote_decimals: int = QUOTE_DECIMALS
    name: str = field(init=False)

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "kind", InstrumentKind(self.kind))
        except ValueError:
            raise InstrumentError(f"unknown instrument kind {self.kind!r}") from None
        if (self.spec.tick_size * self.spec.lot_size) % 10**self.underlying.size_decimals:
            raise InstrumentError("tick_size*lot_size must be a multiple of 10^size_decimals")
        if self.kind is InstrumentKind.PERPETUAL:
            if self.expiry_ms is not None or self.strike is not None or self.option_type is not None:
                raise InstrumentError("a perpetual has no expiry, strike or option type")
            name = format_perp_name(self.underlying.symbol)
        else:
            if self.expiry_ms is None or self.strike is None or self.option_type is None:
                raise InstrumentError("an option needs expiry_ms, strike and option_type")
            if not isinstance(self.expiry_ms, int) or isinstance(self.expiry_ms, bool):
                raise InstrumentError(f"expiry_ms must be an integer, got {self.expiry_ms!r}")
            _pos_int("strike", self.strike)
            try:
                object.__setattr__(self, "option_type", OptionType(self.option_type))
            except ValueError:
                raise InstrumentError(f"option type must be 'C' or 'P', got {self.option_type!r}") from None
            name = format_option_name(self.underlying.symbol, _expiry_date(self.expiry_ms), self.strike,
                                      self.option_type, self.quote_decimals)
        object.__setattr__(self, "name", name)

    @property
    def tick_size(self) -> int:
        return self.spec.tick_size

    @property
    def lot_size(self) -> int:
        return self.spec.lot_size

    @property
    def is_option(self) -> bool:
        return self.kind is InstrumentKind.OPTION

    @property
    def expiry_date(self) -> date | None:
        return None if self.expiry_ms is None else _expiry_date(self.expiry_ms)

    def notional(self, price: int, size: int) -> int:
        """Return ``price * size`` in quote units (exact for any valid price and size)."""
        q, r = divmod(price * size, 10**self.underlying.size_decimals)
        if r:
            raise InstrumentError(f"{self.name}: notional of price {price} x size {size} is not whole quote units "
                                  "(price off tick or size off lot)")
        return q

    def price_units(self, value: Decimal | str | int) -> int:
        """Convert a decimal price in quote currency to quote units; refuse off-tick or lossy values."""
        units = _to_units(value, self.quote_decimals, "price")
        if units <= 0 or units % self.spec.tick_size:
            raise InstrumentError(f"{self.name}: price {value} is not a positive multiple of the tick "
                                  f"{_fmt(self.spec.tick_size, self.quote_decimals)}")
        return units

    def size_units(self, value: Decimal | str | int) -> int:
        """Convert a decimal size in underlying units to size units; refuse off-lot or lossy values."""
        units = _to_units(value, self.underlying.size_decimals, "size")
        if units <= 0 or units % self.spec.lot_size:
            raise InstrumentError(f"{self.name}: size {value} is not a positive multiple of the lot "
                                  f"{_fmt(self.spec.lot_size, self.underlying.size_decimals)}")
        return units

    def format_price(self, units: int) -> str:
        """Format quote units as a plain decimal string."""
        return _fmt(units, self.quote_decimals)

    def format_size(self, units: int) -> str:
        """Format size units as a plain decimal string."""
        return _fmt(units, self.underlying.size_decimals)


def _to_units(value: Decimal | str | int, decimals: int, what: str) -> int:
    if isinstance(value, float):
        raise InstrumentError(f"{what} must be a Decimal, str or int, not float (binary floats are inexact)")
    try:
        d = Decimal(value)
    except (InvalidOperation, ValueError, TypeError):
        raise InstrumentError(f"{what} {value!r} is not a number") from None
    if not d.is_finite():
        raise InstrumentError(f"{what} {value!r} is not finite")
    scaled = d.scaleb(decimals)
    if scaled != scaled.to_integral_value():
        raise InstrumentError(f"{what} {value} has more than {decimals} decimals")
    return int(scaled)


def _fmt(units: int, decimals: int) -> str:
    sign = "-" if units < 0 else ""
    q, r = divmod(abs(units), 10**decimals)
    return f"{sign}{q}.{r:0{decimals}d}".rstrip("0").rstrip(".") if decimals else f"{sign}{q}"


def book_for(instrument: Instrument) -> OrderBook:
    """Return an empty order book with the instrument's tick, lot and size limits."""
    s = instrument.spec
    return OrderBook(instrument.name, s.tick_size, s.lot_size, s.min_size, s.max_size)


# ---------------------------------------------------------------------------- registry


class InstrumentListed(NamedTuple):
    instrument: Instrument
    at_ms: int


class InstrumentDelisted(NamedTuple):
    instrument: Instrument
    at_ms: int
    reason: InstrumentStatus


class InstrumentRegistry:
    """The listed instruments, built from configuration; listings change only by call."""

    def __init__(self, configs: Iterable[UnderlyingConfig], quote: str = "USDC",
                 quote_decimals: int = QUOTE_DECIMALS) -> None:
        if not isinstance(quote_decimals, int) or not 0 <= quote_decimals <= 18:
            raise InstrumentError(f"quote_decimals must be an integer 0..18, got {quote_decimals!r}")
        self.quote = quote
        self.quote_decimals = quote_decimals
        self._configs: dict[str, UnderlyingConfig] = {}
        self._instruments: dict[str, Instrument] = {}
        self._status: dict[str, InstrumentStatus] = {}
        for c in configs:
            sym = c.underlying.symbol
            if sym in self._configs:
                raise InstrumentError(f"underlying {sym} configured twice")
            self._configs[sym] = c
            if c.perpetual is not None:
                inst = Instrument(c.underlying, InstrumentKind.PERPETUAL, c.perpetual, quote=quote,
                                  quote_decimals=quote_decimals)
                self._instruments[inst.name] = inst
                self._status[inst.name] = InstrumentStatus.ACTIVE

    # ------------------------------------------------------------ construction

    @classmethod
    def from_mapping(cls, cfg: Mapping[str, Any]) -> InstrumentRegistry:
        """Build from the parsed configuration (the shape of ``aggregator/instruments.toml``)."""
        try:
            quote = cfg.get("quote", "USDC")
            qd = cfg.get("quote_decimals", QUOTE_DECIMALS)
            configs = []
            for u in cfg.get("underlyings", []):
                und = Underlying(u["symbol"], u["asset_class"], u["size_decimals"], u.get("calendar", "24/7"))
                perp = _spec(u.get("perpetual"), f"{und.symbol}.perpetual")
                opt_cfg = dict(u.get("option") or {})
                strikes = tuple(_to_units(s, qd, f"{und.symbol} strike") for s in opt_cfg.pop("strikes", []))
                sched = ExpirySchedule(**opt_cfg.pop("schedule", {}))
                opt = _spec(opt_cfg or None, f"{und.symbol}.option")
                configs.append(UnderlyingConfig(und, perp, opt, strikes, sched))
        except KeyError as e:
            raise InstrumentError(f"instrument config is missing {e.args[0]!r}") from None
        except TypeError as e:
            raise InstrumentError(f"instrument config has an unexpected key or value: {e}") from None
        return cls(configs, quote, qd)

    @classmethod
    def from_toml(cls, text: str) -> InstrumentRegistry:
        """Build from TOML text (read ``aggregator/instruments.toml`` in the I/O shell)."""
        try:
            return cls.from_mapping(tomllib.loads(text))
        except tomllib.TOMLDecodeError as e:
            raise InstrumentError(f"instrument config is not valid TOML: {e}") from e

    # ----------------------------------------------------------------- queries

    def get(self, name: str) -> Instrument:
        """Return the listed instrument ``name`` (active or expired); raise ``UnknownInstrument``."""
        inst = self._instruments.get(name)
        if inst is None:
            parse_name(name, self.quote_decimals)  # a malformed name gets the parse error
            raise UnknownInstrument(f"instrument {name!r} is not listed")
        return inst

    def find(self, name: str) -> Instrument | None:
        return self._instruments.get(name)

    def status(self, name: str) -> InstrumentStatus:
        self.get(name)
        return self._status[name]

    def is_active(self, name: str) -> bool:
        return self._status.get(name) is InstrumentStatus.ACTIVE

    def active(self, underlying: str | None = None) -> list[Instrument]:
        """Return active instruments (of one underlying or all), sorted by name."""
        return [self._instruments[n] for n in sorted(self._instruments)
                if self._status[n] is InstrumentStatus.ACTIVE
                and (underlying is None or self._instruments[n].underlying.symbol == underlying)]

    def underlyings(self) -> list[Underlying]:
        return [self._configs[s].underlying for s in sorted(self._configs)]

    def config(self, underlying: str) -> UnderlyingConfig:
        try:
            return self._configs[underlying]
        except KeyError:
            raise UnknownInstrument(f"underlying {underlying!r} is not configured") from None

    def expiries(self, underlying: str) -> list[int]:
        """Return the active option expiries of ``underlying`` (ms), ascending."""
        return sorted({i.expiry_ms for i in self.active(underlying) if i.expiry_ms is not None})

    def chain(self, underlying: str, expiry: int) -> list[Instrument]:
        """Return the active options of one expiry, by strike then call before put."""
        return sorted((i for i in self.active(underlying) if i.expiry_ms == expiry),
                      key=lambda i: (i.strike, i.option_type.value))  # type: ignore[union-attr]

    # ---------------------------------------------------------------- listings

    def list_series(self, underlying: str, expiry: int, now_ms: int,
                    strikes: Sequence[int] | None = None) -> list[InstrumentListed]:
        """List a call and a put per strike for one expiry (ms at 08:00 UTC) after ``now_ms``.

        Strikes default to the configured ones; already-listed names are skipped.
        """
        c = self.config(underlying)
        if c.option is None:
            raise InstrumentError(f"{underlying} has no option specification")
        _expiry_date(expiry)
        if expiry <= now_ms:
            raise InstrumentError(f"cannot list expiry {expiry} at or before now {now_ms}")
        strikes = c.strikes if strikes is None else tuple(strikes)
        events: list[InstrumentListed] = []
        for k in sorted(set(strikes)):
            for ot in (OptionType.CALL, OptionType.PUT):
                inst = Instrument(c.underlying, InstrumentKind.OPTION, c.option, expiry, k, ot, self.quote,
                                  self.quote_decimals)
                if inst.name in self._instruments:
                    continue
                self._instruments[inst.name] = inst
                self._status[inst.name] = InstrumentStatus.ACTIVE
                events.append(InstrumentListed(inst, now_ms))
        return events

    def delist_expired(self, now_ms: int) -> list[InstrumentDelisted]:
        """Mark every active option whose expiry is at or before ``now_ms`` as expired."""
        events = []
        for name in sorted(self._instruments):
            inst = self._instruments[name]
            if (inst.expiry_ms is not None and inst.expiry_ms <= now_ms
                    and self._status[name] is InstrumentStatus.ACTIVE):
                self._status[name] = InstrumentStatus.EXPIRED
                events.append(InstrumentDelisted(inst, now_ms, InstrumentStatus.EXPIRED))
        return events

    def roll(self, now_ms: int, strikes: Mapping[str, Sequence[int]] | None = None,
             ) -> list[InstrumentListed | InstrumentDelisted]:
        """Delist what expired by ``now_ms`` and list the scheduled expiries after it.

        ``strikes`` overrides the configured strikes per underlying (e.g. a grid around
        the current index price computed by the caller).
        """
        events: list[InstrumentListed | InstrumentDelisted] = list(self.delist_expired(now_ms))
        for sym in sorted(self._configs):
            c = self._configs[sym]
            if c.option is None:
                continue
            ks = (strikes or {}).get(sym, c.strikes)
            if not ks:
                continue
            for exp in c.schedule.expiries(now_ms):
                events.extend(self.list_series(sym, exp, now_ms, ks))
        return events


def _spec(d: Mapping[str, Any] | None, where: str) -> ContractSpec | None:
    if d is None:
        return None
    try:
        return ContractSpec(**d)
    except TypeError as e:
        raise InstrumentError(f"{where}: {e}") from None
    except InstrumentError as e:
        raise InstrumentError(f"{where}: {e}") from None
