"""Netting efficiency of the settlement batches on a seeded multi-chain workload (pure core).

    python bench/bench_netting.py [--traders 300] [--rounds 6] [--chains 3] [--seed 7] [--no-baseline]

Workload: ``--traders`` traders, each with a home chain (random), on ``--chains`` chains
(31337 = hub, 31338, 31339, ...; the third has an 18-decimal token as BNB's USDC). Each
round: about half the traders deposit on their home chain, ``traders / 2`` random
ETH-PERP trades between random pairs at +-5 USD around a mark that moves within the
round and between rounds, then about half the traders withdraw 10-100% of their free
collateral on a chain *other than* their home chain; then ``CloseBatch``. The core
(``aggregator.core.sequencer``, dummy signatures as in ``bench_replay``) books every flow
on the accounts' primary chains and the batch builder nets it (``aggregator.core.batch``).

Printed per batch and in total: gross cross-chain obligations (what would cross chains if
every command were settled on its own right after it), bridged volume (the legs the batch
actually moves) and bridged/gross (target <= 20%), as defined in the batch builder's
docstring. For comparison, unless ``--no-baseline``, the same command stream is replayed on
a second sequencer that closes a batch after *every* command (netting disabled: each
obligation settled alone); its bridged volume is measured, and equals gross.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from pathlib import Path

import msgspec

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from aggregator import eip712  # noqa: E402
from aggregator.core import commands as C  # noqa: E402
from aggregator.core.batch import Batch, SettlementChain  # noqa: E402
from aggregator.core.instruments import InstrumentRegistry  # noqa: E402
from aggregator.core.risk import RiskParams  # noqa: E402
from aggregator.core.sequencer import Sequencer, SequencerConfig  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
T0 = 1_796_256_000_000  # 2026-12-03T00:00:00Z
SIG = b"\x07" * 65  # the core does not re-verify signatures
USD = 10**6
TICK = 10_000
HUB = 31337


def addr(i: int) -> str:
    return eip712.to_checksum_address("0x" + f"{0xBA7C0000 + i:040x}")


def chains_for(n: int) -> tuple[SettlementChain, ...]:
    return tuple(SettlementChain(HUB + i, addr(0x70C0 + i), 18 if i == 2 else 6) for i in range(n))


def make_config(chains: tuple[SettlementChain, ...]) -> SequencerConfig:
    reg = InstrumentRegistry.from_toml((ROOT / "aggregator" / "instruments.toml").read_text())
    return SequencerConfig(registry=reg, fee_account=addr(1), insurance_account=addr(2), hub_chain_id=HUB,
                           default_risk=RiskParams(im_bps=1000, mm_bps=500), max_open_orders=50,
                           settlement_chains=chains)


class Gen:
    """A live sequencer that validates the stream while it is generated; records the commands."""

    def __init__(self, cfg: SequencerConfig) -> None:
        self.seq = Sequencer(cfg)
        self.cmds: list[C.Command] = []
        self.n = 0
        self.now = T0
        self.nonce = 0

    def apply(self, make):  # noqa: ANN001, ANN201 - make(seq, ts) -> Command
        self.n += 1
        self.now += 50
        cmd = make(self.n, self.now)
        self.cmds.append(cmd)
        return self.seq.apply(cmd)

    def nxt(self) -> int:
        self.nonce += 1
        return self.nonce


def generate(traders: int, rounds: int, n_chains: int, seed: int) -> tuple[list[C.Command], list[Batch], dict]:
    rng = random.Random(seed)
    chains = chains_for(n_chains)
    ids = [c.chain_id for c in chains]
    scale = {c.chain_id: c.scale for c in chains}
    token = {c.chain_id: c.token for c in chains}
    g = Gen(make_config(chains))
    accts = [addr(0x1000 + i) for i in range(traders)]
    home = {a: rng.choice(ids) for a in accts}
    stats = {"deposits": 0, "deposited": 0, "trades": 0, "withdrawals": 0, "withdrawn": 0, "rejected": 0}
    px = 3000 * USD
    dep_nonce = 0

    def price(p: int) -> None:
        assert g.apply(lambda s, t: C.PriceUpdate(s, t, "ETH-USD", p * 100, 0, t // 1000, "ok")).accepted

    def move(p: int, bps: int) -> int:
        return max(100 * USD, p * (10_000 + rng.randint(-bps, bps)) // 10_000 // TICK * TICK)

    price(px)
    batches: list[Batch] = []
    per_round: list[dict] = []
    for _ in range(rounds):
        r = {"deposits": 0, "deposited": 0, "withdrawals": 0, "withdrawn": 0, "trades": 0}
        for a in accts:
            if rng.random() < 0.5 or g.seq.account(a) is None and rng.random() < 0.8:
                dep_nonce += 1
                amt = rng.randint(500, 20_000) * USD
                c = home[a]
                assert g.apply(lambda s, t, c=c, n=dep_nonce, a=a, v=amt: C.DepositCredit(s, t, c, n, a, v)).accepted
                r["deposits"] += 1
                r["deposited"] += amt
        for i in range(traders // 2):
            if i and i % 25 == 0:
                px = move(px, 30)
                price(px)
            maker, taker = rng.sample(accts, 2)
            side = rng.choice((1, 2))
            size = rng.choice((100, 200, 500, 1000, 2000, 5000))
            p = px + rng.randint(-5, 5) * USD
            exp = g.now // 1000 + 3600
            mo = eip712.Order(maker, "ETH-PERP", side, 1, 1, 1, False, p, size, 0, g.nxt(), exp)
            to = eip712.Order(taker, "ETH-PERP", 3 - side, 1, 2, 1, False, p, size, 0, g.nxt(), exp)
            if g.apply(lambda s, t, o=mo: C.PlaceOrder(s, t, o.account, o, SIG)).accepted:
                out = g.apply(lambda s, t, o=to: C.PlaceOrder(s, t, o.account, o, SIG))
                if out.accepted and (out.result or {}).get("filled", 0) > 0:
                    r["trades"] += 1
                else:
                    stats["rejected"] += 1
                ca = eip712.CancelAll(account=maker, instrument="", nonce=g.nxt(), expiry=exp)
                g.apply(lambda s, t, c=ca: C.CancelAllOrders(s, t, c.account, c, SIG))
            else:
                stats["rejected"] += 1
        px = move(px, 200)
        price(px)
        for a in accts:
            acct = g.seq.account(a)
            if acct is None or rng.random() < 0.5:
                continue
            amt = int(acct["free_collateral"]) * rng.randint(10, 100) // 100
            if amt <= 0:
                continue
            dest = rng.choice([c for c in ids if c != home[a]])
            w = eip712.Withdrawal(account=a, token=token[dest], amount=amt * scale[dest], destination_chain_id=dest,
                                  recipient=a, nonce=g.nxt(), expiry=g.now // 1000 + 3600)
            out = g.apply(lambda s, t, w=w: C.Withdraw(s, t, w.account, w, SIG))
            assert out.accepted, out
            r["withdrawals"] += 1
            r["withdrawn"] += amt
        out = g.apply(lambda s, t: C.CloseBatch(s, t, s.to_bytes(32, "big")))
        assert out.accepted, out
        b = g.seq.last_batch()
        batches.append(b)
        per_round.append(r)
        for c in ids:  # the vaults applied it (the core only needs the report to free the view)
            assert g.apply(lambda s, t, c=c, n=b.number: C.BatchSettled(s, t, c, n)).accepted
        for k in r:
            stats[k] += r[k]
    assert g.seq.total_balance() == g.seq.deposited - g.seq.withdrawn
    stats["per_round"] = per_round
    return g.cmds, batches, stats


def unnetted(cfg: SequencerConfig, cmds: list[C.Command]) -> tuple[int, int, int]:
    """Replay ``cmds`` closing a batch after every command; return (gross, bridged, batches)."""
    sq = Sequencer(cfg)
    seq = 0
    gross = bridged = n = 0
    domains = [c.chain_id for c in cfg.settlement_chains]
    for cmd in cmds:
        if type(cmd) in (C.CloseBatch, C.BatchSettled):
            continue
        seq += 1
        cmd = msgspec.structs.replace(cmd, seq=seq)
        out = sq.apply(cmd)
        if not out.accepted or type(cmd) in (C.CancelAllOrders,):
            continue
        seq += 1
        assert sq.apply(C.CloseBatch(seq, cmd.ts_ms, seq.to_bytes(32, "big"))).accepted
        b = sq.last_batch()
        gross += b.netting.gross
        bridged += b.netting.bridged
        n += 1
        for d in domains:
            seq += 1
            assert sq.apply(C.BatchSettled(seq, cmd.ts_ms, d, b.number)).accepted
    return gross, bridged, n


def pct(a: int, b: int) -> str:
    return f"{a / b:6.1%}" if b else "   n/a"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--traders", type=int, default=300)
    ap.add_argument("--rounds", type=int, default=6, help="batches")
    ap.add_argument("--chains", type=int, default=3)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--no-baseline", action="store_true", help="skip the replay with netting disabled")
    args = ap.parse_args()
    t = time.perf_counter()
    cmds, batches, st = generate(args.traders, args.rounds, args.chains, args.seed)
    gen_s = time.perf_counter() - t
    print(f"workload: seed {args.seed}, {args.traders} traders on {args.chains} chains, {args.rounds} batches, "
          f"{len(cmds):,} commands in {gen_s:.1f}s: {st['deposits']} deposits ({st['deposited'] / USD:,.0f} USD), "
          f"{st['trades']} trades ({st['rejected']} attempts rejected), {st['withdrawals']} withdrawals on a chain "
          f"other than the home chain ({st['withdrawn'] / USD:,.0f} USD)")
    print(f"{'batch':>5} {'deposits USD':>14} {'withdrawals USD':>16} {'gross USD':>14} {'bridged USD':>13} "
          f"{'legs':>4} {'bridged/gross':>13}")
    for b, r in zip(batches, st["per_round"]):
        n = b.netting
        print(f"{b.number:5d} {r['deposited'] / USD:14,.0f} {r['withdrawn'] / USD:16,.0f} {n.gross / USD:14,.2f} "
              f"{n.bridged / USD:13,.2f} {len(b.legs):4d} {pct(n.bridged, n.gross):>13}")
    cum = batches[-1].cumulative
    print(f"{'total':>5} {st['deposited'] / USD:14,.0f} {st['withdrawn'] / USD:16,.0f} {cum.gross / USD:14,.2f} "
          f"{cum.bridged / USD:13,.2f} {sum(len(b.legs) for b in batches):4d} {pct(cum.bridged, cum.gross):>13}")
    print(f"netting efficiency 1 - bridged/gross: {cum.efficiency_bps / 100:.2f}%  "
          f"(bridged/gross {cum.bridged / cum.gross:.1%}, target <= 20%)")
    if not args.no_baseline:
        t = time.perf_counter()
        g, b, n = unnetted(make_config(chains_for(args.chains)), cmds)
        print(f"netting disabled (same commands, a batch after every command, {n:,} batches, "
              f"{time.perf_counter() - t:.1f}s): gross {g / USD:,.2f} USD, bridged {b / USD:,.2f} USD, bridged/gross {pct(b, g).strip()}")
    print(f"load average (1/5/15 min): {' '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
