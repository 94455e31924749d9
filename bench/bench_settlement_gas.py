"""Settlement gas per trade on three real anvils: netted batches vs one settlement per trade.

    python bench/bench_settlement_gas.py [--trades 1000] [--accounts 100] [--seed 7]
        [--fills-per-batch 0] [--sample 100] [--price-every 10]

Workload (seeded): ``--accounts`` traders, each with a home chain (round robin over the
three chains: ethereum (hub, 6 decimals), arbitrum (6), bnb (18 decimals)), make a real
vault deposit on it (``aggregator.traders.deposit``: faucet, approve, deposit), then
``--trades`` random ETH-PERP trades between random pairs (a maker rests a GTC order
within +-5 USD of the mark, a taker takes it IOC, the maker cancels the rest) while the
mark random-walks (a ``PriceUpdate`` every ``--price-every`` trades), so PnL and fees flow
between accounts on different chains. A pure ``Sequencer`` runs the commands (dummy
65-byte signatures: the core does not re-verify them, as in ``bench_replay``).

Netted: ``CloseBatch`` once after the last trade (or every ``--fills-per-batch`` trades),
each batch committed with ``bridges.settle.submit_batch`` on the hub, then every message
the hub's Mailbox dispatched delivered by a minimal direct relay (``Mailbox.process`` with
``bridges.messages.sign_delivery`` by the devnet validator keys; a settlement whose
bridge-in is not minted yet simply waits, no gas is spent on reverts), including every
token-bridge mint the vaults dispatch. Gas = sum of ``gasUsed`` of every transaction.

One by one: the same command stream on a second sequencer that closes a batch after
every trade (and after every price update: the mark-to-market variation of all holders,
which is *not* charged to the trades here, so the baseline is a lower bound). The
anvils are reverted (``evm_revert``) to the state right after the deposits, and a random
sample of ``--sample`` per-trade batches (0: all of them) is settled exactly like the
netted batches, renumbered 1..K (each batch's deltas only touch large deposit balances,
so any subset applies in order); gas per trade is the sample mean, extrapolated to all
trades (printed as such). The chains automine (one block per transaction).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import random
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from eth_account import Account  # noqa: E402
from hexbytes import HexBytes  # noqa: E402
from web3 import Web3  # noqa: E402

from aggregator import eip712  # noqa: E402
from aggregator import settlement as S  # noqa: E402
from aggregator.config import local_settings  # noqa: E402
from aggregator.core import commands as C  # noqa: E402
from aggregator.core.batch import Batch, SettlementChain  # noqa: E402
from aggregator.core.instruments import InstrumentRegistry  # noqa: E402
from aggregator.core.risk import RiskParams  # noqa: E402
from aggregator.core.sequencer import Sequencer, SequencerConfig  # noqa: E402
from aggregator.devnet import Deployment, deploy_all, web3_for  # noqa: E402
from aggregator.traders import deposit, fund_gas  # noqa: E402
from bench._devchain import rpc_batch  # noqa: E402
from bridges import messages as M  # noqa: E402
from bridges.anvil import free_port, start_anvil  # noqa: E402
from bridges.chain import ChainClient, NonceManager  # noqa: E402
from bridges.contracts import abi, ensure_built  # noqa: E402
from bridges.errors import RejectedChainError  # noqa: E402
from bridges.relayer import revert_name  # noqa: E402
from bridges.relay_store import DISPATCH_TOPIC, DispatchEvent, decode_dispatch  # noqa: E402
from bridges.settle import submit_batch  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CHAINS = (("ethereum", 31337, 6), ("arbitrum", 31338, 6), ("bnb", 31339, 18))
HUB = CHAINS[0][1]
T0 = 1_796_256_000_000  # 2026-12-03T00:00:00Z
SIG = b"\x07" * 65
USD = 10**6  # canonical units per dollar
ETH = 1000  # ETH-PERP size units per ETH (size_decimals 3)
TICK = 10_000


def addr(i: int) -> str:
    return eip712.to_checksum_address("0x" + f"{0xFEE00000 + i:040x}")


def make_config(chains: dict[int, tuple[str, int]]) -> SequencerConfig:
    """``chains``: chain id -> (token address, decimals)."""
    reg = InstrumentRegistry.from_toml((ROOT / "aggregator" / "instruments.toml").read_text())
    return SequencerConfig(registry=reg, fee_account=addr(1), insurance_account=addr(2), hub_chain_id=HUB,
                           default_risk=RiskParams(im_bps=1000, mm_bps=500), max_open_orders=50,
                           settlement_chains=tuple(SettlementChain(c, t, d) for c, (t, d) in sorted(chains.items())))


# ---------------------------------------------------------------------- workload (pure)


def trader_keys(n: int, seed: int) -> list[str]:
    return ["0x" + eip712.keccak(f"omniclear bench settlement gas {seed} {i}".encode()).hex() for i in range(n)]


def workload(deposits: list[tuple[int, int, str, int]], n_trades: int, seed: int, price_every: int
             ) -> tuple[list[tuple[str, list]], Counter]:
    """Return the command stream as groups ``(kind, [make(seq, ts) -> Command])``.

    ``kind`` is "setup" (price, deposits), "trade" (one fill and the maker's cancel),
    "price" (a mark update) or "noop" (a rejected attempt: no balance change). The
    groups are validated on a scratch sequencer so that exactly ``n_trades`` fill.
    """
    rng = random.Random(seed)
    accts = [a for _, _, a, _ in deposits]
    cfg = make_config({cid: (None, d) for _, cid, d in CHAINS})
    live = Sequencer(cfg)
    seq, now, nonce = 0, T0, 0
    mix: Counter = Counter()
    groups: list[tuple[str, list]] = []

    def run(kind: str, makers: list) -> list:
        nonlocal seq, now
        outs = []
        for make in makers:
            seq += 1
            now += 50
            outs.append(live.apply(make(seq, now)))
        groups.append((kind, makers))
        return outs

    def nxt() -> int:
        nonlocal nonce
        nonce += 1
        return nonce

    def price_cmd(px: int):
        return lambda s, t: C.PriceUpdate(s, t, "ETH-USD", px * 100, 0, t // 1000, "ok")

    px = 3000 * USD
    setup = [price_cmd(px)] + [
        (lambda s, t, c=c, n=n, a=a, v=v: C.DepositCredit(s, t, c, n, a, v)) for c, n, a, v in deposits]
    assert all(o.accepted for o in run("setup", setup))
    trades = 0
    while trades < n_trades:
        if trades and trades % price_every == 0 and groups[-1][0] != "price":
            px = max(100 * USD, px * (10_000 + rng.randint(-60, 60)) // 10_000 // TICK * TICK)
            run("price", [price_cmd(px)])
            mix["price update"] += 1
        maker, taker = rng.sample(accts, 2)
        side = rng.choice((1, 2))
        size = rng.choice((100, 200, 250, 500, 1000, 2000))
        p = px + rng.randint(-5, 5) * USD
        exp = now // 1000 + 3600
        mo = eip712.Order(maker, "ETH-PERP", side, 1, 1, 1, False, p, size, 0, nxt(), exp)
        to = eip712.Order(taker, "ETH-PERP", 3 - side, 1, 2, 1, False, p, size, 0, nxt(), exp)
        ca = eip712.CancelAll(account=maker, instrument="", nonce=nxt(), expiry=exp)
        cmds = [lambda s, t, o=mo: C.PlaceOrder(s, t, o.account, o, SIG),
                lambda s, t, o=to: C.PlaceOrder(s, t, o.account, o, SIG),
                lambda s, t, c=ca: C.CancelAllOrders(s, t, c.account, c, SIG)]
        before = len(groups)
        outs = run("trade", cmds)
        filled = outs[1].accepted and (outs[1].result or {}).get("filled", 0) > 0
        if filled:
            trades += 1
            mix["trade"] += 1
        else:
            groups[before] = ("noop", cmds)
            mix["rejected attempt"] += 1
    assert live.total_balance() == live.deposited
    return groups, mix


def replay(cfg: SequencerConfig, groups: list[tuple[str, list]], close_after: set[int]
           ) -> tuple[list[Batch], list[str]]:
    """Apply ``groups`` on a fresh sequencer, ``CloseBatch`` after each group index in
    ``close_after`` (plus every chain's ``BatchSettled``, as if applied at once); return
    the batches and the kind of the group that closed each one."""
    sq = Sequencer(cfg)
    seq, now = 0, T0
    batches, kinds = [], []
    domains = [c.chain_id for c in cfg.settlement_chains]
    for i, (kind, makers) in enumerate(groups):
        for make in makers:
            seq += 1
            now += 50
            sq.apply(make(seq, now))
        if i in close_after:
            seq += 1
            out = sq.apply(C.CloseBatch(seq, now, seq.to_bytes(32, "big")))
            assert out.accepted, out
            b = sq.last_batch()
            batches.append(b)
            kinds.append(kind)
            for d in domains:
                seq += 1
                assert sq.apply(C.BatchSettled(seq, now, d, b.number)).accepted
    assert sq.total_balance() == sq.deposited
    return batches, kinds


# ---------------------------------------------------------------------- chains


@dataclasses.dataclass
class Chain:
    chain_id: int
    client: ChainClient
    mailbox: str


@dataclasses.dataclass
class GasLog:
    submit: int = 0
    settle: int = 0
    mint: int = 0
    txs: int = 0
    settle_txs: int = 0
    mint_txs: int = 0

    @property
    def total(self) -> int:
        return self.submit + self.settle + self.mint


_MAILBOX = Web3().eth.contract(abi=abi("Mailbox"))


def dispatches(receipt: dict) -> list[DispatchEvent]:
    return [decode_dispatch(lg) for lg in receipt["logs"]
            if lg["topics"] and HexBytes(lg["topics"][0]).to_0x_hex() == DISPATCH_TOPIC]


class Settler:
    """Commits batches on the hub and relays every dispatched message directly."""

    def __init__(self, dep: Deployment) -> None:
        st = dep.settlement
        assert st is not None
        self.dep = dep
        self.chains = {c.chain_id: Chain(c.chain_id, ChainClient(c.name, c.rpc_url, c.chain_id, timeout=60),
                                         c.mailbox) for c in dep.chains}
        self.hub = dep.hub
        self.sequencer_key = st.sequencer_key
        self.relayer_key = st.relayer_keys[0]
        self.vkeys = st.validator_keys[: st.threshold]
        self.hub_sender = Web3.to_checksum_address(st.settlement_hub).lower()
        self.reset()

    def reset(self) -> None:
        self.nonces = NonceManager()
        self.prev = bytes(32)
        self.number = 0

    async def close(self) -> None:
        for c in self.chains.values():
            await c.client.close()

    async def settle(self, batch: Batch, log: GasLog) -> None:
        """Commit ``batch`` as the next batch number and deliver everything it dispatches."""
        self.number += 1
        settlements = [dataclasses.replace(s, batch_number=self.number) for s in S.check(batch)]
        header = M.BatchHeader(self.number, self.prev, batch.state_root, batch.journal_hash,
                               M.settlements_hash(settlements))
        hub = self.chains[self.hub.chain_id]
        sub = await submit_batch(hub.client, self.hub.settlement_hub, header, settlements, self.sequencer_key,
                                 nonces=self.nonces, domains=[c for c in self.chains])
        self.prev = M.batch_hash(header)
        receipt = await hub.client.wait_receipt(HexBytes(sub.tx_hash))
        log.submit += int(receipt["gasUsed"])
        log.txs += 1
        await self.deliver(dispatches(receipt), log)

    async def deliver(self, pending: list[DispatchEvent], log: GasLog) -> None:
        while pending:
            progressed = False
            for ev in list(pending):
                dest = self.chains[ev.destination]
                sigs = M.sign_delivery(self.vkeys, ev.id, dest.chain_id, dest.mailbox)
                data = _MAILBOX.encode_abi("process", args=[ev.message, sigs])
                try:
                    r = await dest.client.send_transaction(self.relayer_key, {"to": dest.mailbox, "data": data},
                                                           self.nonces)
                except RejectedChainError as e:  # waits for a mint (or a predecessor): retry after the others
                    if revert_name(e) not in ("BridgeInPending", "MessageOutOfOrder"):
                        raise
                    continue
                assert int(r["status"]) == 1, r
                g = int(r["gasUsed"])
                log.txs += 1
                if ev.sender.lower() == self.hub_sender:
                    log.settle += g
                    log.settle_txs += 1
                else:
                    log.mint += g
                    log.mint_txs += 1
                pending.remove(ev)
                pending.extend(dispatches(r))
                progressed = True
            if not progressed:
                raise RuntimeError(f"{len(pending)} messages cannot be delivered")


def snapshot(dep: Deployment) -> dict[str, str]:
    return {c.rpc_url: rpc_batch(c.rpc_url, [("evm_snapshot", [])])[0] for c in dep.chains}


def revert(snap: dict[str, str]) -> None:
    for url, sid in snap.items():
        assert rpc_batch(url, [("evm_revert", [sid])])[0] is True


def real_deposits(dep: Deployment, keys: list[str], seed: int) -> list[tuple[int, int, str, int]]:
    """Deposit on each trader's home chain (round robin); return (chain, nonce, account, canonical)."""
    rng = random.Random(seed ^ 0xD5)
    out = []
    w3s = {c.chain_id: web3_for(c.rpc_url, timeout=60) for c in dep.chains}
    for i, k in enumerate(keys):
        c = dep.chains[i % len(dep.chains)]
        a = Account.from_key(k).address
        amount = rng.randint(20_000, 60_000) * USD
        fund_gas(w3s[c.chain_id], a)
        r = deposit(w3s[c.chain_id], c, k, amount * 10 ** (c.token_decimals - 6))
        out.append((c.chain_id, r.deposit_nonce, a, amount))
    return out


def fmt_gas(log: GasLog) -> str:
    return (f"hub submitBatch {log.submit:,}, settlement deliveries {log.settle:,} ({log.settle_txs} tx), "
            f"token-bridge mints {log.mint:,} ({log.mint_txs} tx)")


async def measure(dep: Deployment, netted: list[Batch], single: list[Batch], snap: dict[str, str]
                  ) -> tuple[GasLog, GasLog, float, float]:
    settler = Settler(dep)
    try:
        t = time.perf_counter()
        net = GasLog()
        for b in netted:
            await settler.settle(b, net)
        t_net = time.perf_counter() - t
        revert(snap)
        settler.reset()
        t = time.perf_counter()
        one = GasLog()
        for b in single:
            await settler.settle(b, one)
        t_one = time.perf_counter() - t
    finally:
        await settler.close()
    return net, one, t_net, t_one


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trades", type=int, default=1000)
    ap.add_argument("--accounts", type=int, default=100)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--fills-per-batch", type=int, default=0, help="netted: close every N trades (0: one batch)")
    ap.add_argument("--sample", type=int, default=100, help="one-by-one trades settled on chain (0: all)")
    ap.add_argument("--price-every", type=int, default=10, help="a mark update every N trades")
    args = ap.parse_args()
    ensure_built()
    t_start = time.perf_counter()
    procs = []
    try:
        ports = []
        for _, cid, _ in CHAINS:
            port = free_port()
            procs.append(start_anvil(port, cid))
            ports.append(port)
        settings = local_settings(*((n, cid, p, d) for (n, cid, d), p in zip(CHAINS, ports)))
        dep = deploy_all(settings, oracle=False)
        keys = trader_keys(args.accounts, args.seed)
        t = time.perf_counter()
        deps = real_deposits(dep, keys, args.seed)
        print(f"deployed 3 anvils (automine) and made {len(deps)} real vault deposits "
              f"in {time.perf_counter() - t:.1f}s")
        snap = snapshot(dep)

        t = time.perf_counter()
        groups, mix = workload(deps, args.trades, args.seed, args.price_every)
        cfg = make_config({c.chain_id: (c.token, c.token_decimals) for c in dep.chains})
        trade_idx = [i for i, (k, _) in enumerate(groups) if k == "trade"]
        every = args.fills_per_batch or len(trade_idx)
        net_close = {trade_idx[j] for j in range(every - 1, len(trade_idx), every)} | {trade_idx[-1]}
        netted, _ = replay(cfg, groups, net_close)
        singles_all, kinds = replay(cfg, groups, {i for i, (k, _) in enumerate(groups) if k in ("trade", "price")})
        per_trade = [b for b, k in zip(singles_all, kinds) if k == "trade"]
        assert len(per_trade) == args.trades
        n_price_batches = sum(1 for k in kinds if k == "price")
        k = args.sample if 0 < args.sample < args.trades else args.trades
        rng = random.Random(args.seed ^ 0x5A)
        sample_idx = sorted(rng.sample(range(args.trades), k))
        sample = [per_trade[i] for i in sample_idx]
        print(f"workload: seed {args.seed}, {args.accounts} accounts over {len(CHAINS)} chains "
              f"(home chain round robin), {', '.join(f'{v} {n}' for n, v in mix.items())}; "
              f"sequenced and batched in {time.perf_counter() - t:.1f}s")
        gross = sum(b.netting.gross for b in netted)
        bridged = sum(b.netting.bridged for b in netted)
        deltas = sum(len(c.deltas) for b in netted for c in b.chains)
        print(f"netted: {len(netted)} batch(es), {deltas} account deltas, {sum(len(b.legs) for b in netted)} "
              f"bridge legs; gross cross-chain {gross / USD:,.2f} USD, bridged {bridged / USD:,.2f} USD")

        net, one, t_net, t_one = asyncio.run(measure(dep, netted, sample, snap))
        print(f"netted on chain: {net.total:,} gas in {net.txs} transactions ({t_net:.1f}s): {fmt_gas(net)}")
        sampled = k < args.trades
        what = f"random sample of {k} of the {args.trades} trades" if sampled else f"all {k} trades"
        print(f"one-by-one on chain ({what}, one batch each): {one.total:,} gas in {one.txs} transactions "
              f"({t_one:.1f}s): {fmt_gas(one)}")
        g_net = net.total / args.trades
        g_one = one.total / k
        tx_one = one.txs / k
        print(f"gas per settled trade, netted:     {g_net:,.0f}  ({net.txs} transactions for {args.trades} trades)")
        print(f"gas per settled trade, one-by-one: {g_one:,.0f}  ({tx_one:.2f} transactions per trade"
              + (f"; extrapolated from the sample: {g_one * args.trades:,.0f} gas, "
                 f"{round(tx_one * args.trades):,} transactions for {args.trades} trades)" if sampled else ")"))
        print(f"  (not charged to one-by-one: {n_price_batches} mark-update batches it would also need)")
        ratio = g_one / g_net
        print(f"ratio one-by-one / netted: {ratio:,.1f}x (target >= 50x)")
        print(f"total {time.perf_counter() - t_start:.1f}s; load average (1/5/15 min): "
              f"{' '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} cores")
    finally:
        for p in procs:
            p.stop()


if __name__ == "__main__":
    main()
