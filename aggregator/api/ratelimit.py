"""Token-bucket rate limits, per key (account or client address).

A bucket holds up to ``burst`` tokens and refills at ``rate`` tokens per second; a
request costs ``cost`` tokens (a batch of n orders costs n) and is refused, without
taking anything, when the bucket holds fewer. The clock is injected (monotonic seconds)
so tests are exact. Memory is bounded: buckets that have refilled completely carry no
information and are dropped by ``prune`` (called every ``prune_every`` checks).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass

__all__ = ["RateLimit", "TokenBuckets"]


@dataclass(frozen=True, slots=True)
class RateLimit:
    """``rate`` tokens per second, at most ``burst`` tokens saved up."""

    rate: float
    burst: float

    def __post_init__(self) -> None:
        if not self.rate > 0 or not self.burst >= 1:
            raise ValueError(f"rate must be > 0 and burst >= 1, got {self.rate}, {self.burst}")


class TokenBuckets:
    """One token bucket per key, all with the same limit."""

    def __init__(self, limit: RateLimit, clock: Callable[[], float] = time.monotonic,
                 prune_every: int = 10_000) -> None:
        self.limit = limit
        self.clock = clock
        self._buckets: dict[Hashable, tuple[float, float]] = {}  # key -> (tokens, at)
        self._prune_every = prune_every
        self._checks = 0

    def take(self, key: Hashable, cost: float = 1.0) -> float:
        """Take ``cost`` tokens from ``key``'s bucket; return 0.0, or the seconds to wait if refused."""
        now = self.clock()
        rate, burst = self.limit.rate, self.limit.burst
        tokens, at = self._buckets.get(key, (burst, now))
        tokens = min(burst, tokens + (now - at) * rate)
        self._checks += 1
        if self._checks >= self._prune_every:
            self._checks = 0
            self.prune(now)
        if cost > burst:
            self._buckets[key] = (tokens, now)
            return float("inf")
        if tokens < cost:
            self._buckets[key] = (tokens, now)
            return (cost - tokens) / rate
        self._buckets[key] = (tokens - cost, now)
        return 0.0

    def prune(self, now: float | None = None) -> int:
        """Drop buckets that are full again; return how many."""
        now = self.clock() if now is None else now
        rate, burst = self.limit.rate, self.limit.burst
        full = [k for k, (t, at) in self._buckets.items() if t + (now - at) * rate >= burst]
        for k in full:
            del self._buckets[k]
        return len(full)

    def __len__(self) -> int:
        return len(self._buckets)
