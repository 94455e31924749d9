"""Seeded random sessions of sequencer commands, generated against the live state.

``session(seed, n, view)`` is a generator of ``(command class, args, ts_ms)``; the
caller builds ``cls(seq, ts_ms, *args)``, applies it (to a ``Sequencer``, a harness or a
``SequencerService``), then asks for the next one. ``view()`` returns the sequencer the
commands are applied to, so cancels and amends can name real resting orders.

The mix: deposits (some repeated, some invalid), limit GTC/IOC/FOK/post-only and market
orders on ETH/BTC perps and near-the-money options, reduce-only orders, cancels by id
and by client id, cancel-alls, amends of price and size, session key grants (some short
lived) and revokes, orders signed by session keys and by strangers, reused nonces,
expired and off-tick orders, price updates (a random walk with jumps, sometimes with a
closed/halted/stale status) and ticks. Starting at 06:00 UTC, a session of ``n``
commands with the default step crosses ``n * step_ms / 2`` ms: long enough sessions
cross the hourly funding boundaries and the 08:00 UTC option expiry.

Pure and deterministic for a given seed and sequencer behaviour; no I/O.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from typing import Any

from aggregator import eip712
from aggregator.core import commands as C

__all__ = ["START_MS", "SIG", "account", "session_key", "session"]

START_MS = 1_767_247_200_000  # 2026-01-01T06:00:00Z: the 1JAN26 options expire at 08:00
SIG = b"\x07" * 65  # replay does not re-verify signatures
FEEDS = {"ETH": "ETH-USD", "BTC": "BTC-USD"}
PERP_TICK = {"ETH-PERP": 10_000, "BTC-PERP": 100_000}
STATUSES = ("market-closed", "halted", "stale", "deviating")

Step = tuple[type, tuple, int]


def account(i: int) -> str:
    """Return the checksum address of session trader ``i``."""
    return eip712.to_checksum_address("0x" + f"{0xC0FFEE000000 + i:040x}")


def session_key(i: int) -> str:
    return eip712.to_checksum_address("0x" + f"{0x5E5510000000 + i:040x}")


def _options(view: Any) -> list[tuple[str, int, int]]:
    """Near-the-money options of the first two ETH/BTC expiries: (name, tick, lot)."""
    out = []
    for m in view.markets():
        if m["kind"] != "option":
            continue
        name = m["instrument"]
        if name.split("-")[1] not in ("1JAN26", "2JAN26"):
            continue
        if m["underlying"] == "ETH" and m["strike"] in (2_800_000_000, 3_000_000_000, 3_200_000_000):
            out.append((name, m["tick_size"], m["lot_size"]))
        elif m["underlying"] == "BTC" and m["strike"] in (90_000_000_000,):
            out.append((name, m["tick_size"], m["lot_size"]))
    return sorted(out)


def session(seed: int, n: int, view: Callable[[], Any], *, accounts: int = 12, start_ms: int = START_MS,
            step_ms: int = 5_000, chains: tuple[int, ...] = (1, 10, 42161), closing: bool = True) -> Iterator[Step]:
    """Yield an opening, then one command per draw, ``n`` draws, as ``(cls, args, ts_ms)``.

    A draw that finds nothing to amend (or no session key to manage) yields nothing.
    ``closing`` ends with two Ticks three and four hours later (expiry and funding).
    """
    rng = random.Random(seed)
    accts = [account(i) for i in range(accounts)]
    keys = {a: session_key(i) for i, a in enumerate(accts) if i % 3 == 0}
    stranger = account(10_000)
    px = {"ETH": 3_000.0, "BTC": 90_000.0}
    status = {"ETH": "ok", "BTC": "ok"}
    now = start_ms
    nonce = 0
    deposits: list[tuple[int, int, str, int]] = []
    dep_nonce = 0
    used: list[tuple[str, str, int]] = []  # (account, signer, nonce) accepted or not: for reuse

    def exp() -> int:
        return now // 1000 + rng.choice((60, 600, 3600))

    def signer_for(a: str) -> str:
        r = rng.random()
        if r < 0.01:
            return stranger
        k = keys.get(a)
        return k if k is not None and r < 0.5 else a

    # ------------------------------------------------ opening
    yield C.Tick, (), now
    options = _options(view())
    for u, feed in FEEDS.items():
        yield C.PriceUpdate, (feed, int(px[u] * 1e8), 10**6, now // 1000, "ok"), now
    for a, k in keys.items():
        nonce += 1
        g = eip712.SessionKey(account=a, session_key=k, valid_until=now // 1000 + 6 * 3600, nonce=nonce,
                              expiry=now // 1000 + 3600)
        yield C.GrantSessionKey, (a, g, SIG), now
    for i, a in enumerate(accts):
        dep_nonce += 1
        amount = (rng.randrange(200, 1_000) if i % 4 == 3 else rng.randrange(20_000, 200_000)) * 10**6
        d = (rng.choice(chains), dep_nonce, a, amount)
        deposits.append(d)
        yield C.DepositCredit, d, now

    for _ in range(n):
        now += rng.randrange(0, step_ms + 1)
        a = rng.choice(accts)
        r = rng.random()
        v = view()
        if r < 0.03:  # price update
            u = rng.choice(("ETH", "BTC"))
            jump = rng.random() < 0.15
            px[u] *= 1 + rng.gauss(0, 0.05 if jump else 0.003)
            st = "ok"
            if status[u] == "ok" and rng.random() < 0.1:
                st = rng.choice(STATUSES)
            status[u] = st
            yield C.PriceUpdate, (FEEDS[u], max(1, int(px[u] * 1e8)), 10**6, now // 1000, st), now
        elif r < 0.04:
            yield C.Tick, (), now
        elif r < 0.06:  # deposit: fresh, repeated, or invalid
            q = rng.random()
            if q < 0.15 and deposits:
                yield C.DepositCredit, rng.choice(deposits), now
            elif q < 0.2:
                dep_nonce += 1
                yield C.DepositCredit, (rng.choice(chains), dep_nonce, a, 0), now
            else:  # the small accounts (every fourth) stay small: they run into margin and liquidation
                dep_nonce += 1
                to = a if accts.index(a) % 4 != 3 else accts[0]
                d = (rng.choice(chains), dep_nonce, to, rng.randrange(100, 20_000) * 10**6)
                deposits.append(d)
                yield C.DepositCredit, d, now
        elif r < 0.19:  # cancel one resting order
            oo = v.open_orders(a)
            nonce += 1
            if oo and rng.random() < 0.95:
                o = rng.choice(oo)
                by_coid = o["client_order_id"] and rng.random() < 0.5
                c = eip712.Cancel(account=a, instrument=o["instrument"], order_id=0 if by_coid else o["order_id"],
                                  client_order_id=o["client_order_id"] if by_coid else 0, nonce=nonce, expiry=exp())
            else:
                c = eip712.Cancel(account=a, instrument="ETH-PERP", order_id=10**9, client_order_id=0,
                                  nonce=nonce, expiry=exp())
            yield C.CancelOrder, (signer_for(a), c, SIG), now
        elif r < 0.21:
            nonce += 1
            inst = rng.choice(("", "", "ETH-PERP", "BTC-PERP"))
            c = eip712.CancelAll(account=a, instrument=inst, nonce=nonce, expiry=exp())
            yield C.CancelAllOrders, (signer_for(a), c, SIG), now
        elif r < 0.28:  # amend price and/or size
            oo = v.open_orders(a)
            if not oo:
                continue
            o = rng.choice(oo)
            tick = PERP_TICK.get(o["instrument"]) or next((t for nm, t, _ in options if nm == o["instrument"]), 1)
            lot = 1 if o["instrument"] in PERP_TICK else 10
            price = size = 0
            q = rng.random()
            if q < 0.6:
                price = max(tick, o["price"] + rng.choice((-3, -2, -1, 1, 2, 3)) * tick)
            if q > 0.4:
                size = max(lot, o["size"] + rng.choice((-2, -1, 1, 2, 5)) * lot)
            if not price and not size:
                price = o["price"] + tick
            nonce += 1
            am = eip712.Amend(account=a, instrument=o["instrument"], order_id=o["order_id"], client_order_id=0,
                              price=price, size=size, nonce=nonce, expiry=exp())
            yield C.AmendOrder, (signer_for(a), am, SIG), now
        elif r < 0.29:  # session keys
            k = keys.get(a)
            if k is None:
                continue
            nonce += 1
            if rng.random() < 0.5:
                g = eip712.SessionKey(account=a, session_key=k, valid_until=now // 1000 + rng.choice((5, 600, 7200)),
                                      nonce=nonce, expiry=exp())
                yield C.GrantSessionKey, (a, g, SIG), now
            else:
                rv = eip712.RevokeSessionKey(account=a, session_key=k, nonce=nonce, expiry=exp())
                yield C.RevokeSession, (rng.choice((a, k)), rv, SIG), now
        else:  # place
            side = rng.choice((1, 2))
            if rng.random() < 0.8 or not options:
                u = "ETH" if rng.random() < 0.7 else "BTC"
                inst = f"{u}-PERP"
                tick, lot = PERP_TICK[inst], 1
                mid = int(px[u] * 1e6)
                off = int(rng.expovariate(1 / 6) * tick) * (1 if side == 2 else -1)
                cross = rng.random() < 0.25
                price = max(tick, (mid - off if cross else mid + off) // tick * tick)
                size = rng.choice((1, 2, 5, 10, 20, 50, 100, 300, 1000, 2000))
                if accts.index(a) % 4 == 3 and rng.random() < 0.3:  # a small account goes near 10x
                    free = (v.account(a) or {}).get("free_collateral", 0)
                    scale = 1000 if u == "ETH" else 10_000
                    size = max(1, free * scale * 8 // max(1, mid))
                    price = max(tick, (mid * 101 // 100 if side == 1 else mid * 99 // 100) // tick * tick)
            else:
                inst, tick, lot = rng.choice(options)
                price = rng.randrange(5, 400) * tick * (10 if tick < 10**6 else 20)
                size = rng.choice((1, 2, 5, 10)) * lot
            q = rng.random()
            tif, otype = 1, 1
            if q < 0.12:
                tif = 2
            elif q < 0.17:
                tif = 3
            elif q < 0.24:
                tif = 4
            elif q < 0.30:
                otype, tif, price = 2, rng.choice((1, 2, 3)), 0
            reduce_only = False
            if rng.random() < 0.06:
                reduce_only = True
                acct = v.account(a)
                pos = next((p["size"] for p in (acct or {}).get("positions", []) if p["instrument"] == inst), 0)
                if pos and rng.random() < 0.8:
                    side = 2 if pos > 0 else 1
                    size = max(lot, min(size, abs(pos)) // lot * lot)
            q = rng.random()
            signer = signer_for(a)
            if q < 0.02 and used:
                a, signer, n_ = rng.choice(used)  # replay a nonce already used by that key
            else:
                nonce += 1
                n_ = nonce
                used.append((a, signer, n_))
                if len(used) > 500:
                    used.pop(0)
            expiry = exp()
            if rng.random() < 0.01:
                expiry = now // 1000 - 1
            if rng.random() < 0.01 and otype == 1:
                price += 1  # off tick
            coid = rng.randrange(1, 40) if rng.random() < 0.3 else 0
            o = eip712.Order(account=a, instrument=inst, side=side, order_type=otype, time_in_force=tif,
                             self_trade_prevention=rng.choice((1, 1, 1, 2, 3)), reduce_only=reduce_only,
                             price=price, size=size, client_order_id=coid, nonce=n_, expiry=expiry)
            yield C.PlaceOrder, (signer, o, SIG), now
    if closing:
        for _ in range(2):
            now += 3 * 3_600_000
            yield C.Tick, (), now
