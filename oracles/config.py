"""Feed configuration: the rules of each feed, loaded from ``feeds.toml``.

Invariants checked at load time (a bad file fails loudly, never half-loads):
- names are unique, at most 31 ASCII bytes (they become ``bytes32`` feed ids);
- ``1 <= quorum <= number of sources``; ``0 < min_price < max_price``;
- basis-point limits are positive integers; the calendar exists.
Bounds are exact ``Decimal``s parsed from strings (TOML floats are refused).
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from decimal import Decimal
from importlib import resources
from pathlib import Path
from typing import Any

from oracles.calendar import MarketCalendar, calendar_by_name
from oracles.types import OracleError, to_fixed

DEFAULT_FEEDS_FILE = "feeds.toml"


class FeedConfigError(OracleError):
    """The feed configuration is unusable; the message names the feed and the value."""


@dataclass(frozen=True)
class FeedConfig:
    """The rules of one feed. Prices are USD; limits are basis points or seconds."""

    name: str
    underlying: str
    kind: str
    calendar: str
    sources: dict[str, str]
    quorum: int
    heartbeat_s: int
    min_price: Decimal
    max_price: Decimal
    max_deviation_bps: int
    max_confidence_bps: int
    max_jump_bps: int
    breaker_confirm_s: int = 60
    max_future_s: int = 2
    push_deviation_bps: int = 50
    push_heartbeat_s: int = 3600
    onchain_max_age_s: int = 3600
    twap_window_s: int = 1800
    description: str = ""
    min_price_fixed: int = field(init=False, repr=False)
    max_price_fixed: int = field(init=False, repr=False)

    def __post_init__(self) -> None:
        def bad(msg: str) -> FeedConfigError:
            return FeedConfigError(f"feed {self.name!r}: {msg}")

        if not self.name or not self.name.isascii() or len(self.name.encode()) > 31:
            raise bad("name must be 1-31 ASCII characters")
        if not self.sources:
            raise bad("at least one source is required")
        if not 1 <= self.quorum <= len(self.sources):
            raise bad(f"quorum {self.quorum} must be between 1 and {len(self.sources)} sources")
        for k in ("heartbeat_s", "max_deviation_bps", "max_confidence_bps", "max_jump_bps",
                  "push_deviation_bps", "push_heartbeat_s", "onchain_max_age_s", "twap_window_s"):
            v = getattr(self, k)
            if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
                raise bad(f"{k} must be a positive integer, got {v!r}")
        if self.breaker_confirm_s < 0 or self.max_future_s < 0:
            raise bad("breaker_confirm_s and max_future_s must be >= 0")
        if not (Decimal(0) < self.min_price < self.max_price):
            raise bad(f"bounds must satisfy 0 < min_price < max_price, got {self.min_price}..{self.max_price}")
        try:
            calendar_by_name(self.calendar)
        except ValueError as e:
            raise bad(str(e)) from e
        object.__setattr__(self, "min_price_fixed", to_fixed(self.min_price))
        object.__setattr__(self, "max_price_fixed", to_fixed(self.max_price))

    @property
    def market_calendar(self) -> MarketCalendar:
        return calendar_by_name(self.calendar)


_DECIMAL_KEYS = ("min_price", "max_price")


def parse_feeds(raw: dict[str, Any]) -> dict[str, FeedConfig]:
    """Build feed configs from parsed TOML (``[feeds.<NAME>]`` tables)."""
    feeds_raw = raw.get("feeds")
    if not isinstance(feeds_raw, dict) or not feeds_raw:
        raise FeedConfigError("no [feeds.<name>] tables")
    out: dict[str, FeedConfig] = {}
    for name, body in feeds_raw.items():
        if not isinstance(body, dict):
            raise FeedConfigError(f"feed {name!r}: not a table")
        body = dict(body)
        for k in _DECIMAL_KEYS:
            v = body.get(k)
            if not isinstance(v, str):
                raise FeedConfigError(f"feed {name!r}: {k} must be a decimal string, got {v!r}")
            body[k] = Decimal(v)
        try:
            out[name] = FeedConfig(name=name, **body)
        except TypeError as e:
            raise FeedConfigError(f"feed {name!r}: {e}") from e
    return out


def load_feeds(path: str | Path | None = None) -> dict[str, FeedConfig]:
    """Load ``path`` or the packaged ``oracles/feeds.toml``."""
    if path is None:
        text = resources.files("oracles").joinpath(DEFAULT_FEEDS_FILE).read_text()
        where = "oracles/feeds.toml"
    else:
        text = Path(path).read_text()
        where = str(path)
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise FeedConfigError(f"{where}: invalid TOML: {e}") from e
    return parse_feeds(raw)
