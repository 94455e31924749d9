"""Test harness for the core's withdrawals and batches: a sequencer on four chains, a model of
each ``CollateralVault.handle`` and a relayer that delivers batches in dependency order.

``VaultSim`` follows the contract step by step (debits, bridge-outs, bridge-ins awaited,
credits, withdrawals) and asserts per-chain solvency (holdings >= sum of settled balances,
no balance below zero) after every step, so a batch the vault would revert fails here too.
"""

from __future__ import annotations

import pickle

from aggregator import eip712
from aggregator import settlement as S
from aggregator.core import commands as C
from aggregator.core.batch import Batch, SettlementChain
from aggregator.core.sequencer import Outcome, Sequencer
from bridges import messages as M
from tests.sequencer.helpers import FEE, INS, SIG, T0, addr, config, order

HUB, ARB, BNB, OPT = 1, 2, 3, 4
TOKENS = {HUB: addr(0x70C1), ARB: addr(0x70C2), BNB: addr(0x70C3), OPT: addr(0x70C4)}
DECIMALS = {HUB: 6, ARB: 6, BNB: 18, OPT: 6}
CHAINS = tuple(SettlementChain(c, TOKENS[c], DECIMALS[c]) for c in (HUB, ARB, BNB, OPT))
USD = 1_000_000
PERP = "ETH-PERP"
ETH = 1000  # size units per ETH (size_decimals 3)

_VOLATILE = ("_now_ms", "_seq", "_last_order_id", "_canon", "_delta", "_external")


def state_bytes(seq: Sequencer) -> bytes:
    """The whole state minus what a reject may touch (clock, seq, scratch, caches)."""
    state = pickle.loads(seq.snapshot())  # noqa: S301 - our own snapshot
    for k in _VOLATILE:
        state.pop(k, None)
    state["_nonces"]._now_ms = 0
    return pickle.dumps(state)


class BridgePending(Exception):
    pass


class VaultSim:
    """One chain's CollateralVault settlement, as ``CollateralVault.handle`` does it."""

    def __init__(self, chain_id: int, network: dict) -> None:
        self.chain_id = chain_id
        self.balances: dict[str, int] = {}
        self.holdings = 0
        self.last_batch = 0
        self.paid: set[bytes] = set()
        self.network = network  # (batch, from, to) -> amount minted at `to`

    def check_solvent(self) -> None:
        assert all(v >= 0 for v in self.balances.values()), self.balances
        assert self.holdings >= sum(self.balances.values()), (self.chain_id, self.holdings, self.balances)

    def deposit(self, account: str, amount: int) -> None:
        self.balances[account] = self.balances.get(account, 0) + amount
        self.holdings += amount
        self.check_solvent()

    def apply(self, s: M.ChainSettlement) -> None:
        assert s.domain == self.chain_id
        assert s.batch_number == self.last_batch + 1, (s.batch_number, self.last_batch)
        for leg in s.bridge_in:  # the real vault reverts BridgeInPending: nothing applied
            got = self.network.get((s.batch_number, leg.domain, self.chain_id), 0)
            if got != leg.amount:
                assert got < leg.amount
                raise BridgePending(leg.domain)
        bal = self.balances
        for d in s.deltas:
            if d.amount < 0:
                assert bal.get(d.account, 0) >= -d.amount, ("InsufficientBalance", d)
                bal[d.account] -= -d.amount
        self.check_solvent()
        for leg in s.bridge_out:
            assert self.holdings >= leg.amount
            self.holdings -= leg.amount
            k = (s.batch_number, self.chain_id, leg.domain)
            self.network[k] = self.network.get(k, 0) + leg.amount
            self.check_solvent()
        for d in s.deltas:
            if d.amount > 0:
                bal[d.account] = bal.get(d.account, 0) + d.amount
        self.check_solvent()
        for w in s.withdrawals:
            assert w.withdrawal_id not in self.paid
            self.paid.add(w.withdrawal_id)
            assert bal.get(w.account, 0) >= w.amount, ("InsufficientBalance", w)
            bal[w.account] -= w.amount
            self.holdings -= w.amount
            self.check_solvent()
        self.last_batch = s.batch_number


class World:
    """A sequencer, four vaults and a relayer; commands get increasing seq and a clock."""

    def __init__(self, **cfg) -> None:
        self.cfg = config(settlement_chains=CHAINS, **cfg)
        self.seq = Sequencer(self.cfg)
        self.now = T0
        self.n = 0
        self.nonce = 0
        self.log: list[C.Command] = []
        self.network: dict = {}
        self.vaults = {c.chain_id: VaultSim(c.chain_id, self.network) for c in CHAINS}
        self.batches: list[Batch] = []
        self.queue: list[list[M.ChainSettlement]] = []  # closed, not yet fully applied
        self.prev_hash = bytes(32)

    # ------------------------------------------------------------ commands

    def apply(self, make) -> Outcome:  # noqa: ANN001
        self.n += 1
        self.now += 1
        cmd = make(self.n, self.now)
        self.log.append(cmd)
        out = self.seq.apply(cmd)
        assert self.seq.total_balance() == self.seq.deposited - self.seq.withdrawn, (cmd, out)
        return out

    def next_nonce(self) -> int:
        self.nonce += 1
        return self.nonce

    def deposit(self, account: str, amount: int, chain: int) -> Outcome:
        dn = self.next_nonce()
        self.vaults[chain].deposit(account, amount)
        return self.apply(lambda s, t: C.DepositCredit(s, t, chain, dn, account, amount))

    def price(self, usd: int | float, feed: str = "ETH-USD") -> Outcome:
        p8 = round(usd * 10**8)
        return self.apply(lambda s, t: C.PriceUpdate(s, t, feed, p8, 0, t // 1000, "ok"))

    def place(self, account: str, side: int, price: int, size: int, tif: int = 1, instrument: str = PERP
              ) -> Outcome:
        o = order(account, instrument, side, price, size, nonce=self.next_nonce(), tif=tif, now_ms=self.now)
        return self.apply(lambda s, t: C.PlaceOrder(s, t, account, o, SIG))

    def cancel_all(self, account: str) -> Outcome:
        c = eip712.CancelAll(account=account, instrument="", nonce=self.next_nonce(), expiry=self.now // 1000 + 3600)
        return self.apply(lambda s, t: C.CancelAllOrders(s, t, account, c, SIG))

    def withdrawal_msg(self, account: str, amount: int, chain: int, *, recipient: str | None = None,
                       token: str | None = None, nonce: int | None = None, expiry: int | None = None,
                       native: int | None = None) -> eip712.Withdrawal:
        scale = 10 ** (DECIMALS.get(chain, 6) - 6)
        return eip712.Withdrawal(account=account, token=token or TOKENS.get(chain, TOKENS[HUB]),
                                 amount=native if native is not None else amount * scale,
                                 destination_chain_id=chain, recipient=recipient or account,
                                 nonce=nonce if nonce is not None else self.next_nonce(),
                                 expiry=expiry if expiry is not None else self.now // 1000 + 3600)

    def withdraw(self, account: str, amount: int, chain: int, signer: str | None = None, **kw) -> Outcome:
        w = self.withdrawal_msg(account, amount, chain, **kw)
        return self.withdraw_msg(w, signer)

    def withdraw_msg(self, w: eip712.Withdrawal, signer: str | None = None) -> Outcome:
        return self.apply(lambda s, t: C.Withdraw(s, t, signer or w.account, w, SIG))

    def halt(self, chain: int, halted: bool = True, reason: str = "reconciliation mismatch") -> Outcome:
        return self.apply(lambda s, t: C.SetWithdrawalHalt(s, t, chain, halted, reason))

    def close(self) -> Batch:
        jh = self.n.to_bytes(32, "big")
        out = self.apply(lambda s, t: C.CloseBatch(s, t, jh))
        assert out.accepted, out
        b = self.seq.last_batch()
        settlements = S.check(b, [c.chain_id for c in CHAINS])
        header = S.to_header(b, self.prev_hash, settlements)
        self.prev_hash = M.batch_hash(header)
        self.batches.append(b)
        self.queue.append(settlements)
        return b

    def relay(self) -> None:
        """Apply every closed batch on every vault, senders before receivers; report each one."""
        while self.queue:
            pending = {s.domain: s for s in self.queue[0]}
            while pending:
                progressed = False
                for dom in sorted(pending):
                    try:
                        self.vaults[dom].apply(pending[dom])
                    except BridgePending:
                        continue
                    done = pending.pop(dom)
                    n = done.batch_number
                    for leg in done.bridge_out:  # the relayer delivers the mint (TokenBridge.handle)
                        self.vaults[leg.domain].holdings += leg.amount
                    out = self.apply(lambda s, t, dom=dom, n=n: C.BatchSettled(s, t, dom, n))
                    assert out.accepted, out
                    progressed = True
                assert progressed, f"batch stuck: {sorted(pending)}"
            self.queue.pop(0)

    # ------------------------------------------------------------ checks

    def ledger_on(self, chain: int) -> dict[str, int]:
        out = {}
        for a in self.seq.balances():
            v = self.seq.account(a)["balances"].get(str(chain), 0)
            if v:
                out[a] = v
        return out

    def vault_on(self, chain: int) -> dict[str, int]:
        return {a: v for a, v in sorted(self.vaults[chain].balances.items()) if v}

    def assert_chains_agree(self) -> None:
        """After close + relay with nothing in between: ledger == confirmed view == vault, per chain."""
        for c in self.vaults:
            v = self.vault_on(c)
            assert self.seq.settled_balances(c) == v, c
            assert self.seq.settled_balances(c, confirmed=False) == v, c
            assert self.ledger_on(c) == v, c
            assert self.vaults[c].holdings == sum(v.values()), c


def replay(cfg, log: list[C.Command]) -> tuple[Sequencer, list[Batch]]:  # noqa: ANN001
    """Replay a command log through the journal codec on a fresh sequencer; return it and its batches."""
    seq = Sequencer(cfg)
    batches = []
    for cmd in log:
        out = seq.apply(C.decode(C.encode(cmd)))
        if type(cmd) is C.CloseBatch and out.accepted:
            batches.append(seq.last_batch())
    return seq, batches


__all__ = ["World", "VaultSim", "replay", "state_bytes", "HUB", "ARB", "BNB", "OPT", "USD", "PERP", "ETH",
           "FEE", "INS", "addr", "TOKENS"]
