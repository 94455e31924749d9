"""Builders shared by the oracle tests."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from decimal import Decimal

from oracles.calendar import NEW_YORK, to_ms
from oracles.config import FeedConfig, load_feeds
from oracles.types import Observation

FEEDS = load_feeds()


def ny(y: int, m: int, d: int, hh: int = 12, mm: int = 0, ss: int = 0) -> int:
    """Return New York wall time as UTC milliseconds."""
    return to_ms(datetime(y, m, d, hh, mm, ss, tzinfo=NEW_YORK))


def feed(name: str, **overrides) -> FeedConfig:
    return replace(FEEDS[name], **overrides) if overrides else FEEDS[name]


def obs(feed_name: str, source: str, price: str | Decimal, publish_ms: int, conf: str = "0",
        halted: bool = False) -> Observation:
    return Observation(feed_name, source, Decimal(price), publish_ms, Decimal(conf), halted)
