"""Market maker protection: a quoter's option orders go (and stay gone) once a sweep fills too much.

Rules (module doc of ``aggregator.core.sequencer``, "Market maker protection"): maker fills
of non-reduce-only option orders on the underlying count in a rolling ``intervalMs``
window; passing ``qtyLimit`` cancels the account's option orders there and refuses new
ones for ``frozenMs`` (0: until the next config); perps are never frozen.
"""

from __future__ import annotations

import pytest

from aggregator import eip712
from aggregator.core import commands as C
from aggregator.core.events import MmpConfigured, MmpTriggered
from aggregator.core.orders import CancelReason, OrderCancelled
from aggregator.core.sequencer import Sequencer
from tests.sequencer.helpers import ALICE, BOB, CAROL, SESSION, USDC, Harness, funded, observable, state_bytes

CALL = "ETH-2JAN26-3000-C"
CALL2 = "ETH-2JAN26-3200-C"
PUT = "ETH-2JAN26-2000-P"
BTC_CALL = "BTC-2JAN26-90000-C"
PERP = "ETH-PERP"
BUY, SELL = 1, 2
IOC = 2


def quoter(limit: int = 30, interval: int = 10_000, frozen: int = 60_000) -> Harness:
    """Bob quotes ETH options (and a BTC option and the perp), protected on ETH."""
    h = funded(ALICE, BOB, CAROL)
    h.price("BTC-USD", 90_000)
    out = h.mmp(BOB, "ETH", interval, frozen, limit)
    assert out.events == (MmpConfigured(BOB, "ETH", interval, frozen, limit),)
    for inst, px in ((CALL, 100), (CALL2, 50), (PUT, 10)):
        assert h.place(BOB, inst, SELL, px * USDC, 20).accepted
        assert h.place(BOB, inst, BUY, (px // 2) * USDC, 20).accepted
    assert h.place(BOB, BTC_CALL, SELL, 3_000 * USDC, 10).accepted
    assert h.place(BOB, PERP, SELL, 3_100 * USDC, 100).accepted
    return h


def bob_open(h: Harness) -> set[str]:
    return {o["instrument"] for o in h.seq.open_orders(BOB)}


def test_fills_within_the_interval_up_to_the_limit_do_not_trip_it():
    h = quoter(limit=30)
    h.place(ALICE, CALL, BUY, 100 * USDC, 20, tif=IOC)
    h.advance(5_000)
    out = h.place(ALICE, CALL2, BUY, 50 * USDC, 10, tif=IOC)  # 30 in 10 s: at the limit, not past it
    assert not any(type(e) is MmpTriggered for e in out.events)
    assert h.seq.account(BOB)["mmp"]["ETH"]["qty_in_interval"] == 30 and len(h.seq.open_orders(BOB)) == 7


def test_passing_the_limit_cancels_every_eth_option_order_and_freezes_them_not_perps():
    h = quoter(limit=30)
    h.place(ALICE, CALL, BUY, 100 * USDC, 20, tif=IOC)
    h.advance(5_000)
    out = h.place(CAROL, CALL2, BUY, 50 * USDC, 20, tif=IOC)  # 40 within 10 s: tripped by this sweep
    assert out.result["filled"] == 20  # the whole sweep that tripped it trades
    cancelled = [e for e in out.events if type(e) is OrderCancelled and e.account == BOB]
    assert all(e.reason == CancelReason.MMP for e in cancelled) and len(cancelled) == 4  # CALL bid, CALL2 bid, PUT x2
    frozen_until = h.now + 60_000
    assert MmpTriggered(BOB, "ETH", 40, 4, frozen_until) in out.events
    assert bob_open(h) == {BTC_CALL, PERP}  # other underlyings and perps untouched
    acct = h.seq.account(BOB)
    assert acct["mmp"]["ETH"]["frozen"] is True and acct["mmp"]["ETH"]["frozen_until_ms"] == frozen_until
    assert h.place(BOB, CALL, SELL, 100 * USDC, 10).code == "mmp_frozen"
    assert h.place(BOB, PERP, BUY, 3_000 * USDC, 100).accepted  # hedging is never frozen
    assert h.place(BOB, BTC_CALL, SELL, 3_100 * USDC, 10).accepted
    h.now = frozen_until - 1
    assert h.place(BOB, CALL, SELL, 100 * USDC, 10).code == "mmp_frozen"
    h.now = frozen_until
    assert h.place(BOB, CALL, SELL, 100 * USDC, 10).accepted  # thawed; the window starts empty
    assert h.seq.account(BOB)["mmp"]["ETH"]["qty_in_interval"] == 0


def test_fills_older_than_the_interval_drop_out_of_the_window():
    h = quoter(limit=30, interval=10_000)
    h.place(ALICE, CALL, BUY, 100 * USDC, 20, tif=IOC)
    h.advance(10_000)  # the first fill is now exactly one interval old: out
    out = h.place(ALICE, CALL2, BUY, 50 * USDC, 20, tif=IOC)
    assert not any(type(e) is MmpTriggered for e in out.events)
    assert h.seq.account(BOB)["mmp"]["ETH"]["qty_in_interval"] == 20


def test_reduce_only_orders_neither_count_nor_are_frozen_and_zero_frozen_time_waits_for_a_new_config():
    h = quoter(limit=5, frozen=0)
    assert h.place(ALICE, CALL, BUY, 100 * USDC, 10, tif=IOC).accepted  # trips it: 10 > 5, frozen until reset
    assert h.seq.account(BOB)["mmp"]["ETH"]["frozen_until_ms"] is None
    h.advance(86_400_000)
    assert h.place(BOB, CALL, SELL, 100 * USDC, 10).code == "mmp_frozen"
    assert h.place(BOB, CALL, BUY, 90 * USDC, 10, reduce_only=True).accepted  # Bob is short 10: reduce-only is fine
    assert h.place(ALICE, CALL, SELL, 90 * USDC, 10, tif=IOC).result["filled"] == 10
    assert h.seq.account(BOB)["mmp"]["ETH"]["qty_in_interval"] == 0  # the reduce-only fill did not count
    out = h.mmp(BOB, "ETH", 1_000, 0, 5)  # a new config lifts the freeze
    assert out.accepted and h.place(BOB, CALL, SELL, 100 * USDC, 10).accepted


def test_zero_interval_turns_it_off_session_keys_may_set_it_strangers_may_not():
    h = quoter(limit=5)
    assert h.grant(BOB, SESSION).accepted
    assert h.mmp(BOB, "ETH", 0, 0, 0, signer=SESSION).result["enabled"] is False
    assert "ETH" not in h.seq.account(BOB)["mmp"]
    assert not any(type(e) is MmpTriggered for e in h.place(ALICE, CALL, BUY, 100 * USDC, 20, tif=IOC).events)
    before = state_bytes(h.seq)
    assert h.mmp(BOB, "ETH", 1_000, 0, 5, signer=CAROL).code == "unauthorized_signer"
    assert h.mmp(BOB, "DOGE", 1_000, 0, 5).code == "unknown_instrument"
    assert state_bytes(h.seq) == before and h.seq.account(BOB)["mmp"] == {}


@pytest.mark.parametrize("kw", [dict(interval_ms=3_600_001, qty_limit=1), dict(interval_ms=1_000, qty_limit=0),
                                dict(interval_ms=1_000, qty_limit=1, frozen_ms=86_400_001),
                                dict(interval_ms=1_000, qty_limit=1, underlying="eth")])
def test_message_rules_refuse_out_of_range_configs(kw: dict):
    fields = dict(account=ALICE, underlying="ETH", interval_ms=0, frozen_ms=0, qty_limit=0, nonce=1, expiry=1)
    fields.update(kw)
    with pytest.raises(eip712.MessageError):
        eip712.MmpConfig(**fields)


def test_replay_and_snapshot_reach_the_same_frozen_state():
    h = quoter(limit=30)
    h.place(ALICE, CALL, BUY, 100 * USDC, 20, tif=IOC)
    h.advance(1_000)
    h.place(CAROL, CALL2, BUY, 50 * USDC, 20, tif=IOC)  # trips
    replayed = Sequencer(h.cfg)
    for cmd in h.log:
        replayed.apply(C.decode(C.encode(cmd)))
    restored = Sequencer.restore(h.cfg, h.seq.snapshot())
    want = observable(h.seq, CALL, CALL2, PUT)
    assert observable(replayed, CALL, CALL2, PUT) == want == observable(restored, CALL, CALL2, PUT)
    assert restored.account(BOB)["mmp"]["ETH"]["frozen"] and replayed.account(BOB)["mmp"]["ETH"]["frozen"]
    for s in (h.seq, replayed, restored):  # each refuses the same quote
        assert s.apply(C.PlaceOrder(h.n + 1, h.now, BOB, eip712.Order(
            account=BOB, instrument=CALL, side=SELL, order_type=1, time_in_force=1, self_trade_prevention=1,
            reduce_only=False, price=100 * USDC, size=10, client_order_id=0, nonce=10**9, expiry=h.now // 1000 + 60),
            b"\x07" * 65)).code == "mmp_frozen"
