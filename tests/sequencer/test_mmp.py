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


# ------------------------------------------------------------------ delta limit


def delta_quoter(delta_limit: int) -> Harness:
    """Bob quotes ETH options protected by a delta limit only (no quantity limit)."""
    h = funded(ALICE, BOB, CAROL)
    out = h.mmp(BOB, "ETH", 10_000, 60_000, 0, delta_limit=delta_limit)
    assert out.events == (MmpConfigured(BOB, "ETH", 10_000, 60_000, 0, delta_limit),)
    for inst, px in ((CALL, 100), (CALL2, 50)):
        assert h.place(BOB, inst, SELL, px * USDC, 20).accepted
        assert h.place(BOB, inst, BUY, (px // 2) * USDC, 20).accepted
    return h


def delta(h: Harness, inst: str) -> float:
    """Black-76 delta at the mark's inputs, computed here from the pricing module."""
    from aggregator.core.pricing import black76_greeks
    from aggregator.core.risk import YEAR_MS

    seq = h.seq
    m = seq._markets[inst]
    years = (m.expiry_ms - seq._mark_ts["ETH"]) / YEAR_MS
    return float(black76_greeks(seq._index["ETH"] / 1e6, m.strike / 1e6, years, seq._params["ETH"].option_vol,
                                0.0, m.is_call).delta)


def test_delta_limit_counts_signed_delta_so_a_round_trip_nets_out():
    h = delta_quoter(delta_limit=12)
    d_call = round(delta(h, CALL) * 20)
    assert 9 <= d_call <= 11  # an at-the-money call: about half its size
    h.place(ALICE, CALL, BUY, 100 * USDC, 20, tif=IOC)  # Bob sells 20 calls: short delta
    assert h.seq.account(BOB)["mmp"]["ETH"]["delta_in_interval"] == -d_call
    out = h.place(CAROL, CALL, SELL, 50 * USDC, 20, tif=IOC)  # and buys them back: net zero, 40 traded
    assert not any(type(e) is MmpTriggered for e in out.events)
    mmp = h.seq.account(BOB)["mmp"]["ETH"]
    assert (mmp["delta_in_interval"], mmp["qty_in_interval"], mmp["delta_limit"]) == (0, 40, 12)
    assert len(h.seq.open_orders(BOB)) == 2


@pytest.mark.parametrize("maker_side", [SELL, BUY])
def test_passing_the_delta_limit_either_way_trips_protection(maker_side: int):
    h = delta_quoter(delta_limit=15)
    px = 110 if maker_side == SELL else 40
    assert h.place(BOB, CALL, maker_side, px * USDC, 20).accepted  # a second quote on the same side
    d = round(delta(h, CALL) * 20)
    assert 2 * d > 15 >= d
    taker = BUY if maker_side == SELL else SELL
    out = h.place(ALICE, CALL, taker, (px if maker_side == SELL else 40) * USDC, 40, tif=IOC)  # both quotes
    sign = -1 if maker_side == SELL else 1
    trip = [e for e in out.events if type(e) is MmpTriggered]
    assert trip == [MmpTriggered(BOB, "ETH", 40, 3, h.now + 60_000, sign * 2 * d)]
    assert h.seq.open_orders(BOB) == []
    assert h.place(BOB, CALL2, BUY, 10 * USDC, 10).code == "mmp_frozen"


def test_delta_limit_window_forgets_old_fills():
    h = delta_quoter(delta_limit=12)
    h.place(ALICE, CALL, BUY, 100 * USDC, 20, tif=IOC)
    h.advance(10_000)  # the first fill leaves the 10 s window
    out = h.place(ALICE, CALL2, BUY, 50 * USDC, 20, tif=IOC)
    assert not any(type(e) is MmpTriggered for e in out.events)
    assert h.seq.account(BOB)["mmp"]["ETH"]["delta_in_interval"] == -round(delta(h, CALL2) * 20)


def test_a_config_without_any_limit_is_refused_by_the_message():
    with pytest.raises(eip712.MessageError, match="qtyLimit or deltaLimit"):
        eip712.MmpConfig(ALICE, "ETH", 1_000, 0, 0, 1, 2)
    assert eip712.MmpConfig(ALICE, "ETH", 1_000, 0, 0, 1, 2, delta_limit=5).delta_limit == 5
