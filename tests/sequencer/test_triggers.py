"""Trigger orders (stop-loss / take-profit) on perpetuals.

Rules (module doc of ``aggregator.core.sequencer``, "Trigger orders"): a trigger rests
untriggered (no margin reserved, not in the book) until a price update sets the mark at or
beyond its trigger price; then, after the variation margin and the liquidation sweep, the
crossed triggers fire by trigger id, each placed exactly as a signed order would be. A
refused one emits ``TriggerRejected`` and is gone. Triggers expire at their signed expiry,
and go with Cancel (by id or client order id), CancelAll, the dead man's switch and a
liquidation.
"""

from __future__ import annotations

import pickle

from aggregator.core import commands as C
from aggregator.core.events import (
    CancelAllAfterTriggered,
    Liquidated,
    TradeSettled,
    TriggerCancelled,
    TriggerFired,
    TriggerPlaced,
    TriggerRejected,
)
from aggregator.core.orders import OrderAccepted
from aggregator.core.sequencer import Sequencer
from tests.sequencer.helpers import (
    _VOLATILE,
    ALICE,
    BOB,
    CAROL,
    SESSION,
    USDC,
    Harness,
    check_books_and_reserves,
    funded,
    observable,
    state_bytes,
)

PERP = "ETH-PERP"
BTC = "BTC-PERP"
BUY, SELL = 1, 2
GTC, IOC = 1, 2
LIMIT, MARKET = 1, 2


def same_state(a: Sequencer, b: Sequencer) -> bool:
    """Every state attribute pickles alike (``state_bytes`` of a restored copy differs only in how
    objects are shared between attributes, as it does without triggers)."""
    skip = set(Sequencer._NOT_STATE) | set(_VOLATILE)
    return all(pickle.dumps(a.__dict__[k]) == pickle.dumps(b.__dict__[k]) for k in a.__dict__ if k not in skip)


def px(usd: int | float) -> int:
    return int(usd * USDC)


def long_alice() -> Harness:
    """Alice long 1 ETH-PERP at 3000 (Bob short); Bob bids 2 ETH at 2890 and offers 2 at 3110."""
    h = funded(ALICE, BOB, CAROL)
    assert h.place(BOB, PERP, SELL, px(3000), 1000).accepted
    assert h.place(ALICE, PERP, BUY, px(3000), 1000, tif=IOC).result["filled"] == 1000
    assert h.place(BOB, PERP, BUY, px(2890), 2000).accepted
    assert h.place(BOB, PERP, SELL, px(3110), 2000).accepted
    return h


def fired(out) -> list[int]:  # noqa: ANN001
    return [e.trigger_id for e in out.events if type(e) is TriggerFired]


def trigger_ids(h: Harness, account: str) -> list[int]:
    return [o["order_id"] for o in h.seq.open_orders(account) if o.get("type") == "trigger"]


def test_stop_loss_fires_at_its_price_not_before_and_its_reduce_only_market_order_closes_the_position():
    h = long_alice()
    out = h.trigger(ALICE, PERP, SELL, px(2900), 1000, reduce_only=True, coid=9)
    tid = out.result["order_id"]
    assert out.accepted and out.result["status"] == "untriggered" and out.result["trigger_id"] == tid
    assert out.events == (TriggerPlaced(ALICE, PERP, tid, 9, SELL, px(2900), False, 1000),)
    entry = h.seq.open_orders(ALICE)[-1]
    assert entry == {"order_id": tid, "client_order_id": 9, "instrument": PERP, "side": "sell", "price": 0,
                          "size": 1000, "filled": 0, "remaining": 1000, "reduce_only": True, "time_in_force": IOC,
                          "status": "untriggered", "ts_ms": h.now, "type": "trigger", "order_type": "market",
                          "trigger_price": px(2900), "trigger_above": False, "expiry_ms": (h.now // 1000 + 3600) * 1000}
    acct = h.seq.account(ALICE)
    assert (acct["open_orders"], acct["open_triggers"]) == (1, 1)
    im = acct["initial_margin"]
    assert "type" not in h.seq.open_orders(BOB)[0]  # resting orders keep their shape
    out = h.price("ETH-USD", 2900.01)  # one tick above: not yet
    assert out.result["triggers_fired"] == 0 and not fired(out) and trigger_ids(h, ALICE) == [tid]
    assert h.seq.account(ALICE)["initial_margin"] <= im  # nothing reserved for it
    out = h.price("ETH-USD", 2900)
    assert out.result["triggers_fired"] == 1 and out.result["triggers_rejected"] == 0
    evs = list(out.events)
    i = evs.index(TriggerFired(ALICE, tid, tid + 1))  # the order gets the next order id
    assert i > 0 and any(type(e) is TradeSettled for e in evs[i + 1:])  # its events follow
    assert h.pos(ALICE, PERP) == 0 and h.pos(BOB, PERP) == 0  # the stop closed it against Bob's bid
    assert h.seq.fills(ALICE, 1)[0]["price"] == px(2890)
    assert trigger_ids(h, ALICE) == [] and h.seq.account(ALICE)["open_triggers"] == 0
    check_books_and_reserves(h.seq)
    assert h.price("ETH-USD", 2800).result["triggers_fired"] == 0  # fired once


def test_a_reduce_only_stop_fires_under_the_reduce_only_rule_of_the_position_then():
    h = long_alice()
    tid = h.trigger(ALICE, PERP, SELL, px(2900), 1000, reduce_only=True).result["order_id"]
    assert h.place(ALICE, PERP, SELL, px(2890), 1000, tif=IOC).result["filled"] == 1000  # closed by hand
    out = h.price("ETH-USD", 2900)
    rej = [e for e in out.events if type(e) is TriggerRejected]
    assert [(e.trigger_id, e.code) for e in rej] == [(tid, "reduce_only_would_increase")]
    assert h.pos(ALICE, PERP) == 0 and trigger_ids(h, ALICE) == []  # it opened no short


def test_a_reduce_only_stop_larger_than_the_position_left_is_cut_to_it_and_closes_it():
    h = long_alice()
    tid = h.trigger(ALICE, PERP, SELL, px(2900), 1000, reduce_only=True).result["order_id"]
    assert h.place(ALICE, PERP, SELL, px(2890), 600, tif=IOC).result["filled"] == 600  # long 400 left
    out = h.price("ETH-USD", 2900)
    fire = [e for e in out.events if type(e) is TriggerFired]
    assert [e.trigger_id for e in fire] == [tid] and not any(type(e) is TriggerRejected for e in out.events)
    accepted = next(e for e in out.events if type(e) is OrderAccepted and e.order_id == fire[0].order_id)
    assert accepted.size == 400 and accepted.reduce_only
    assert h.pos(ALICE, PERP) == 0


def test_take_profit_above_fires_at_its_price_and_its_limit_order_rests():
    h = long_alice()
    tid = h.trigger(ALICE, PERP, SELL, px(3150), 1000, above=True, order_type=LIMIT, tif=GTC, price=px(3200),
                    reduce_only=True).result["order_id"]
    assert h.price("ETH-USD", 3149.99).result["triggers_fired"] == 0
    out = h.price("ETH-USD", 3150)
    assert fired(out) == [tid]
    acc = [e for e in out.events if type(e) is OrderAccepted]
    assert len(acc) == 1 and acc[0].order_id == tid + 1 and acc[0].price == px(3200)
    [o] = h.seq.open_orders(ALICE)
    assert (o["order_id"], o["status"], o["price"], "type" in o) == (tid + 1, "open", px(3200), False)
    check_books_and_reserves(h.seq)


def test_crossed_triggers_fire_by_trigger_id_and_one_crossed_at_placement_fires_at_the_next_update():
    h = long_alice()
    t1 = h.trigger(CAROL, PERP, BUY, px(3050), 100, above=True, order_type=LIMIT, tif=GTC,
                   price=px(2000)).result["order_id"]
    t2 = h.trigger(CAROL, PERP, BUY, px(3020), 100, above=True, order_type=LIMIT, tif=GTC,
                   price=px(2001)).result["order_id"]
    t3 = h.trigger(CAROL, PERP, BUY, px(3100), 100, order_type=LIMIT, tif=GTC,  # below 3100: crossed already
                   price=px(2002)).result["order_id"]
    t4 = h.trigger(CAROL, PERP, BUY, px(3090), 100, above=True, order_type=LIMIT, tif=GTC,
                   price=px(2003)).result["order_id"]
    assert trigger_ids(h, CAROL) == [t1, t2, t3, t4]
    out = h.price("ETH-USD", 3060)
    assert fired(out) == [t1, t2, t3] and out.result["triggers_fired"] == 3  # by id, not by price
    assert [o["price"] for o in h.seq.open_orders(CAROL) if "type" not in o] == [px(2000), px(2001), px(2002)]
    assert trigger_ids(h, CAROL) == [t4]
    # crossed at placement, and the next update does not even move the mark: it still fires
    t5 = h.trigger(CAROL, PERP, BUY, px(3060), 100, order_type=LIMIT, tif=GTC, price=px(2004)).result["order_id"]
    assert fired(h.price("ETH-USD", 3060)) == [t5]


def test_a_fired_trigger_refused_by_margin_emits_trigger_rejected_and_changes_nothing_else():
    def build(cancel_first: bool) -> tuple[Harness, int]:
        h = long_alice()
        assert h.deposit(addr_poor := SESSION, 10 * USDC).accepted
        tid = h.trigger(addr_poor, PERP, BUY, px(3050), 10_000, above=True).result["order_id"]  # 10 ETH, $10
        if cancel_first:
            assert h.cancel(addr_poor, PERP, order_id=tid).accepted
        else:
            h.next_nonce()
        return h, tid

    h, tid = build(False)
    ref, _ = build(True)
    out, base = h.price("ETH-USD", 3060), ref.price("ETH-USD", 3060)
    assert out.result["triggers_fired"] == 1 and out.result["triggers_rejected"] == 1
    rej = [e for e in out.events if type(e) is TriggerRejected]
    assert len(rej) == 1 and (rej[0].account, rej[0].trigger_id, rej[0].code) == (SESSION, tid, "insufficient_margin")
    assert [e for e in out.events if type(e) is not TriggerRejected] == list(base.events)
    assert observable(h.seq, PERP) == observable(ref.seq, PERP)  # balances, positions, orders, fills, books
    assert trigger_ids(h, SESSION) == [] and h.seq.account(SESSION)["open_orders"] == 0
    assert h.price("ETH-USD", 3100).result["triggers_fired"] == 0  # gone for good


def test_trigger_expires_at_the_first_tick_after_its_signed_expiry():
    h = long_alice()
    exp = h.now // 1000 + 10
    tid = h.trigger(ALICE, PERP, SELL, px(2900), 1000, reduce_only=True, expiry=exp).result["order_id"]
    assert h.seq.next_order_expiry_ms() == exp * 1000  # the service ticks there
    h.now = exp * 1000
    assert h.tick().result["triggers_expired"] == 0 and trigger_ids(h, ALICE) == [tid]
    h.now += 1
    out = h.tick()
    assert out.result["triggers_expired"] == 1
    assert TriggerCancelled(ALICE, PERP, tid, 0, "GOOD_TIL_TIME") in out.events
    assert trigger_ids(h, ALICE) == [] and h.price("ETH-USD", 2800).result["triggers_fired"] == 0
    assert h.pos(ALICE, PERP) == 1000


def test_cancel_by_id_and_by_client_order_id():
    h = long_alice()
    a = h.trigger(ALICE, PERP, SELL, px(2900), 500, reduce_only=True, coid=1).result["order_id"]
    b = h.trigger(ALICE, PERP, SELL, px(2800), 500, reduce_only=True, coid=2).result["order_id"]
    out = h.cancel(ALICE, PERP, order_id=a)
    assert out.accepted and out.events == (TriggerCancelled(ALICE, PERP, a, 1, "USER"),)
    assert (out.result["status"], out.result["type"], out.result["cancelled_size"]) == ("cancelled", "trigger", 500)
    assert h.cancel(ALICE, PERP, order_id=a).code == "order_not_found"
    assert h.cancel(ALICE, BTC, order_id=b).code == "order_not_found"  # another instrument
    assert h.cancel(BOB, PERP, order_id=b).code == "order_not_found"  # another account
    out = h.cancel(ALICE, PERP, coid=2)
    assert out.accepted and out.events == (TriggerCancelled(ALICE, PERP, b, 2, "USER"),)
    assert trigger_ids(h, ALICE) == [] and h.price("ETH-USD", 2700).result["triggers_fired"] == 0
    assert h.trigger(ALICE, PERP, SELL, px(2900), 500, coid=2).accepted  # the client id is free again
    assert h.trigger(ALICE, PERP, SELL, px(2900), 500, coid=2).code == "duplicate_client_order_id"


def test_cancel_all_removes_triggers_of_the_instrument_or_all():
    h = long_alice()
    h.price("BTC-USD", 90_000)
    e = h.trigger(ALICE, PERP, SELL, px(2900), 500, reduce_only=True).result["order_id"]
    b = h.trigger(ALICE, BTC, BUY, px(95_000), 10, above=True).result["order_id"]
    o = h.place(ALICE, PERP, BUY, px(2500), 100).result["order_id"]
    out = h.cancel_all(ALICE, PERP)
    assert out.result["cancelled"] == [o, e] and TriggerCancelled(ALICE, PERP, e, 0, "CANCEL_ALL") in out.events
    assert trigger_ids(h, ALICE) == [b]
    out = h.cancel_all(ALICE)
    assert out.result == {"cancelled": [b], "count": 1}
    assert out.events == (TriggerCancelled(ALICE, BTC, b, 0, "CANCEL_ALL"),)
    assert h.seq.open_orders(ALICE) == []


def test_dead_mans_switch_removes_triggers():
    h = long_alice()
    tid = h.trigger(ALICE, PERP, SELL, px(2900), 1000, reduce_only=True).result["order_id"]
    h.cancel_after(ALICE, 5_000)
    h.advance(5_001)
    out = h.tick()
    assert TriggerCancelled(ALICE, PERP, tid, 0, "CANCEL_ALL") in out.events
    assert CancelAllAfterTriggered(ALICE, h.now - 1, 1) in out.events
    assert trigger_ids(h, ALICE) == [] and h.price("ETH-USD", 2800).result["triggers_fired"] == 0


def test_liquidation_removes_triggers_before_they_fire():
    h = long_alice()
    dave = SESSION
    h.deposit(dave, 450 * USDC)
    assert h.place(dave, PERP, BUY, px(3110), 1000, tif=IOC).result["filled"] == 1000  # 1 ETH on $400
    tid = h.trigger(dave, PERP, SELL, px(2750), 1000, reduce_only=True).result["order_id"]
    out = h.price("ETH-USD", 2700)  # crosses the stop, but the sweep liquidates first
    assert any(type(e) is Liquidated and e.account == dave for e in out.events)
    assert TriggerCancelled(dave, PERP, tid, 0, "LIQUIDATION") in out.events
    assert out.result["triggers_fired"] == 0 and not fired(out) and trigger_ids(h, dave) == []


def test_session_key_may_place_a_trigger_a_stranger_may_not():
    h = long_alice()
    assert h.grant(ALICE, SESSION).accepted
    assert h.trigger(ALICE, PERP, SELL, px(2900), 500, reduce_only=True, signer=SESSION).accepted
    before = state_bytes(h.seq)
    assert h.trigger(ALICE, PERP, SELL, px(2900), 500, signer=CAROL).code == "unauthorized_signer"
    assert state_bytes(h.seq) == before


def test_heaps_drop_cancelled_entries():
    h = long_alice()
    for _ in range(3):
        ids = [h.trigger(CAROL, PERP, BUY, px(3500 + i), 10, above=True).result["order_id"] for i in range(20)]
        ids += [h.trigger(CAROL, PERP, SELL, px(2000 + i), 10).result["order_id"] for i in range(20)]
        for tid in ids[:-2]:
            assert h.cancel(CAROL, PERP, order_id=tid).accepted
    heaps = sum(len(x) for d in (h.seq._trig_up, h.seq._trig_down) for x in d.values())
    assert heaps <= 6 + 65  # rebuilt once the dead entries outnumbered the live triggers (else 120)
    assert len(trigger_ids(h, CAROL)) == 6


def test_journal_replay_and_snapshot_give_the_same_state_and_fire_the_same_triggers():
    h = long_alice()
    h.trigger(ALICE, PERP, SELL, px(2900), 600, reduce_only=True, coid=5)
    h.trigger(ALICE, PERP, SELL, px(2950), 400, reduce_only=True, order_type=LIMIT, tif=IOC, price=px(2890))
    h.trigger(CAROL, PERP, BUY, px(3100), 100, above=True, expiry=h.now // 1000 + 30)
    h.trigger(CAROL, PERP, SELL, px(2960), 10_000_000)  # refused by margin when it fires
    h.price("ETH-USD", 2980)
    replayed = Sequencer(h.cfg)
    for cmd in h.log:
        replayed.apply(C.decode(C.encode(cmd)))
    assert state_bytes(replayed) == state_bytes(h.seq)
    restored = Sequencer.restore(h.cfg, h.seq.snapshot())
    assert same_state(restored, h.seq)
    outs = []
    for s in (h.seq, replayed, restored):
        a = s.apply(C.PriceUpdate(h.n + 1, h.now + 1, "ETH-USD", 2_900 * 10**8, 0, h.now // 1000, "ok"))
        b = s.apply(C.Tick(h.n + 2, h.now + 31_000))
        outs.append((a, b))
        assert a.result["triggers_fired"] == 3 and a.result["triggers_rejected"] == 1
        assert b.result["triggers_expired"] == 1
        assert s.open_orders(ALICE) == [] and s.account(ALICE)["positions"] == []
    assert outs[0] == outs[1] == outs[2]
    assert state_bytes(h.seq) == state_bytes(replayed) and same_state(h.seq, restored)
    assert h.seq.state_root() == replayed.state_root() == restored.state_root()
