"""OmniclearClient against the real in-process API (tests/api/conftest.py): shapes, values, errors, streams."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import aiohttp
import pytest
from eth_account import Account

from aggregator import eip712
from aggregator.client import (
    AuthenticationError,
    BadRequest,
    BadSymbol,
    ExchangeError,
    ExchangeNotAvailable,
    InsufficientFunds,
    InvalidNonce,
    InvalidOrder,
    NetworkError,
    NonceGenerator,
    OmniclearClient,
    OmniclearError,
    OrderImmediatelyFillable,
    OrderNotFillable,
    OrderNotFound,
    PermissionDenied,
    RateLimitExceeded,
    from_units,
    sign_digest,
    to_units,
)
from aggregator.client.errors import ERROR_CLASSES, error_for
from aggregator.client.units import NONCE_EPOCH_US
from tests.api.conftest import make, start_api, url
from tests.api.helpers import DOMAIN

PERP = "ETH/USDC:USDC"
D = Decimal




def count_requests(c: OmniclearClient) -> list[tuple[str, str]]:
    """Record every HTTP request the client sends from now on."""
    sent: list[tuple[str, str]] = []
    orig = c._fetch

    async def spy(method, path, **kw):
        sent.append((method, path))
        return await orig(method, path, **kw)

    c._fetch = spy  # type: ignore[method-assign]
    return sent


# ---------------------------------------------------------------- pure pieces


def test_to_units_is_exact_and_refuses_lossy_values():
    assert to_units("3001.25", 6, 10_000) == 3_001_250_000
    assert to_units(D("0.400"), 3) == 400
    assert to_units(2, 3) == 2_000
    for bad in ("0.0005", 0.5, "-1", "0", "nan", "inf", "abc", True, None):
        with pytest.raises(InvalidOrder):
            to_units(bad, 3)
    with pytest.raises(InvalidOrder, match="not a multiple"):
        to_units("3001.255", 6, 10_000)  # exact in micro-USDC, but off the 0.01 tick
    assert from_units(3_001_000_000, 6) == D("3001") and str(from_units(-5, 3)) == "-0.005"


def test_nonces_strictly_increase_keep_salt_and_fit_uint64():
    now = [NONCE_EPOCH_US + 10**12]
    g = NonceGenerator(salt=0xBEEF, clock_us=lambda: now[0])
    seen = [g() for _ in range(1000)]  # same microsecond: still strictly increasing
    assert seen == sorted(set(seen)) and all(n & 0xFFFF == 0xBEEF and n < 2**64 for n in seen)
    now[0] -= 5_000_000  # clock stepped back: still increasing
    assert g() > seen[-1]
    other = NonceGenerator(salt=0xBEEE, clock_us=lambda: now[0])
    assert not set(seen) & {other() for _ in range(1000)}  # parallel client, other salt: disjoint
    restarted = NonceGenerator(salt=0xBEEF, clock_us=lambda: NONCE_EPOCH_US + 10**12 + 1)
    assert restarted() > seen[0]


def test_fast_signature_equals_eth_account_typed_data_signature():
    acct = Account.from_key("0x" + "42" * 32)
    msg = eip712.Order(acct.address, "ETH-PERP", 1, 1, 1, 1, False, 3_000_000_000, 1_000, 0, 7, 1_790_000_600)
    ours = sign_digest(acct, eip712.digest(DOMAIN, msg))
    ref = acct.sign_typed_data(full_message=eip712.typed_data(DOMAIN, msg)).signature
    assert ours == "0x" + bytes(ref).hex()
    assert eip712.recover_signer(DOMAIN, msg, ours) == acct.address


def test_error_table_maps_every_stable_code_to_one_class():
    from aggregator.api.trading import STATUS_BY_CODE
    from aggregator.core.sequencer import RejectCode

    for code in [*STATUS_BY_CODE, *(c.value for c in RejectCode), "bad_request", "internal", "unauthorized"]:
        assert code in ERROR_CLASSES, code
        assert issubclass(ERROR_CLASSES[code], OmniclearError)
    assert ERROR_CLASSES["rate_limited"] is RateLimitExceeded and issubclass(RateLimitExceeded, NetworkError)
    assert ERROR_CLASSES["unavailable"] is ExchangeNotAvailable
    assert issubclass(PermissionDenied, ExchangeError) and issubclass(OrderNotFound, InvalidOrder)
    assert issubclass(InvalidOrder, BadRequest) and issubclass(InsufficientFunds, ExchangeError)
    e = error_for({"code": "nonce_reused", "message": "x", "seq": 9}, 409)
    assert type(e) is InvalidNonce and (e.code, e.status, e.seq) == ("nonce_reused", 409, 9)
    assert type(error_for({"code": "brand_new", "message": "x"}, 503)) is ExchangeNotAvailable


# -------------------------------------------------------------------- markets


async def test_load_markets_returns_ccxt_markets_keyed_by_symbol(env):
    api, a, _ = env
    markets = await a.load_markets()
    m = markets[PERP]
    assert (m["id"], m["type"], m["swap"], m["option"], m["contract"], m["linear"]) == \
        ("ETH-PERP", "swap", True, False, True, True)
    assert (m["base"], m["quote"], m["settle"], m["active"]) == ("ETH", "USDC", "USDC", True)
    assert m["precision"] == {"amount": D("0.001"), "price": D("0.01")}
    assert m["limits"]["amount"] == {"min": D("0.001"), "max": D("10000")}
    assert m["info"]["tick_size"] == 10_000
    opt = next(v for v in markets.values() if v["option"] and v["base"] == "ETH")
    assert opt["id"].startswith("ETH-") and opt["optionType"] in ("call", "put") and opt["expiry"] > 0
    assert opt["symbol"].startswith("ETH/USDC:USDC-") and opt["symbol"].endswith(opt["id"][-1])
    assert opt["strike"] == D(opt["info"]["strike"]) / 10**6
    assert len(await a.fetch_markets()) == len(markets) == len(api.service.sequencer.markets())
    assert (await a.market("ETH-PERP")).symbol == PERP  # venue ids are accepted too


# ---------------------------------------------------------- trading and fills


async def test_crossing_orders_fill_and_show_in_trades_positions_and_balance(env):
    api, a, b = env
    before = await b.fetch_balance()
    ask = await a.create_order(PERP, "limit", "sell", "1", "3001", {"clientOrderId": 11})
    assert (ask["status"], ask["filled"], ask["remaining"], ask["clientOrderId"]) == ("open", 0, D("1"), "11")
    assert ask["price"] == D("3001") and ask["amount"] == D("1") and ask["timeInForce"] == "GTC"
    book = await b.fetch_order_book(PERP)
    assert book["asks"] == [[D("3001"), D("1")]] and book["bids"] == [] and isinstance(book["nonce"], int)

    bid = await b.create_order(PERP, "limit", "buy", "0.4", "3001.00")
    fee = D("1200.4") * D("0.0005")
    assert (bid["status"], bid["filled"], bid["remaining"], bid["average"]) == ("closed", D("0.4"), 0, D("3001"))
    assert bid["cost"] == D("1200.4") and bid["fee"] == {"cost": fee, "currency": "USDC"}
    assert len(bid["trades"]) == 1 and bid["trades"][0]["order"] == bid["id"]

    book = await b.fetch_order_book(PERP, 5)
    assert book["asks"] == [[D("3001"), D("0.6")]]
    (t,) = await b.fetch_trades(PERP)
    assert (t["side"], t["price"], t["amount"], t["cost"], t["symbol"]) == ("buy", D("3001"), D("0.4"),
                                                                           D("1200.4"), PERP)
    (mine_b,) = await b.fetch_my_trades(PERP)
    (mine_a,) = await a.fetch_my_trades()
    assert (mine_b["side"], mine_b["takerOrMaker"], mine_b["order"], mine_b["fee"]["cost"]) == \
        ("buy", "taker", bid["id"], fee)
    assert (mine_a["side"], mine_a["takerOrMaker"], mine_a["order"]) == ("sell", "maker", ask["id"])
    assert mine_a["id"] == mine_b["id"] == t["id"] and mine_a["timestamp"] == api.clock.now_ms

    (pb,) = await b.fetch_positions()
    (pa,) = await a.fetch_positions([PERP])
    assert (pb["symbol"], pb["side"], pb["contracts"], pb["entryPrice"], pb["markPrice"]) == \
        (PERP, "long", D("0.4"), D("3001"), D("3000"))
    assert pb["unrealizedPnl"] == D("-0.4") and pb["notional"] == D("1200")
    assert pb["info"]["account_initial_margin"] > 0
    assert (pa["side"], pa["contracts"]) == ("short", D("0.4"))

    after = await b.fetch_balance()
    assert after["USDC"]["total"] == before["USDC"]["total"] - fee + pb["unrealizedPnl"]
    assert after["USDC"]["free"] + after["USDC"]["used"] == after["USDC"]["total"]
    assert after["USDC"]["used"] > 0 and after["total"]["USDC"] == after["USDC"]["total"]
    assert D(after["info"]["balances"]["31337"]) / 10**6 == after["USDC"]["total"]


async def test_open_orders_edit_and_cancel(env):
    api, a, _ = env
    o1 = await a.create_order(PERP, "limit", "buy", "0.5", "2990", {"clientOrderId": "77"})
    o2 = await a.create_order("ETH-PERP", "limit", "buy", "0.25", "2980", {"postOnly": True})
    assert o2["postOnly"] is True and o2["timeInForce"] == "PO"
    opens = await a.fetch_open_orders(PERP)
    assert [o["id"] for o in opens] == [o1["id"], o2["id"]]
    assert (opens[0]["side"], opens[0]["price"], opens[0]["amount"], opens[0]["clientOrderId"]) == \
        ("buy", D("2990"), D("0.5"), "77")
    edited = await a.edit_order(o1["id"], PERP, price="2991.5", amount="0.6")
    assert (edited["id"], edited["price"], edited["amount"], edited["status"]) == (o1["id"], D("2991.5"), D("0.6"),
                                                                                  "open")
    cancelled = await a.cancel_order(None, PERP, {"clientOrderId": 77})
    assert (cancelled["id"], cancelled["status"], cancelled["remaining"]) == (o1["id"], "canceled", 0)
    with pytest.raises(OrderNotFound):
        await a.cancel_order(o1["id"], PERP)
    assert [o["id"] for o in await a.fetch_open_orders()] == [o2["id"]]
    gone = await a.cancel_all_orders()
    assert [(g["id"], g["status"]) for g in gone] == [(o2["id"], "canceled")]
    assert await a.fetch_open_orders() == []


async def test_close_position_sends_one_reduce_only_market_order_for_the_whole_position(env):
    api, a, b = env
    with pytest.raises(InvalidOrder, match="no open position"):
        await a.close_position(PERP)
    await b.create_order(PERP, "limit", "sell", "0.4", "3000")
    await a.create_order(PERP, "limit", "buy", "0.4", "3000", {"timeInForce": "IOC"})
    await b.create_order(PERP, "limit", "buy", "1", "2995")
    with pytest.raises(InvalidOrder, match="is long, not short"):
        await a.close_position(PERP, "short")
    closed = await a.close_position(PERP, "long")
    assert (closed["side"], closed["type"], closed["filled"], closed["reduceOnly"]) == ("sell", "market", D("0.4"), True)
    assert await a.fetch_positions() == []
    assert await b.fetch_positions() == []  # b's bid took it back: b was the short side


async def test_ioc_remainder_is_canceled_and_market_order_fills(env):
    api, a, b = env
    await a.create_order(PERP, "limit", "sell", "0.3", "3001")
    ioc = await b.create_order(PERP, "limit", "buy", "0.5", "3001", {"timeInForce": "IOC"})
    assert (ioc["status"], ioc["filled"], ioc["remaining"]) == ("expired", D("0.3"), 0)  # as ccxt reports IOC
    await a.create_order(PERP, "limit", "sell", "0.2", "3002")
    mkt = await b.create_order(PERP, "market", "buy", "0.2")
    assert (mkt["status"], mkt["filled"], mkt["average"], mkt["type"]) == ("closed", D("0.2"), D("3002"), "market")


async def test_create_orders_batch_returns_one_result_per_item_with_bad_items_rejected(env):
    api, a, b = env
    await a.create_order(PERP, "limit", "sell", "1", "3001")
    await b.load_markets()
    await b.domain()
    sent = count_requests(b)
    res = await b.create_orders([
        {"symbol": PERP, "type": "limit", "side": "buy", "amount": "0.1", "price": "2990"},
        {"symbol": PERP, "type": "limit", "side": "buy", "amount": "0.1", "price": "3001",
         "params": {"postOnly": True}},  # refused by the venue: would cross
        {"symbol": PERP, "type": "limit", "side": "buy", "amount": "0.1", "price": "2990.001"},  # off tick
        {"symbol": PERP, "type": "limit", "side": "buy", "amount": "0.2", "price": "3001"},
    ])
    assert sent == [("POST", "/v1/orders/batch")]
    assert [r["status"] for r in res] == ["open", "rejected", "rejected", "closed"]
    assert isinstance(res[1]["error"], OrderImmediatelyFillable) and res[1]["info"]["error"]["code"] == \
        "post_only_would_cross"
    assert isinstance(res[2]["error"], InvalidOrder) and res[2]["error"].code is None
    assert res[3]["filled"] == D("0.2")
    assert [o["id"] for o in await b.fetch_open_orders()] == [res[0]["id"]]
    with pytest.raises(BadRequest):
        await b.create_orders([res[0]] * 51)


# --------------------------------------------------------------------- errors


async def test_insufficient_margin_is_insufficient_funds(env):
    api, _, _ = env
    async with make(api, api.poor) as poor:
        with pytest.raises(InsufficientFunds) as ei:
            await poor.create_order(PERP, "limit", "buy", "1", "3000")
        assert (ei.value.code, ei.value.status) == ("insufficient_margin", 422) and ei.value.seq


async def test_unknown_symbol_is_bad_symbol(env):
    api, a, _ = env
    with pytest.raises(BadSymbol):
        await a.create_order("DOGE/USDC:USDC", "limit", "buy", "1", "1")
    with pytest.raises(BadSymbol):
        await a.fetch_order_book("DOGE-PERP")


@pytest.mark.parametrize("amount,price", [("1", "3000.001"), ("0.0001", "3000"), (0.5, "3000"), ("1", 3000.0),
                                          ("0", "3000"), ("100000", "3000")])
async def test_lossy_or_out_of_range_values_raise_invalid_order_without_a_request(env, amount, price):
    api, a, _ = env
    await a.load_markets()
    await a.domain()
    sent = count_requests(a)
    seq = api.service.last_seq
    with pytest.raises(InvalidOrder):
        await a.create_order(PERP, "limit", "buy", amount, price)
    assert sent == [] and api.service.last_seq == seq


async def test_reused_nonce_is_invalid_nonce(env):
    api, _, _ = env
    async with make(api, api.a, nonces=lambda: 424242) as a:
        await a.create_order(PERP, "limit", "buy", "0.1", "2900")
        with pytest.raises(InvalidNonce) as ei:
            await a.create_order(PERP, "limit", "buy", "0.1", "2900")
        assert (ei.value.code, ei.value.status) == ("nonce_reused", 409)


async def test_expiry_beyond_window_is_invalid_nonce(env):
    api, a, _ = env
    with pytest.raises(InvalidNonce) as ei:
        await a.create_order(PERP, "limit", "buy", "0.1", "2900", {"expiry": api.clock.now_ms // 1000 + 9 * 86_400})
    assert ei.value.code == "nonce_window"


async def test_unauthorized_signer_is_permission_denied(env):
    api, _, _ = env
    async with OmniclearClient(url(api), address=api.a.address, session_key=Account.create(),
                               clock_ms=api.clock) as c:
        with pytest.raises(PermissionDenied) as ei:
            await c.create_order(PERP, "limit", "buy", "0.1", "2900")
        assert (ei.value.code, ei.value.status) == ("unauthorized_signer", 403)
        with pytest.raises(AuthenticationError):  # a session key cannot grant keys nor log in
            await c.authorize_session_key()


async def test_venue_order_rules_map_to_their_classes(env):
    api, a, b = env
    await a.create_order(PERP, "limit", "sell", "0.1", "3001")
    with pytest.raises(OrderImmediatelyFillable):
        await b.create_order(PERP, "limit", "buy", "0.1", "3001", {"postOnly": True})
    with pytest.raises(OrderNotFillable):
        await b.create_order(PERP, "limit", "buy", "0.5", "3001", {"timeInForce": "FOK"})
    with pytest.raises(InvalidOrder) as ei:
        await b.create_order(PERP, "limit", "buy", "0.1", "2900", {"reduceOnly": True})
    assert ei.value.code == "reduce_only_would_increase"


async def test_rate_limited_is_rate_limit_exceeded(tmp_path):
    from aggregator.api.trading import TradingOptions

    client, api = await start_api(tmp_path, TradingOptions(rate=0.001, burst=1.0, ip_rate=None))
    try:
        async with make(api, api.a) as a:
            await a.create_order(PERP, "limit", "buy", "0.1", "2900")
            with pytest.raises(RateLimitExceeded) as ei:
                await a.create_order(PERP, "limit", "buy", "0.1", "2900")
            assert (ei.value.code, ei.value.status) == ("rate_limited", 429)
    finally:
        await client.close()


async def test_unreachable_venue_is_exchange_not_available_from_aiohttp():
    async with OmniclearClient("http://127.0.0.1:9", "0x" + "11" * 32, timeout_s=2) as c:
        with pytest.raises(ExchangeNotAvailable) as ei:
            await c.load_markets()
        assert isinstance(ei.value.__cause__, aiohttp.ClientError)
        assert isinstance(ei.value, NetworkError)


# --------------------------------------------------------------- session keys


async def test_session_key_signs_orders_until_revoked(env):
    api, a, b = env
    sk = await a.authorize_session_key(valid_for_s=3600)
    assert a.session_key_address == sk
    assert sk in api.service.sequencer.account(api.a.address)["session_keys"]
    o = await a.create_order(PERP, "limit", "sell", "0.2", "3001")
    await b.create_order(PERP, "limit", "buy", "0.2", "3001")
    (p,) = await a.fetch_positions()
    assert (p["side"], p["contracts"]) == ("short", D("0.2"))
    assert [t["order"] for t in await a.fetch_my_trades()] == [o["id"]]
    # a second client with only the address and the session key trades for the account
    holder = a._session_signer
    async with OmniclearClient(url(api), address=api.a.address, session_key=holder, clock_ms=api.clock) as only_sk:
        o2 = await only_sk.create_order(PERP, "limit", "buy", "0.1", "2900")
        assert [x["id"] for x in await a.fetch_open_orders()] == [o2["id"]]
        await a.revoke_session_key()
        assert a.session_key_address is None
        with pytest.raises(PermissionDenied):
            await only_sk.create_order(PERP, "limit", "buy", "0.1", "2900")
    await a.create_order(PERP, "limit", "buy", "0.1", "2899")  # back to the account key


# ------------------------------------------------------------------ WebSocket


async def test_watch_order_book_gets_snapshot_then_delta(env):
    api, a, b = env
    await a.create_order(PERP, "limit", "sell", "1", "3005")
    snap = await b.watch_order_book(PERP)
    assert snap["asks"] == [[D("3005"), D("1")]] and snap["bids"] == []
    await a.create_order(PERP, "limit", "buy", "0.5", "2995")
    book = await asyncio.wait_for(b.watch_order_book(PERP), 5)
    assert book["bids"] == [[D("2995"), D("0.5")]] and book["nonce"] == snap["nonce"] + 1
    rest = await b.fetch_order_book(PERP)
    assert (rest["bids"], rest["asks"], rest["nonce"]) == (book["bids"], book["asks"], book["nonce"])


async def test_watch_order_book_resyncs_from_rest_after_a_seq_gap(env):
    api, a, b = env
    await b.watch_order_book(PERP)
    stream = b._ws()
    real = stream.on_message
    dropped: list[int] = []

    def lossy(m):
        if m.get("type") == "delta" and not dropped:
            dropped.append(m["seq"])  # lose exactly one delta
            return
        real(m)

    stream.on_message = lossy
    await a.create_order(PERP, "limit", "buy", "0.5", "2995")  # delta lost
    await a.create_order(PERP, "limit", "buy", "0.7", "2996")  # gap detected here
    for _ in range(50):
        book = await asyncio.wait_for(b.watch_order_book(PERP), 5)
        if len(book["bids"]) == 2:
            break
    assert dropped and stream.books["ETH-PERP"].resyncs == 1
    assert book["bids"] == [[D("2996"), D("0.7")], [D("2995"), D("0.5")]]
    assert book["nonce"] == (await b.fetch_order_book(PERP))["nonce"]
    await a.cancel_all_orders(PERP)  # deltas flow again after the resync
    book = await asyncio.wait_for(b.watch_order_book(PERP), 5)
    assert book["bids"] == [] and stream.books["ETH-PERP"].resyncs == 1


async def _until(pred, timeout: float = 5.0) -> None:
    for _ in range(int(timeout / 0.01)):
        if pred():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not reached")


async def test_watch_trades_orders_and_my_trades(env):
    api, a, b = env
    trades = asyncio.create_task(b.watch_trades(PERP))
    orders = asyncio.create_task(a.watch_orders(PERP))
    stream_a = a._ws()
    await _until(lambda: stream_a._private == {"orders"} and "ETH-PERP" in b._ws()._trade_subs)
    ask = await a.create_order(PERP, "limit", "sell", "1", "3001")
    (o,) = await asyncio.wait_for(orders, 5)
    assert (o["id"], o["status"], o["side"], o["amount"], o["filled"]) == (ask["id"], "open", "sell", D("1"), 0)
    fills = asyncio.create_task(a.watch_my_trades())
    await _until(lambda: "fills" in stream_a._private)
    await b.create_order(PERP, "limit", "buy", "0.4", "3001")
    (t,) = await asyncio.wait_for(trades, 5)
    assert (t["side"], t["price"], t["amount"], t["symbol"]) == ("buy", D("3001"), D("0.4"), PERP)
    (f,) = await asyncio.wait_for(fills, 5)
    assert (f["order"], f["side"], f["takerOrMaker"], f["amount"]) == (ask["id"], "sell", "maker", D("0.4"))
    assert f["id"] == t["id"] == (await a.fetch_my_trades())[0]["id"]
    assert f["fee"]["cost"] == (await a.fetch_my_trades())[0]["fee"]["cost"]
    (o,) = await asyncio.wait_for(a.watch_orders(), 5)
    assert (o["id"], o["status"], o["filled"], o["remaining"], o["average"]) == (ask["id"], "open", D("0.4"),
                                                                                D("0.6"), D("3001"))


async def test_close_releases_the_session_and_the_websocket(env):
    api, a, _ = env
    await a.watch_order_book(PERP)
    session, ws = a.session(), a._ws()._ws
    await a.close()
    assert session.closed and ws.closed
