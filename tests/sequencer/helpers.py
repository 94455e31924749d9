"""Builders for sequencer tests: a config on the packaged instruments, commands, a harness.

The harness applies commands with increasing ``seq`` and a controllable clock, and checks
conservation (sum of balances == sum of credited deposits) after every command.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from aggregator import eip712
from aggregator.core import commands as C
from aggregator.core.instruments import InstrumentRegistry
from aggregator.core.risk import RiskParams
from aggregator.core.sequencer import Outcome, Sequencer, SequencerConfig

ROOT = Path(__file__).resolve().parents[2]
TOML = (ROOT / "aggregator" / "instruments.toml").read_text()

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z
FEE = eip712.to_checksum_address("0x" + "fe" * 20)
INS = eip712.to_checksum_address("0x" + "1f" * 20)
SIG = b"\x01" * 65  # replay does not re-verify signatures


def addr(i: int) -> str:
    """Return a deterministic checksum address for test account ``i``."""
    return eip712.to_checksum_address("0x" + f"{i:040x}")


ALICE, BOB, CAROL, DAVE = addr(0xA11CE), addr(0xB0B), addr(0xCA201), addr(0xDA7E)
SESSION = addr(0x5E55)

USDC = 1_000_000  # one dollar in internal units


def registry() -> InstrumentRegistry:
    return InstrumentRegistry.from_toml(TOML)


def config(**kw) -> SequencerConfig:
    base = dict(registry=registry(), fee_account=FEE, insurance_account=INS, hub_chain_id=1,
                maker_fee_bps=2, taker_fee_bps=5, default_risk=RiskParams(im_bps=1000, mm_bps=500),
                funding_interval_ms=3_600_000, funding_clamp_bps=50, liquidation_penalty_bps=100,
                market_band_bps=500, max_open_orders=50)
    base.update(kw)
    return SequencerConfig(**base)


def order(account: str, instrument: str, side: int, price: int, size: int, *, nonce: int, tif: int = 1,
          order_type: int = 1, reduce_only: bool = False, coid: int = 0, stp: int = 1,
          expiry: int | None = None, now_ms: int = T0) -> eip712.Order:
    return eip712.Order(account=account, instrument=instrument, side=side, order_type=order_type,
                        time_in_force=tif, self_trade_prevention=stp, reduce_only=reduce_only, price=price,
                        size=size, client_order_id=coid, nonce=nonce,
                        expiry=expiry if expiry is not None else now_ms // 1000 + 3600)


def trigger_msg(account: str, instrument: str, side: int, trigger_price: int, size: int, *, nonce: int,
                above: bool = False, price: int = 0, order_type: int = 2, tif: int = 2, reduce_only: bool = False,
                coid: int = 0, expiry: int | None = None, now_ms: int = T0) -> eip712.TriggerOrder:
    """A trigger order (default: a market IOC stop, firing at or below ``trigger_price``)."""
    return eip712.TriggerOrder(account=account, instrument=instrument, side=side, order_type=order_type,
                               time_in_force=tif, reduce_only=reduce_only, trigger_price=trigger_price,
                               trigger_above=above, price=price, size=size, client_order_id=coid, nonce=nonce,
                               expiry=expiry if expiry is not None else now_ms // 1000 + 3600)


class Harness:
    """A sequencer plus a clock and a seq counter; every apply checks conservation."""

    def __init__(self, cfg: SequencerConfig | None = None, start_ms: int = T0) -> None:
        self.cfg = cfg or config()
        self.seq = Sequencer(self.cfg)
        self.now = start_ms
        self.n = 0
        self.nonce = 0
        self.log: list[C.Command] = []

    def next_nonce(self) -> int:
        self.nonce += 1
        return self.nonce

    def advance(self, ms: int) -> None:
        self.now += ms

    def apply(self, make) -> Outcome:  # noqa: ANN001 - make(seq, ts) -> Command
        self.n += 1
        cmd = make(self.n, self.now)
        self.log.append(cmd)
        out = self.seq.apply(cmd)
        assert self.seq.total_balance() == self.seq.deposited - self.seq.withdrawn, (cmd, out)
        return out

    def drive(self, seed: int, n: int, **kw) -> Iterator[tuple[type, Outcome]]:  # noqa: ANN003
        """Apply the seeded random session ``tests.sequencer.session.session(seed, n, ...)``, command by
        command, yielding ``(command class, outcome)`` (the caller checks whatever it likes in between)."""
        from tests.sequencer.session import session

        for cls, args, ts in session(seed, n, lambda: self.seq, **kw):
            self.now = ts
            yield cls, self.apply(lambda s, t: cls(s, t, *args))  # noqa: B023 - called at once

    # -------------------------------------------------------------- command shortcuts

    def deposit(self, account: str, amount: int, chain_id: int = 1, deposit_nonce: int | None = None) -> Outcome:
        dn = deposit_nonce if deposit_nonce is not None else self.next_nonce()
        return self.apply(lambda s, t: C.DepositCredit(s, t, chain_id, dn, account, amount))

    def price(self, feed: str, usd: int | float, status: str = "ok", publish_ts: int | None = None) -> Outcome:
        p8 = round(usd * 10**8)
        ts = publish_ts if publish_ts is not None else self.now // 1000
        return self.apply(lambda s, t: C.PriceUpdate(s, t, feed, p8, 0, ts, status))

    def tick(self) -> Outcome:
        return self.apply(lambda s, t: C.Tick(s, t))

    def place(self, account: str, instrument: str, side: int, price: int, size: int, *, signer: str | None = None,
              **kw) -> Outcome:
        nonce = kw.pop("nonce", None) or self.next_nonce()
        o = order(account, instrument, side, price, size, nonce=nonce, now_ms=self.now, **kw)
        return self.apply(lambda s, t: C.PlaceOrder(s, t, signer or account, o, SIG))

    def place_msg(self, o: eip712.Order, signer: str | None = None) -> Outcome:
        return self.apply(lambda s, t: C.PlaceOrder(s, t, signer or o.account, o, SIG))

    def trigger(self, account: str, instrument: str, side: int, trigger_price: int, size: int, *,
                signer: str | None = None, **kw) -> Outcome:
        nonce = kw.pop("nonce", None) or self.next_nonce()
        t = trigger_msg(account, instrument, side, trigger_price, size, nonce=nonce, now_ms=self.now, **kw)
        return self.apply(lambda s, ts: C.PlaceTrigger(s, ts, signer or account, t, SIG))

    def cancel(self, account: str, instrument: str, order_id: int = 0, coid: int = 0,
               signer: str | None = None) -> Outcome:
        c = eip712.Cancel(account=account, instrument=instrument, order_id=order_id, client_order_id=coid,
                          nonce=self.next_nonce(), expiry=self.now // 1000 + 3600)
        return self.apply(lambda s, t: C.CancelOrder(s, t, signer or account, c, SIG))

    def cancel_all(self, account: str, instrument: str = "", signer: str | None = None) -> Outcome:
        c = eip712.CancelAll(account=account, instrument=instrument, nonce=self.next_nonce(),
                             expiry=self.now // 1000 + 3600)
        return self.apply(lambda s, t: C.CancelAllOrders(s, t, signer or account, c, SIG))

    def cancel_after(self, account: str, timeout_ms: int, signer: str | None = None) -> Outcome:
        c = eip712.CancelAllAfter(account=account, timeout_ms=timeout_ms, nonce=self.next_nonce(),
                                  expiry=self.now // 1000 + 3600)
        return self.apply(lambda s, t: C.CancelAllAfter(s, t, signer or account, c, SIG))

    def mmp(self, account: str, underlying: str, interval_ms: int, frozen_ms: int, qty_limit: int,
            signer: str | None = None, delta_limit: int = 0) -> Outcome:
        c = eip712.MmpConfig(account=account, underlying=underlying, interval_ms=interval_ms, frozen_ms=frozen_ms,
                             qty_limit=qty_limit, nonce=self.next_nonce(), expiry=self.now // 1000 + 3600,
                             delta_limit=delta_limit)
        return self.apply(lambda s, t: C.SetMmp(s, t, signer or account, c, SIG))

    def amend(self, account: str, instrument: str, order_id: int, price: int = 0, size: int = 0,
              signer: str | None = None) -> Outcome:
        a = eip712.Amend(account=account, instrument=instrument, order_id=order_id, client_order_id=0,
                         price=price, size=size, nonce=self.next_nonce(), expiry=self.now // 1000 + 3600)
        return self.apply(lambda s, t: C.AmendOrder(s, t, signer or account, a, SIG))

    def grant(self, account: str, key: str, valid_s: int = 3600, signer: str | None = None) -> Outcome:
        g = eip712.SessionKey(account=account, session_key=key, valid_until=self.now // 1000 + valid_s,
                              nonce=self.next_nonce(), expiry=self.now // 1000 + 3600)
        return self.apply(lambda s, t: C.GrantSessionKey(s, t, signer or account, g, SIG))

    def revoke(self, account: str, key: str, signer: str | None = None) -> Outcome:
        r = eip712.RevokeSessionKey(account=account, session_key=key, nonce=self.next_nonce(),
                                    expiry=self.now // 1000 + 3600)
        return self.apply(lambda s, t: C.RevokeSession(s, t, signer or account, r, SIG))

    def bal(self, account: str) -> int:
        a = self.seq.account(account)
        return 0 if a is None else a["total_collateral"]

    def pos(self, account: str, instrument: str) -> int:
        a = self.seq.account(account)
        for p in (a or {}).get("positions", []):
            if p["instrument"] == instrument:
                return p["size"]
        return 0


def funded(*accounts: str, amount: int = 100_000 * USDC) -> Harness:
    """A ticked harness with ETH at 3000 and ``amount`` deposited for each account."""
    h = Harness()
    h.tick()
    h.price("ETH-USD", 3000)
    for a in accounts:
        h.deposit(a, amount)
    return h


# ------------------------------------------------------------------ state fingerprints

_VOLATILE = ("_now_ms", "_seq", "_last_order_id", "_canon", "_delta", "_external", "_call_cache")


def state_bytes(seq: Sequencer) -> bytes:
    """Return the whole state as bytes, minus what a reject may legitimately touch.

    That is the clock and seq of the last command, the per-step conservation scratch
    (``_delta``, ``_external``), the order-id counters (a book-level
    FOK/post-only reject consumes an id, documented as not state), the address
    checksum cache and the call-margin cache (a function of the marks). Two equal results mean no balance, position, order, book level,
    nonce, session key or deposit record differs. (The volatile fields are blanked in
    place for one ``snapshot()`` and put back: one pickle instead of a round trip.)
    """
    saved = {k: seq.__dict__[k] for k in _VOLATILE}
    books = [(m.book, m.book._last_order_id) for m in seq._markets.values()]
    nonce_now = seq._nonces._now_ms
    try:
        for k, v in saved.items():
            setattr(seq, k, type(v)())
        seq._nonces._now_ms = 0
        for b, _ in books:
            b._last_order_id = 0
        return seq.snapshot()
    finally:
        for k, v in saved.items():
            setattr(seq, k, v)
        seq._nonces._now_ms = nonce_now
        for b, last in books:
            b._last_order_id = last


def observable(seq: Sequencer, *instruments: str) -> tuple:
    """Return what the read API shows: root, every account, its orders and fills, books."""
    accts = tuple((a, seq.account(a), seq.open_orders(a), seq.fills(a, 1000), seq.session_keys(a))
                  for a in seq.balances())
    books = tuple((i, seq.book(i, 1000)["bids"], seq.book(i, 1000)["asks"], seq.trades(i, 1000))
                  for i in instruments)
    return seq.state_root(), seq.total_balance(), seq.deposited, accts, books


def check_books_and_reserves(seq: Sequencer) -> None:
    """Assert the cross-structure invariants a ledger bug would break.

    Per account and market: the open-order reserves (buy/sell quantity, buy value) equal
    the sums over its resting orders; per market: the book's levels equal the resting
    orders of all accounts, the positions net to zero, and the holders are exactly the
    accounts with a non-zero position.
    """
    levels: dict[str, tuple[dict[int, int], dict[int, int]]] = {}
    sizes: dict[str, int] = {}
    holders: dict[str, set[str]] = {}
    for addr_ in seq.balances():
        acct = seq._accounts[addr_]
        want: dict[str, list[int]] = {}
        for o in seq.open_orders(addr_):
            if o.get("type") == "trigger":  # untriggered: nothing in the book, nothing reserved
                continue
            w = want.setdefault(o["instrument"], [0, 0, 0])
            b, a = levels.setdefault(o["instrument"], ({}, {}))
            side = b if o["side"] == "buy" else a
            side[o["price"]] = side.get(o["price"], 0) + o["remaining"]
            if o["side"] == "buy":
                w[0] += o["remaining"]
                w[2] += o["price"] * o["remaining"]
            else:
                w[1] += o["remaining"]
        for name, ex in acct.exposures.items():
            assert [ex.buy_qty, ex.sell_qty, ex.buy_value] == want.pop(name, [0, 0, 0]), (addr_, name)
            assert not ex.empty(), (addr_, name)
            sizes[name] = sizes.get(name, 0) + ex.size
            if ex.size:
                holders.setdefault(name, set()).add(addr_)
        assert not want, (addr_, want)
    for name, m in seq._markets.items():
        b, a = levels.get(name, ({}, {}))
        bids, asks = m.book.depth(10**6)
        assert dict(bids) == b and dict(asks) == a, name
        assert sizes.get(name, 0) == 0, name
        assert {x.address for x in m.holders} == holders.get(name, set()), name
