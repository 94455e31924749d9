"""Replay-proof nonces without a shared clock.

Why not timestamps or counters
    Millisecond-timestamp nonces collide when two processes trade with the same key in
    the same millisecond (ccxt issue 30348), and a strictly increasing counter rejects
    valid messages that arrive out of order through different API nodes. Here a nonce is
    any uint64 the client likes (random 64-bit, a counter, a timestamp plus a process
    id); the only requirement is that the same key does not use it twice while a
    message carrying it could still be accepted.

The rule (every signed action carries ``nonce`` and ``expiry``, a uint64 of Unix
seconds, both covered by the signature)
    The sequencer accepts a message at its own time ``now_ms`` iff
      1. ``0 <= nonce < 2**64`` and ``0 <= expiry < 2**64``;
      2. ``now_ms <= expiry * 1000``            - not expired (the expiry second itself
         is still valid at its first millisecond, nothing after it);
      3. ``expiry * 1000 <= now_ms + max_lifetime_ms`` - the window: a message cannot ask
         to stay valid for longer than ``max_lifetime_ms`` from now;
      4. ``(key, nonce)`` is not among the remembered used nonces;
      5. ``key`` has fewer than ``max_live_per_key`` remembered nonces.
    When it accepts, it remembers ``(key, nonce)`` until ``expiry * 1000``.

Why forgetting is safe
    An entry ``(key, nonce, e)`` is forgotten only when ``now_ms > e * 1000``. A replay is
    the same signed message, so it carries the same ``expiry`` ``e``; since the
    sequencer's time never goes backwards (``ClockWentBackwards`` otherwise), any later
    ``now_ms`` also exceeds ``e * 1000`` and rule 2 rejects it. A later message with the
    same nonce and a *different* expiry has a different digest: only the key's owner can
    sign it, so accepting it is not a replay (clients should still not reuse nonces).
    Hence: each signed message is accepted at most once, forever, while memory holds at
    most ``max_live_per_key`` entries per key, none older than ``max_lifetime_ms``.

Keys
    ``key`` is any hashable chosen by the caller. The sequencer should use
    ``(account, signer)`` so that two session keys of one account cannot collide with
    each other's counters; any choice that includes the signer is replay-safe, because
    a replay reuses the signature and so recovers the same signer.

Determinism: verdicts depend only on the sequence of calls and their arguments; pruning
happens inside ``use``/``prune`` by expiry order, never by wall clock or hash order.
"""

from __future__ import annotations

from collections.abc import Hashable
from enum import StrEnum

from aggregator.core.expiry import ExpiryQueue

__all__ = ["NonceVerdict", "NonceStore", "ClockWentBackwards", "UINT64_MAX", "DEFAULT_MAX_LIFETIME_MS"]

UINT64_MAX = 2**64 - 1
DEFAULT_MAX_LIFETIME_MS = 24 * 3_600_000  # one day
DEFAULT_MAX_LIVE_PER_KEY = 100_000


class ClockWentBackwards(ValueError):
    """``now_ms`` is earlier than a time already seen: the caller's clock is not monotonic."""


class NonceVerdict(StrEnum):
    """Outcome of a nonce check; every value but ``ACCEPTED`` is a stable reject code."""

    ACCEPTED = "ACCEPTED"
    NONCE_OUT_OF_RANGE = "NONCE_OUT_OF_RANGE"
    EXPIRY_OUT_OF_RANGE = "EXPIRY_OUT_OF_RANGE"
    EXPIRED = "EXPIRED"
    EXPIRY_TOO_FAR = "EXPIRY_TOO_FAR"
    NONCE_REUSED = "NONCE_REUSED"
    TOO_MANY_LIVE_NONCES = "TOO_MANY_LIVE_NONCES"


class NonceStore:
    """Per-key used-nonce sets, pruned by message expiry (see the module doc for the rule).

    Layout: ``_used`` key -> {nonce: expiry_ms}; ``_expiry`` an ``ExpiryQueue`` of
    ``(key, nonce)`` by expiry, so pruning pops one heap entry per expiry millisecond, not
    one per nonce (clients that sign with ``expiry = now + N s`` share one per second).
    """

    __slots__ = ("max_lifetime_ms", "max_live_per_key", "_used", "_expiry", "_now_ms")

    def __init__(self, max_lifetime_ms: int = DEFAULT_MAX_LIFETIME_MS,
                 max_live_per_key: int = DEFAULT_MAX_LIVE_PER_KEY) -> None:
        for name, v in (("max_lifetime_ms", max_lifetime_ms), ("max_live_per_key", max_live_per_key)):
            if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
                raise ValueError(f"{name} must be a positive int, got {v!r}")
        self.max_lifetime_ms = max_lifetime_ms
        self.max_live_per_key = max_live_per_key
        self._used: dict[Hashable, dict[int, int]] = {}
        self._expiry = ExpiryQueue()  # of (key, nonce)
        self._now_ms = -1

    def check(self, key: Hashable, nonce: int, expiry_s: int, now_ms: int) -> NonceVerdict:
        """Return the verdict for a message without recording it (nor pruning)."""
        if now_ms < self._now_ms:
            raise ClockWentBackwards(f"now_ms {now_ms} is before {self._now_ms}")
        if type(nonce) is not int or not 0 <= nonce <= UINT64_MAX:
            if not isinstance(nonce, int) or isinstance(nonce, bool) or not 0 <= nonce <= UINT64_MAX:
                return NonceVerdict.NONCE_OUT_OF_RANGE
        if type(expiry_s) is not int or not 0 <= expiry_s <= UINT64_MAX:
            if not isinstance(expiry_s, int) or isinstance(expiry_s, bool) or not 0 <= expiry_s <= UINT64_MAX:
                return NonceVerdict.EXPIRY_OUT_OF_RANGE
        exp_ms = expiry_s * 1000
        if now_ms > exp_ms:
            return NonceVerdict.EXPIRED
        if exp_ms > now_ms + self.max_lifetime_ms:
            return NonceVerdict.EXPIRY_TOO_FAR
        used = self._used.get(key)
        if used is not None:
            e = used.get(nonce)
            if e is not None and e >= now_ms:  # an entry not yet pruned but dead counts as gone
                return NonceVerdict.NONCE_REUSED
            if len(used) >= self.max_live_per_key:
                live = sum(1 for x in used.values() if x >= now_ms)
                if live >= self.max_live_per_key:
                    return NonceVerdict.TOO_MANY_LIVE_NONCES
        return NonceVerdict.ACCEPTED

    def use(self, key: Hashable, nonce: int, expiry_s: int, now_ms: int) -> NonceVerdict:
        """Check a message and, if accepted, record its nonce; prune what expired before ``now_ms``."""
        self.prune(now_ms)
        verdict = self.check(key, nonce, expiry_s, now_ms)
        if verdict is NonceVerdict.ACCEPTED:
            self._add(key, nonce, expiry_s * 1000)
        return verdict

    def record(self, key: Hashable, nonce: int, expiry_s: int, now_ms: int) -> None:
        """Record a nonce that ``check`` accepted at this same ``now_ms``; prune what expired.

        ``use`` without the second check: the sequencer checks before its other rules and
        records only once the whole command is accepted, with nothing in between that can
        change this key's nonces. Pruning first never changes a verdict (``check`` counts
        an expired entry as gone), it only frees memory.
        """
        heap = self._expiry._heap  # ExpiryQueue.due and _add inlined: this runs once per accepted order
        if (heap and heap[0] < now_ms) or now_ms < self._now_ms:
            self.prune(now_ms)
        else:
            self._now_ms = now_ms
        exp_ms = expiry_s * 1000
        used = self._used.get(key)
        if used is None:
            used = self._used[key] = {}
        used[nonce] = exp_ms
        self._expiry.push(exp_ms, (key, nonce))

    def _add(self, key: Hashable, nonce: int, exp_ms: int) -> None:
        used = self._used.get(key)
        if used is None:
            used = self._used[key] = {}
        used[nonce] = exp_ms
        self._expiry.push(exp_ms, (key, nonce))

    def prune(self, now_ms: int) -> int:
        """Forget every nonce whose message expired strictly before ``now_ms``; return how many."""
        if now_ms < self._now_ms:
            raise ClockWentBackwards(f"now_ms {now_ms} is before {self._now_ms}")
        self._now_ms = now_ms
        n = 0
        all_used = self._used
        for key, nonce in self._expiry.pop_due(now_ms):
            used = all_used[key]
            del used[nonce]
            if not used:
                del all_used[key]
            n += 1
        return n

    def live_count(self, key: Hashable) -> int:
        """Return how many nonces of ``key`` are remembered."""
        return len(self._used.get(key, ()))

    def __len__(self) -> int:
        return len(self._expiry)

    def __contains__(self, item: tuple[Hashable, int]) -> bool:
        key, nonce = item
        return nonce in self._used.get(key, ())
