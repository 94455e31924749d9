"""Every reject code of the core: the code is right and the rejected command changed nothing.

Each case builds a rich state (balances, a perp position, resting orders on both sides,
an option offer, a session key), snapshots it, applies one command that must be
rejected, and checks: the code; no events and no result; the whole state unchanged
(``state_bytes``: balances, positions, reserves, books, nonces, session keys, deposits)
and the read API unchanged (``observable``). Where the reject happens after the nonce
check, a follow-up proves the nonce was not consumed: the same ``(account, signer,
nonce)`` is then accepted once the cause is gone.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest

from aggregator import eip712
from aggregator.core import commands as C
from aggregator.core.sequencer import Outcome, RejectCode
from tests.sequencer.helpers import (
    ALICE,
    BOB,
    CAROL,
    DAVE,
    INS,
    SESSION,
    SIG,
    USDC,
    Harness,
    addr,
    config,
    observable,
    order,
    state_bytes,
    trigger_msg,
)

PERP = "ETH-PERP"
OPT = "ETH-2JAN26-3000-C"
PUT = "ETH-2JAN26-2000-P"
TODAY = "ETH-1JAN26-3000-C"  # expires 08:00 UTC on T0's day
BUY, SELL = 1, 2
GTC, IOC, FOK, POST = 1, 2, 3, 4
LIMIT, MARKET = 1, 2
KEY2 = addr(0x5E56)
N = 10**12  # the nonce every rejected command uses (the harness counter never gets there)

Make = Callable[[int, int], C.Command]


def px(usd: int | float) -> int:
    return int(usd * USDC)


def base(**cfg) -> Harness:
    """Ticked, priced, funded; Alice long 1 ETH-PERP, resting orders on both sides."""
    h = Harness(config(**cfg))
    h.tick()
    h.price("ETH-USD", 3000)
    h.price("BTC-USD", 90000)
    for a, amt in ((ALICE, 100_000), (BOB, 100_000), (CAROL, 20)):
        assert h.deposit(a, amt * USDC).accepted
    assert h.grant(ALICE, SESSION).accepted
    assert h.place(BOB, PERP, SELL, px(3010), 2000, coid=7).accepted  # order 1
    assert h.place(BOB, PERP, BUY, px(2990), 2000).accepted  # order 2
    assert h.place(ALICE, PERP, BUY, px(3010), 1000, tif=IOC).result["filled"] == 1000
    assert h.place(ALICE, PERP, BUY, px(2980), 500, coid=42, tif=POST).accepted  # order 4
    assert h.place(BOB, OPT, SELL, px(100), 100).accepted  # order 5
    assert h.pos(ALICE, PERP) == 1000 and h.pos(BOB, PERP) == -1000
    return h


def place(account: str, inst: str, side: int, price: int, size: int, *, signer: str | None = None,
          nonce: int = N, now_ms: int, **kw) -> Make:
    o = order(account, inst, side, price, size, nonce=nonce, now_ms=now_ms, **kw)
    return lambda s, t: C.PlaceOrder(s, t, signer or account, o, SIG)


def trigger(account: str, inst: str, side: int, trigger_price: int, size: int, *, signer: str | None = None,
            nonce: int = N, now_ms: int, **kw) -> Make:
    t = trigger_msg(account, inst, side, trigger_price, size, nonce=nonce, now_ms=now_ms, **kw)
    return lambda s, ts: C.PlaceTrigger(s, ts, signer or account, t, SIG)


def cancel(account: str, inst: str, *, now_ms: int, order_id: int = 0, coid: int = 0, signer: str | None = None,
           nonce: int = N) -> Make:
    c = eip712.Cancel(account=account, instrument=inst, order_id=order_id, client_order_id=coid, nonce=nonce,
                      expiry=now_ms // 1000 + 3600)
    return lambda s, t: C.CancelOrder(s, t, signer or account, c, SIG)


def cancel_all(account: str, inst: str = "", *, now_ms: int, signer: str | None = None, nonce: int = N) -> Make:
    c = eip712.CancelAll(account=account, instrument=inst, nonce=nonce, expiry=now_ms // 1000 + 3600)
    return lambda s, t: C.CancelAllOrders(s, t, signer or account, c, SIG)


def amend(account: str, inst: str, order_id: int, *, now_ms: int, price: int = 0, size: int = 0,
          signer: str | None = None, nonce: int = N) -> Make:
    a = eip712.Amend(account=account, instrument=inst, order_id=order_id, client_order_id=0, price=price,
                     size=size, nonce=nonce, expiry=now_ms // 1000 + 3600)
    return lambda s, t: C.AmendOrder(s, t, signer or account, a, SIG)


def grant(account: str, key: str, *, now_ms: int, valid_s: int = 3600, signer: str | None = None,
          nonce: int = N) -> Make:
    g = eip712.SessionKey(account=account, session_key=key, valid_until=now_ms // 1000 + valid_s, nonce=nonce,
                          expiry=now_ms // 1000 + 3600)
    return lambda s, t: C.GrantSessionKey(s, t, signer or account, g, SIG)


def revoke(account: str, key: str, *, now_ms: int, signer: str | None = None, nonce: int = N) -> Make:
    r = eip712.RevokeSessionKey(account=account, session_key=key, nonce=nonce, expiry=now_ms // 1000 + 3600)
    return lambda s, t: C.RevokeSession(s, t, signer or account, r, SIG)


def deposit(account: str, amount: int, dn: int = 999_999) -> Make:
    return lambda s, t: C.DepositCredit(s, t, 1, dn, account, amount)


@dataclass(frozen=True)
class Case:
    """Build the state, return the rejected command and an optional follow-up that must be accepted."""

    code: RejectCode
    build: Callable[[], tuple[Harness, Make, Callable[[Harness], Outcome] | None]]


CASES: dict[str, Case] = {}


def case(code: RejectCode):  # noqa: ANN201
    def deco(fn):  # noqa: ANN001, ANN202
        CASES[fn.__name__] = Case(code, fn)
        return fn

    return deco


U = RejectCode


# ---------------------------------------------------------------- authorisation


@case(U.UNAUTHORIZED_SIGNER)
def stranger_signs_order():
    h = base()
    bad = place(ALICE, PERP, BUY, px(2900), 100, signer=DAVE, now_ms=h.now)
    return h, bad, lambda h: h.apply(place(ALICE, PERP, BUY, px(2900), 100, signer=SESSION, now_ms=h.now))


@case(U.UNAUTHORIZED_SIGNER)
def expired_session_key_signs_order():
    h = base()
    assert h.grant(ALICE, KEY2, valid_s=5).accepted
    h.advance(5_001)

    def regrant_then_same_nonce(h: Harness) -> Outcome:
        assert h.grant(ALICE, KEY2).accepted
        return h.apply(place(ALICE, PERP, BUY, px(2900), 100, signer=KEY2, now_ms=h.now))

    return h, place(ALICE, PERP, BUY, px(2900), 100, signer=KEY2, now_ms=h.now), regrant_then_same_nonce


@case(U.UNAUTHORIZED_SIGNER)
def revoked_session_key_signs_order():
    h = base()
    assert h.revoke(ALICE, SESSION).result["revoked"] is True

    def regrant_then_same_nonce(h: Harness) -> Outcome:
        assert h.grant(ALICE, SESSION).accepted
        return h.apply(place(ALICE, PERP, BUY, px(2900), 100, signer=SESSION, now_ms=h.now))

    return h, place(ALICE, PERP, BUY, px(2900), 100, signer=SESSION, now_ms=h.now), regrant_then_same_nonce


@case(U.UNAUTHORIZED_SIGNER)
def session_key_grants_another_key():
    h = base()
    return h, grant(ALICE, KEY2, signer=SESSION, now_ms=h.now), lambda h: h.apply(grant(ALICE, KEY2, now_ms=h.now))


@case(U.UNAUTHORIZED_SIGNER)
def stranger_revokes_session_key():
    h = base()
    return h, revoke(ALICE, SESSION, signer=DAVE, now_ms=h.now), lambda h: h.apply(
        revoke(ALICE, SESSION, signer=SESSION, now_ms=h.now))


@case(U.UNAUTHORIZED_SIGNER)
def stranger_cancels_order():
    h = base()
    return h, cancel(ALICE, PERP, order_id=4, signer=BOB, now_ms=h.now), lambda h: h.apply(
        cancel(ALICE, PERP, order_id=4, now_ms=h.now))


@case(U.UNAUTHORIZED_SIGNER)
def stranger_cancels_all():
    h = base()
    return h, cancel_all(ALICE, signer=BOB, now_ms=h.now), lambda h: h.apply(cancel_all(ALICE, now_ms=h.now))


@case(U.UNAUTHORIZED_SIGNER)
def stranger_amends_order():
    h = base()
    return h, amend(ALICE, PERP, 4, price=px(2970), signer=BOB, now_ms=h.now), lambda h: h.apply(
        amend(ALICE, PERP, 4, price=px(2970), now_ms=h.now))


# ---------------------------------------------------------------- nonces and expiry


@case(U.NONCE_REUSED)
def order_nonce_reused():
    h = base()
    assert h.apply(place(ALICE, PERP, BUY, px(2900), 100, now_ms=h.now)).accepted
    # a different message with the same nonce and key; the same nonce under another signer is a different key
    return h, place(ALICE, PERP, BUY, px(2901), 100, now_ms=h.now), lambda h: h.apply(
        place(ALICE, PERP, BUY, px(2901), 100, signer=SESSION, now_ms=h.now))


@case(U.NONCE_REUSED)
def cancel_nonce_reused_by_order():
    h = base()
    assert h.apply(place(ALICE, PERP, BUY, px(2900), 100, now_ms=h.now)).accepted
    return h, cancel(ALICE, PERP, order_id=4, now_ms=h.now), None


@case(U.EXPIRED)
def order_past_expiry():
    h = base()
    bad = place(ALICE, PERP, BUY, px(2900), 100, expiry=h.now // 1000 - 1, now_ms=h.now)
    return h, bad, lambda h: h.apply(place(ALICE, PERP, BUY, px(2900), 100, now_ms=h.now))


@case(U.EXPIRED)
def session_grant_valid_until_in_past():
    h = base()
    return h, grant(ALICE, KEY2, valid_s=-1, now_ms=h.now), lambda h: h.apply(grant(ALICE, KEY2, now_ms=h.now))


@case(U.NONCE_WINDOW)
def order_expiry_beyond_window():
    h = base()
    bad = place(ALICE, PERP, BUY, px(2900), 100, expiry=h.now // 1000 + 2 * 86_400, now_ms=h.now)
    return h, bad, lambda h: h.apply(place(ALICE, PERP, BUY, px(2900), 100, now_ms=h.now))


@case(U.NONCE_WINDOW)
def too_many_live_nonces_for_key():
    h = base(max_live_nonces_per_key=5)
    for i in range(5):
        o = order(ALICE, PERP, BUY, px(2900), 10, nonce=N + 1 + i, expiry=h.now // 1000 + 60, now_ms=h.now)
        assert h.place_msg(o, signer=SESSION).accepted

    def later_same_nonce(h: Harness) -> Outcome:
        h.advance(61_000)  # the five messages expired: their nonces are forgotten
        return h.apply(place(ALICE, PERP, BUY, px(2900), 10, signer=SESSION, now_ms=h.now))

    return h, place(ALICE, PERP, BUY, px(2900), 10, signer=SESSION, now_ms=h.now), later_same_nonce


# ---------------------------------------------------------------- instrument, tick, lot


@case(U.UNKNOWN_INSTRUMENT)
def order_on_unlisted_instrument():
    h = base()
    return h, place(ALICE, "DOGE-PERP", BUY, px(1), 100, now_ms=h.now), lambda h: h.apply(
        place(ALICE, PERP, BUY, px(2900), 100, now_ms=h.now))


@case(U.UNKNOWN_INSTRUMENT)
def order_on_expired_option():
    h = base()
    assert h.place(BOB, TODAY, SELL, px(50), 100).accepted
    h.now = h.now // 86_400_000 * 86_400_000 + 8 * 3_600_000
    assert TODAY in h.tick().result["expired"]
    return h, place(ALICE, TODAY, BUY, px(50), 100, now_ms=h.now), lambda h: h.apply(
        place(ALICE, OPT, BUY, px(50), 100, now_ms=h.now))


@case(U.UNKNOWN_INSTRUMENT)
def cancel_on_unlisted_instrument():
    h = base()
    return h, cancel(ALICE, "DOGE-PERP", order_id=4, now_ms=h.now), lambda h: h.apply(
        cancel(ALICE, PERP, order_id=4, now_ms=h.now))


@case(U.UNKNOWN_INSTRUMENT)
def cancel_all_on_unlisted_instrument():
    h = base()
    return h, cancel_all(ALICE, "DOGE-PERP", now_ms=h.now), lambda h: h.apply(cancel_all(ALICE, PERP, now_ms=h.now))


@case(U.UNKNOWN_INSTRUMENT)
def amend_on_unlisted_instrument():
    h = base()
    return h, amend(ALICE, "DOGE-PERP", 4, price=px(2970), now_ms=h.now), lambda h: h.apply(
        amend(ALICE, PERP, 4, price=px(2970), now_ms=h.now))


@case(U.INVALID_TICK)
def order_price_off_tick():
    h = base()
    return h, place(ALICE, PERP, BUY, px(2900) + 5_000, 100, now_ms=h.now), lambda h: h.apply(
        place(ALICE, PERP, BUY, px(2900), 100, now_ms=h.now))


@case(U.INVALID_TICK)
def option_price_off_tick():
    h = base()
    return h, place(ALICE, OPT, BUY, px(50) + 10_000, 100, now_ms=h.now), lambda h: h.apply(
        place(ALICE, OPT, BUY, px(50), 100, now_ms=h.now))


@case(U.INVALID_TICK)
def amend_price_off_tick():
    h = base()
    return h, amend(ALICE, PERP, 4, price=px(2970) + 1, now_ms=h.now), lambda h: h.apply(
        amend(ALICE, PERP, 4, price=px(2970), now_ms=h.now))


@case(U.INVALID_LOT)
def option_size_off_lot():
    h = base()
    return h, place(ALICE, OPT, BUY, px(50), 15, now_ms=h.now), lambda h: h.apply(
        place(ALICE, OPT, BUY, px(50), 20, now_ms=h.now))


@case(U.INVALID_LOT)
def option_size_below_minimum():
    h = base()
    return h, place(ALICE, OPT, BUY, px(50), 5, now_ms=h.now), None


@case(U.INVALID_LOT)
def perp_size_above_maximum():
    h = base()
    return h, place(ALICE, PERP, BUY, px(2900), 10_000_001, now_ms=h.now), None


@case(U.INVALID_LOT)
def amend_size_off_lot():
    h = base()
    assert h.place(ALICE, OPT, BUY, px(50), 100).accepted  # order 6
    return h, amend(ALICE, OPT, 6, size=105, now_ms=h.now), lambda h: h.apply(
        amend(ALICE, OPT, 6, size=110, now_ms=h.now))


# ---------------------------------------------------------------- margin and risk


@case(U.INSUFFICIENT_MARGIN)
def perp_order_beyond_collateral():
    h = base()  # Carol has 20 USDC; 1 ETH at 2980 needs 298 initial margin
    return h, place(CAROL, PERP, BUY, px(2980), 1000, now_ms=h.now), lambda h: h.apply(
        place(CAROL, PERP, BUY, px(2980), 10, now_ms=h.now))


@case(U.INSUFFICIENT_MARGIN)
def order_from_account_without_deposit():
    h = base()
    return h, place(DAVE, PERP, BUY, px(2980), 1, now_ms=h.now), None


@case(U.INSUFFICIENT_MARGIN)
def short_put_not_fully_collateralised():
    h = base()  # 0.01 ETH put at strike 2000 needs 20 USDC of collateral plus the fee
    return h, place(CAROL, PUT, SELL, px(10), 10, now_ms=h.now), lambda h: h.apply(
        place(CAROL, PERP, BUY, px(2980), 10, now_ms=h.now))


@case(U.INSUFFICIENT_MARGIN)
def amend_grows_beyond_collateral():
    h = base()
    assert h.place(CAROL, PERP, BUY, px(2980), 10).accepted  # order 6
    return h, amend(CAROL, PERP, 6, size=1000, now_ms=h.now), lambda h: h.apply(
        amend(CAROL, PERP, 6, size=20, now_ms=h.now))


@case(U.REDUCE_ONLY_WOULD_INCREASE)
def reduce_only_same_side_as_position():
    h = base()
    return h, place(ALICE, PERP, BUY, px(2900), 100, reduce_only=True, now_ms=h.now), lambda h: h.apply(
        place(ALICE, PERP, SELL, px(3100), 100, reduce_only=True, now_ms=h.now))


@case(U.REDUCE_ONLY_WOULD_INCREASE)
def reduce_only_larger_than_position():
    h = base()
    return h, place(ALICE, PERP, SELL, px(3100), 1001, reduce_only=True, now_ms=h.now), lambda h: h.apply(
        place(ALICE, PERP, SELL, px(3100), 1000, reduce_only=True, now_ms=h.now))


@case(U.REDUCE_ONLY_WOULD_INCREASE)
def reduce_only_without_position():
    h = base()
    return h, place(CAROL, PERP, SELL, px(3100), 10, reduce_only=True, now_ms=h.now), None


@case(U.REDUCE_ONLY_WOULD_INCREASE)
def amend_reduce_only_beyond_position():
    h = base()
    assert h.place(ALICE, PERP, SELL, px(3100), 500, reduce_only=True).accepted  # order 6
    return h, amend(ALICE, PERP, 6, size=1500, now_ms=h.now), lambda h: h.apply(
        amend(ALICE, PERP, 6, size=1000, now_ms=h.now))


@case(U.REDUCE_ONLY_WOULD_INCREASE)
def amend_reduce_only_beyond_position_with_others_resting():
    h = base()  # Alice long 1000
    assert h.place(ALICE, PERP, SELL, px(3100), 500, reduce_only=True).accepted  # order 6
    assert h.place(ALICE, PERP, SELL, px(3200), 400, reduce_only=True).accepted  # order 7
    # 600 + the 500 resting on the same side would exceed the long: refused like a new order
    return h, amend(ALICE, PERP, 7, size=600, now_ms=h.now), lambda h: h.apply(
        amend(ALICE, PERP, 7, size=500, now_ms=h.now))


@case(U.REDUCE_ONLY_WOULD_INCREASE)
def reduce_only_beyond_position_with_others_resting():
    h = base()
    assert h.place(ALICE, PERP, SELL, px(3100), 700, reduce_only=True).accepted
    return h, place(ALICE, PERP, SELL, px(3200), 301, reduce_only=True, now_ms=h.now), lambda h: h.apply(
        place(ALICE, PERP, SELL, px(3200), 300, reduce_only=True, now_ms=h.now))


# ---------------------------------------------------------------- time in force


@case(U.FOK_NOT_FILLABLE)
def fok_larger_than_opposite_liquidity():
    h = base()  # 1000 left on Bob's 3010 ask
    return h, place(ALICE, PERP, BUY, px(3010), 1001, tif=FOK, now_ms=h.now), lambda h: h.apply(
        place(ALICE, PERP, BUY, px(3010), 1000, tif=FOK, now_ms=h.now))


@case(U.FOK_NOT_FILLABLE)
def fok_limit_below_best_ask():
    h = base()
    return h, place(ALICE, PERP, BUY, px(3000), 100, tif=FOK, now_ms=h.now), None


@case(U.POST_ONLY_WOULD_CROSS)
def post_only_bid_at_best_ask():
    h = base()
    return h, place(ALICE, PERP, BUY, px(3010), 100, tif=POST, now_ms=h.now), lambda h: h.apply(
        place(ALICE, PERP, BUY, px(3000), 100, tif=POST, now_ms=h.now))


@case(U.POST_ONLY_WOULD_CROSS)
def market_order_post_only():
    h = base()
    return h, place(ALICE, PERP, BUY, 0, 100, order_type=MARKET, tif=POST, now_ms=h.now), lambda h: h.apply(
        place(ALICE, PERP, BUY, 0, 100, order_type=MARKET, tif=IOC, now_ms=h.now))


@case(U.POST_ONLY_WOULD_CROSS)
def amend_post_only_across_the_book():
    h = base()
    return h, amend(ALICE, PERP, 4, price=px(3010), now_ms=h.now), lambda h: h.apply(
        amend(ALICE, PERP, 4, price=px(3000), now_ms=h.now))


# ---------------------------------------------------------------- market state


def _closed(status: str):  # noqa: ANN202
    def build():  # noqa: ANN202
        h = base()
        assert h.price("ETH-USD", 3000, status=status).accepted
        # only reduce-only is accepted: the same nonce closing part of the long goes through
        return h, place(ALICE, PERP, BUY, px(2900), 100, now_ms=h.now), lambda h: h.apply(
            place(ALICE, PERP, SELL, px(3100), 100, reduce_only=True, now_ms=h.now))

    build.__name__ = f"order_while_feed_{status.replace('-', '_')}"
    return build


for _status in ("market-closed", "halted", "stale"):
    case(U.MARKET_CLOSED)(_closed(_status))


@case(U.MARKET_CLOSED)
def option_order_while_feed_halted():
    h = base()
    assert h.price("ETH-USD", 3000, status="halted").accepted
    return h, place(ALICE, OPT, BUY, px(50), 100, now_ms=h.now), None


@case(U.MARKET_CLOSED)
def amend_growing_while_market_closed():
    h = base()
    assert h.price("ETH-USD", 3000, status="market-closed").accepted
    # shrinking is risk-reducing and still allowed, with the same nonce
    return h, amend(ALICE, PERP, 4, size=1000, now_ms=h.now), lambda h: h.apply(
        amend(ALICE, PERP, 4, size=400, now_ms=h.now))


@case(U.MMP_FROZEN)
def option_quote_while_market_maker_protection_is_frozen():
    h = base()
    assert h.mmp(BOB, "ETH", 1_000, 5_000, 10).accepted
    assert h.place(BOB, OPT, SELL, px(100), 10).accepted
    assert h.place(BOB, OPT, SELL, px(101), 10).accepted
    assert h.place(ALICE, OPT, BUY, px(101), 20, tif=IOC).result["filled"] == 20  # trips it: Bob frozen 5 s

    def after_the_freeze(h: Harness) -> Outcome:
        h.advance(5_000)
        return h.apply(place(BOB, OPT, SELL, px(100), 10, now_ms=h.now))

    return h, place(BOB, OPT, SELL, px(100), 10, now_ms=h.now), after_the_freeze


@case(U.INVALID_TRIGGER)
def trigger_order_on_an_option():
    h = base()
    bad = trigger(ALICE, OPT, SELL, px(90), 10, reduce_only=True, now_ms=h.now)
    return h, bad, lambda h: h.apply(trigger(ALICE, PERP, SELL, px(2900), 500, reduce_only=True, now_ms=h.now))


@case(U.INVALID_TRIGGER)
def post_only_market_trigger_order():
    h = base()
    bad = trigger(ALICE, PERP, SELL, px(2900), 500, tif=POST, now_ms=h.now)
    return h, bad, lambda h: h.apply(trigger(ALICE, PERP, SELL, px(2900), 500, tif=IOC, now_ms=h.now))


@case(U.INVALID_TICK)
def trigger_price_off_the_tick():
    h = base()
    bad = trigger(ALICE, PERP, SELL, px(2900) + 1, 500, now_ms=h.now)
    return h, bad, lambda h: h.apply(trigger(ALICE, PERP, SELL, px(2900), 500, now_ms=h.now))


@case(U.TOO_MANY_ORDERS)
def trigger_orders_beyond_max_open_orders():
    h = base(max_open_orders=3)
    for i in range(3):  # counted apart from resting orders (Alice rests one)
        assert h.trigger(ALICE, PERP, SELL, px(2900 - i), 100).accepted

    def after_a_cancel(h: Harness) -> Outcome:
        assert h.cancel(ALICE, PERP, order_id=h.seq.open_orders(ALICE)[-1]["order_id"]).accepted
        return h.apply(trigger(ALICE, PERP, SELL, px(2900), 100, now_ms=h.now))

    return h, trigger(ALICE, PERP, SELL, px(2900), 100, now_ms=h.now), after_a_cancel


@case(U.TOO_MANY_ORDERS)
def resting_order_beyond_max_open_orders():
    h = base(max_open_orders=3)
    assert h.place(ALICE, PERP, BUY, px(2900), 10).accepted
    assert h.place(ALICE, PERP, BUY, px(2901), 10).accepted

    def after_a_cancel(h: Harness) -> Outcome:
        assert h.cancel(ALICE, PERP, order_id=4).accepted
        return h.apply(place(ALICE, PERP, BUY, px(2902), 10, now_ms=h.now))

    return h, place(ALICE, PERP, BUY, px(2902), 10, now_ms=h.now), after_a_cancel


@case(U.NO_PRICE)
def order_on_underlying_without_index():
    h = base()  # XAU-USD never published
    return h, place(ALICE, "XAU-PERP", BUY, px(2000), 10, now_ms=h.now), None


@case(U.NO_PRICE)
def market_order_on_empty_option_book():
    h = base()
    return h, place(ALICE, PUT, BUY, 0, 10, order_type=MARKET, tif=IOC, now_ms=h.now), lambda h: h.apply(
        place(ALICE, PUT, BUY, px(5), 10, now_ms=h.now))


# ---------------------------------------------------------------- orders

@case(U.ORDER_NOT_FOUND)
def cancel_unknown_order_id():
    h = base()
    return h, cancel(ALICE, PERP, order_id=9999, now_ms=h.now), lambda h: h.apply(
        cancel(ALICE, PERP, order_id=4, now_ms=h.now))


@case(U.ORDER_NOT_FOUND)
def cancel_other_accounts_order():
    h = base()
    return h, cancel(ALICE, PERP, order_id=1, now_ms=h.now), None


@case(U.ORDER_NOT_FOUND)
def cancel_unknown_client_order_id():
    h = base()
    return h, cancel(ALICE, PERP, coid=43, now_ms=h.now), lambda h: h.apply(cancel(ALICE, PERP, coid=42, now_ms=h.now))


@case(U.ORDER_NOT_FOUND)
def cancel_order_in_wrong_instrument():
    h = base()
    return h, cancel(ALICE, "BTC-PERP", order_id=4, now_ms=h.now), None


@case(U.ORDER_NOT_FOUND)
def cancel_filled_order():
    h = base()
    return h, cancel(ALICE, PERP, order_id=3, now_ms=h.now), None  # order 3 was Alice's filled IOC


@case(U.ORDER_NOT_FOUND)
def amend_other_accounts_order():
    h = base()
    return h, amend(ALICE, PERP, 2, price=px(2970), now_ms=h.now), None


@case(U.DUPLICATE_CLIENT_ORDER_ID)
def client_order_id_already_resting():
    h = base()

    def after_cancelling_it(h: Harness) -> Outcome:
        assert h.cancel(ALICE, PERP, coid=42).accepted
        return h.apply(place(ALICE, PERP, BUY, px(2900), 100, coid=42, now_ms=h.now))

    return h, place(ALICE, PERP, BUY, px(2900), 100, coid=42, now_ms=h.now), after_cancelling_it


@case(U.INVALID_AMEND)
def amend_without_change():
    h = base()
    return h, amend(ALICE, PERP, 4, price=px(2980), size=500, now_ms=h.now), None


@case(U.INVALID_AMEND)
def amend_size_to_filled_quantity():
    h = base()  # Bob's ask (order 1) filled 1000 of 2000
    return h, amend(BOB, PERP, 1, size=1000, now_ms=h.now), lambda h: h.apply(amend(BOB, PERP, 1, size=1500,
                                                                                        now_ms=h.now))


# ---------------------------------------------------------------- deposits


@case(U.INVALID_AMOUNT)
def deposit_of_zero():
    h = base()
    return h, deposit(DAVE, 0), lambda h: h.apply(deposit(DAVE, 5 * USDC))


@case(U.INVALID_AMOUNT)
def deposit_negative():
    h = base()
    return h, deposit(DAVE, -5 * USDC), lambda h: h.apply(deposit(DAVE, 5 * USDC))


@case(U.INVALID_AMOUNT)
def deposit_to_malformed_address():
    h = base()
    return h, deposit("0x1234", 5 * USDC), lambda h: h.apply(deposit(DAVE, 5 * USDC))


# ---------------------------------------------------------------- withdrawals and batches
# (the accepted paths and the vault model are in tests/settlement/test_withdrawals_core.py
# and test_batch_core.py; no follow-up accepts a withdrawal here, since Harness checks
# sum(balances) == deposited and an accepted withdrawal lowers the balances)


def withdraw(account: str, amount: int, *, now_ms: int, chain: int = 1, signer: str | None = None,
             recipient: str | None = None, token: str | None = None, nonce: int = N) -> Make:
    w = eip712.Withdrawal(account=account, token=token or addr(0x70C1), amount=amount, destination_chain_id=chain,
                          recipient=recipient or account, nonce=nonce, expiry=now_ms // 1000 + 3600)
    return lambda s, t: C.Withdraw(s, t, signer or account, w, SIG)


@case(U.UNAUTHORIZED_SIGNER)
def withdraw_by_session_key():
    h = base()
    return h, withdraw(ALICE, USDC, signer=SESSION, now_ms=h.now), None


@case(U.UNKNOWN_CHAIN)
def withdraw_to_chain_without_vault():
    h = base()
    return h, withdraw(ALICE, USDC, chain=99, now_ms=h.now), None


@case(U.UNKNOWN_TOKEN)
def withdraw_of_other_token():
    from aggregator.core.batch import SettlementChain

    h = base(settlement_chains=(SettlementChain(1, addr(0x70C1)),))
    return h, withdraw(ALICE, USDC, token=addr(0xDEAD), now_ms=h.now), None


@case(U.INVALID_RECIPIENT)
def withdraw_to_zero_address():
    h = base()
    return h, withdraw(ALICE, USDC, recipient="0x" + "00" * 20, now_ms=h.now), None


@case(U.INSUFFICIENT_FREE_COLLATERAL)
def withdraw_beyond_free_collateral():
    h = base()
    return h, withdraw(ALICE, 100_000 * USDC, now_ms=h.now), None


@case(U.WITHDRAWALS_HALTED)
def withdraw_on_halted_chain():
    h = base()
    assert h.apply(lambda s, t: C.SetWithdrawalHalt(s, t, 1, True, "reconciliation")).accepted
    return h, withdraw(ALICE, USDC, now_ms=h.now), None


def carol_below_zero(h: Harness) -> None:
    """Carol below zero: a ledger bug, since no command leaves an account there any more
    (a bankrupt account's options go to the fund too, then the fund covers it; see
    tests/sequencer/test_bankruptcy.py). Made by moving 30 USDC of hers to Bob, which keeps
    the ledger's sum; ``negative_equity`` is the guard that keeps such a state off-chain."""
    seq = h.seq
    seq._move(seq._accounts[CAROL], -30 * USDC)
    seq._move(seq._accounts[BOB], 30 * USDC)
    seq._step_net.clear()  # as at the end of a command
    assert h.seq.account(CAROL)["total_collateral"] < 0


@case(U.NEGATIVE_EQUITY)
def close_batch_with_account_below_zero():
    h = base()
    carol_below_zero(h)
    return h, lambda s, t: C.CloseBatch(s, t, bytes(32)), None


@case(U.NEGATIVE_EQUITY)
def close_batch_refused_after_failing_a_halted_withdrawal():
    # the refusal comes after CloseBatch failed Alice's reserved withdrawal (its chain halted):
    # the credit back is undone with the rest, the withdrawal stays reserved
    h = base()
    assert h.apply(withdraw(ALICE, 5 * USDC, now_ms=h.now, nonce=N + 1)).accepted
    assert h.apply(lambda s, t: C.SetWithdrawalHalt(s, t, 1, True, "reconciliation")).accepted
    carol_below_zero(h)
    return h, lambda s, t: C.CloseBatch(s, t, bytes(32)), None


@case(U.NEGATIVE_EQUITY)
def close_batch_refused_after_socialising_the_insurance_deficit():
    # Dave's bankruptcy leaves the fund negative; CloseBatch socialises it, then finds Carol
    # below zero: the haircuts are undone with the rest
    h = base()
    assert h.deposit(DAVE, 20 * USDC).accepted
    assert h.place(BOB, PERP, SELL, px(3010), 60).accepted
    assert h.place(DAVE, PERP, BUY, px(3010), 60, tif=IOC).result["filled"] == 60
    assert h.cancel_all(BOB, PERP).accepted and h.cancel_all(ALICE, PERP).accepted  # no bid to unwind into
    h.price("ETH-USD", 2600)
    carol_below_zero(h)
    assert h.seq.account(DAVE)["total_collateral"] == 0 and h.seq.account(INS)["total_collateral"] < 0
    return h, lambda s, t: C.CloseBatch(s, t, bytes(32)), None


@case(U.INVALID_BATCH)
def close_batch_with_short_journal_hash():
    h = base()
    return h, lambda s, t: C.CloseBatch(s, t, b"short"), lambda h: h.apply(lambda s, t: C.CloseBatch(s, t, bytes(32)))


@case(U.BATCH_OUT_OF_ORDER)
def batch_settled_skipping_one():
    h = base()
    assert h.apply(lambda s, t: C.CloseBatch(s, t, bytes(32))).accepted
    return h, lambda s, t: C.BatchSettled(s, t, 1, 2), lambda h: h.apply(lambda s, t: C.BatchSettled(s, t, 1, 1))


@case(U.UNKNOWN_BATCH)
def batch_settled_before_close():
    h = base()
    return h, lambda s, t: C.BatchSettled(s, t, 1, 1), None


# ---------------------------------------------------------------- the tests


@pytest.mark.parametrize("name", sorted(CASES))
def test_rejected_command_changes_nothing(name):
    c = CASES[name]
    h, bad, follow_up = c.build()
    before, seen = state_bytes(h.seq), observable(h.seq, PERP, OPT, PUT)
    out = h.apply(bad)
    assert (out.accepted, out.code) == (False, c.code.value), out
    assert out.events == () and out.result == {} and out.message
    assert state_bytes(h.seq) == before
    assert observable(h.seq, PERP, OPT, PUT) == seen
    if follow_up is not None:
        again = follow_up(h)
        assert again.accepted, again


def test_every_reject_code_has_a_case():
    assert {c.code for c in CASES.values()} == set(RejectCode)


def test_reject_does_not_burn_deposit_nonce_then_credits_once():
    h = base()
    assert h.apply(deposit(DAVE, 0, dn=77)).code == "invalid_amount"
    assert h.apply(deposit(DAVE, 7 * USDC, dn=77)).result["credited"] is True
    assert h.apply(deposit(DAVE, 7 * USDC, dn=77)).result["duplicate"] is True
    assert h.bal(DAVE) == 7 * USDC
