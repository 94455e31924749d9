"""Withdrawal latency: signed request -> paid on the destination chain, p50/p99 next to its floor.

Brings up the chains of chains.toml on free ports (interval mining at their block time),
runs the service (watchers, sequencer, batcher) and the relayer in this process, credits
traders who deposited on one chain, then sends signed withdrawals to *another* chain at a
steady pace. Half of the traders hold on the hub and withdraw on the others, half the
other way round, so some flows net out and some need a token-bridge leg.

Latency = the moment the destination vault's ``WithdrawalPaid`` log is first seen (the
chain is polled every 20 ms) minus the moment just before the signed request was sent.
Floor (as the issue defines it) = batch interval + confirmations x block time on the hub
and on the destination. A withdrawal whose chain must first receive tokens through the
bridge also waits for the sending chain's confirmations (printed as "bridge floor").

    .venv/bin/python bench/bench_withdrawal_latency.py [--traders 24] [--batch-interval 1.0]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aiohttp  # noqa: E402
from eth_account import Account  # noqa: E402
from web3 import Web3  # noqa: E402

from aggregator import devnet, eip712  # noqa: E402
from aggregator.config import load_settings  # noqa: E402
from aggregator.db import make_engine  # noqa: E402
from aggregator.service import Service  # noqa: E402
from aggregator.traders import deposit, fund_gas  # noqa: E402
from bridges.anvil import free_port  # noqa: E402
from bridges.events import WITHDRAWAL_PAID_TOPIC  # noqa: E402
from bridges.relay_store import RelayStore  # noqa: E402
from bridges.relayer import build_relayer, close_relayer  # noqa: E402


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


async def watch_paid(dep: devnet.Deployment, seen: dict[str, float], stop: asyncio.Event) -> None:
    """Record when each WithdrawalPaid log first appears on any chain (20 ms polls)."""
    w3s = {c.chain_id: Web3(Web3.HTTPProvider(c.rpc_url)) for c in dep.chains}
    start = {cid: w3.eth.block_number for cid, w3 in w3s.items()}
    while not stop.is_set():
        for c in dep.chains:
            w3 = w3s[c.chain_id]
            head = await asyncio.to_thread(lambda: w3.eth.block_number)
            if head < start[c.chain_id]:
                continue
            logs = await asyncio.to_thread(w3.eth.get_logs, {"address": c.vault, "topics": [WITHDRAWAL_PAID_TOPIC],
                                                             "fromBlock": start[c.chain_id], "toBlock": head})
            now = time.monotonic()
            for lg in logs:
                seen.setdefault("0x" + bytes(lg["topics"][1]).hex(), now)
            start[c.chain_id] = head + 1
        await asyncio.sleep(0.02)


async def main(traders: int, batch_interval: float, pace: float, seed: int) -> None:
    rng = random.Random(seed)
    settings = load_settings()
    settings = settings.with_ports({c.name: free_port() for c in settings.chains})
    work = Path(tempfile.mkdtemp(prefix="omniclear-wlat-"))
    dep, procs = await asyncio.to_thread(devnet.up, settings, work, detach=False)
    engine = make_engine(f"sqlite:///{work / 'bench.db'}")
    svc = Service(settings, dep, engine, port=free_port(), oracle=False, journal_dir=work / "journal",
                  tick_interval=0, batch_interval=batch_interval, poll_interval=0.02)
    stop = asyncio.Event()
    relayer = None
    tasks: list[asyncio.Task] = []
    try:
        await svc.start()
        store = RelayStore(engine)
        store.create_tables()
        relayer = build_relayer(dep, store)
        tasks.append(asyncio.create_task(relayer.run(stop)))
        hub = dep.hub
        others = [c for c in dep.chains if not c.hub]
        plan = []  # (account, home chain, destination chain)
        for i in range(traders):
            acct = Account.create()
            other = others[(i // 2) % len(others)]
            home, dest = (hub, other) if i % 2 == 0 else (other, hub)
            plan.append((acct, home, dest))
        for acct, home, _ in plan:
            w3 = devnet.web3_for(home.rpc_url)
            await asyncio.to_thread(fund_gas, w3, acct.address)
            await asyncio.to_thread(deposit, w3, home, acct.key.to_0x_hex(), 1_000 * 10**home.token_decimals)
        seq = svc.sequencer.sequencer
        deadline = time.monotonic() + 60
        while any((seq.account(a.address) or {}).get("total_collateral", 0) < 1_000 * 10**6 for a, _, _ in plan):
            if time.monotonic() > deadline:
                raise TimeoutError("deposits not credited")
            await asyncio.sleep(0.05)
        while seq.pending_batch_preview().is_empty() is False or (seq.last_batch() and any(
                seq.last_settled_batch(c) < seq.last_batch().number for c in seq.last_batch().domains)):
            await asyncio.sleep(0.1)  # let the deposits' own batches settle first

        seen: dict[str, float] = {}
        tasks.append(asyncio.create_task(watch_paid(dep, seen, stop)))
        sent: dict[str, tuple[float, str, str]] = {}
        domain = svc.sequencer.domain
        async with aiohttp.ClientSession() as http:
            for acct, home, dest in plan:
                amount = rng.randint(100, 900) * 10**dest.token_decimals
                msg = eip712.Withdrawal(acct.address, dest.token, amount, dest.chain_id, acct.address,
                                        rng.getrandbits(63), int(time.time()) + 600)
                payload = {"withdrawal": eip712.message_to_dict(msg),
                           "signature": "0x" + eip712.sign(bytes(acct.key), domain, msg).hex()}
                t0 = time.monotonic()
                async with http.post(f"{svc.url}/v1/withdrawals", json=payload) as r:
                    body = await r.json()
                if r.status != 200:
                    raise RuntimeError(f"withdrawal refused: {body}")
                sent[body["result"]["withdrawal_id"]] = (t0, home.name, dest.name)
                await asyncio.sleep(rng.expovariate(1 / pace))
        deadline = time.monotonic() + 120
        while any(w not in seen for w in sent):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{sum(w not in seen for w in sent)} withdrawals not paid in time")
            await asyncio.sleep(0.05)

        lat = [seen[w] - t0 for w, (t0, _, _) in sent.items()]
        conf = {c.chain_id: settings.chain(c.chain_id) for c in dep.chains}
        hub_part = conf[hub.chain_id].confirmations * conf[hub.chain_id].block_time
        print(f"withdrawal latency, signed request -> paid on the destination chain ({len(lat)} withdrawals, "
              f"batch interval {batch_interval:g}s, mean gap between requests {pace:g}s)")
        print(f"{'destination':<12} {'n':>3} {'floor':>7} {'bridge floor':>13} {'p50':>7} {'p99':>7} {'max':>7}")
        for dest in dep.chains:
            xs = [seen[w] - t0 for w, (t0, _, d) in sent.items() if d == dest.name]
            if not xs:
                continue
            dest_part = conf[dest.chain_id].confirmations * conf[dest.chain_id].block_time
            floor = batch_interval + hub_part + (0 if dest.hub else dest_part)
            src = max(conf[c.chain_id].confirmations * conf[c.chain_id].block_time for c in dep.chains
                      if c.chain_id != dest.chain_id)
            print(f"{dest.name:<12} {len(xs):>3} {floor:>6.2f}s {floor + src:>12.2f}s {statistics.median(xs):>6.2f}s "
                  f"{pct(xs, 99):>6.2f}s {max(xs):>6.2f}s")
        worst_floor = batch_interval + hub_part + max(conf[c.chain_id].confirmations * conf[c.chain_id].block_time
                                                      for c in dep.chains if not c.hub)
        print(f"{'all':<12} {len(lat):>3} {worst_floor:>6.2f}s {'':>13} {statistics.median(lat):>6.2f}s "
              f"{pct(lat, 99):>6.2f}s {max(lat):>6.2f}s   target: p99 <= floor + 1 s = {worst_floor + 1:.2f}s")
        net = seq.netting()
        print(f"netting over the run: gross {net['gross']:,} bridged {net['bridged']:,} (1e-6 USDC), "
              f"efficiency {net['efficiency_bps'] / 100:.2f}% over {net['batches']} batches")
    finally:
        stop.set()
        for t in tasks:
            await asyncio.gather(t, return_exceptions=True)
        if relayer is not None:
            await close_relayer(relayer)
        await svc.stop()
        engine.dispose()
        for p in procs:
            p.stop()


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--traders", type=int, default=24)
    ap.add_argument("--batch-interval", type=float, default=1.0)
    ap.add_argument("--pace", type=float, default=0.25, help="mean seconds between withdrawal requests")
    ap.add_argument("--seed", type=int, default=11)
    a = ap.parse_args()
    asyncio.run(main(a.traders, a.batch_interval, a.pace, a.seed))
