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

    .venv/bin/python bench/bench_withdrawal_latency.py [--traders 24] [--batch-interval 1.0] [--liquidity 0]

``--liquidity N`` runs the service with a liquidity account that deposited N USDC on every
chain (``SequencerConfig.liquidity_account``): a batch then serves a chain's net inflow from
that account's balance there instead of bridging, so fewer withdrawals wait for a mint.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import queue
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

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


def watch_paid(chains: list[tuple[str, str]], out: "multiprocessing.Queue[tuple[str, float]]", stop: Any) -> None:
    """Report when each WithdrawalPaid log first appears on any chain (20 ms polls).

    Runs in its own process (``chains``: RPC URL and vault per chain), so the measurement
    neither blocks nor shares a GIL with the service and the relayer it measures; the
    timestamps are ``time.monotonic()``, one clock for every process of the machine.
    """
    w3s = [Web3(Web3.HTTPProvider(url)) for url, _ in chains]
    # One log filter per chain: one eth_getFilterChanges per chain and poll.
    filters = [w3.eth.filter({"address": vault, "topics": [WITHDRAWAL_PAID_TOPIC], "fromBlock": w3.eth.block_number})
               for w3, (_, vault) in zip(w3s, chains)]
    out.put(("ready", time.monotonic()))
    while not stop.is_set():
        for f in filters:
            logs = f.get_new_entries()
            now = time.monotonic()
            for lg in logs:
                out.put(("0x" + bytes(lg["topics"][1]).hex(), now))
        stop.wait(0.02)


async def collect_paid(out: "multiprocessing.Queue[tuple[str, float]]", seen: dict[str, float],
                       stop: asyncio.Event) -> None:
    """Move the watcher process's sightings into ``seen`` (first sighting wins)."""
    while True:
        try:
            wid, t = await asyncio.to_thread(out.get, True, 0.1)
        except queue.Empty:
            if stop.is_set():
                return
            continue
        seen.setdefault(wid, t)


def report(settings, dep: devnet.Deployment, svc: Service, store: RelayStore, batch_interval: float, pace: float,
           sent: dict[str, tuple[float, str, str]], seen: dict[str, float]) -> None:
    """Print p50/p99 per destination and per kind (direct or behind a bridge leg), the floors,
    and where the time went (medians of each phase)."""
    seq = svc.sequencer.sequencer
    batcher = svc.batcher
    wall_to_mono = time.monotonic() - time.time()
    conf = {c.chain_id: settings.chain(c.chain_id) for c in dep.chains}
    ids = {c.name: c.chain_id for c in dep.chains}
    hub = dep.hub

    def depth(cid: int) -> float:
        return conf[cid].confirmations * conf[cid].block_time

    hub_part = depth(hub.chain_id)
    rows = []  # (latency, dest name, bridged, phases)
    for w, (t0, _, dname) in sent.items():
        info = seq.withdrawal(w) or {}
        n = info.get("batch_number")
        batch = seq.batch(n) if n else None
        bridged = bool(batch and any(g.to_chain == ids[dname] for g in batch.legs))
        phases: dict[str, float] = {}
        rec = batcher.records.get(n) if batcher and n else None
        if rec is not None and rec.submitted_at is not None:
            closed, committed = rec.closed_at + wall_to_mono, rec.submitted_at + wall_to_mono
            phases["until close"] = closed - t0
            phases["hub commit"] = committed - closed
            mid = rec.message_ids.get(ids[dname])
            row = store.get(mid) if mid else None
            if row is not None:
                picked = row.created_at + wall_to_mono
                phases["hub confirm"] = picked - committed
                phases["deliver"] = seen[w] - picked
        rows.append((seen[w] - t0, dname, bridged, phases))
    print(f"withdrawal latency, signed request -> WithdrawalPaid first seen on the destination chain "
          f"({len(rows)} withdrawals, batch interval {batch_interval:g}s, mean gap between requests {pace:g}s)")
    print("floor (the issue's definition) = batch interval + confirmations x block time on the hub and on the "
          "destination (once if the destination is the hub);")
    print("  bridge floor = floor + the source chain's confirmations x block time (a destination that must first "
          "receive tokens waits for the sending chain's settlement to be confirmed there).")
    print("  Not in either floor: block inclusion of each transaction (<= 1 block each: hub commit, payment, and "
          "for a bridge leg the source settlement and the mint); not waited for by the measurement: the "
          "destination's own confirmations of the payment.")
    print("  kind: bridged = the withdrawal's batch moves tokens into its destination through the bridge; "
          "its target is the bridge floor + 1 s, a direct one's the floor + 1 s.")
    print(f"{'destination':<12} {'kind':<8} {'n':>3} {'floor':>7} {'bridge floor':>13} {'p50':>7} {'p99':>7} "
          f"{'max':>7} {'target p99':>11}")

    def line(name: str, kind: str, xs: list[float], floor: float, bridge: float | None, target: float) -> None:
        bf = f"{bridge:>12.2f}s" if bridge is not None else f"{'':>13}"
        verdict = "met" if pct(xs, 99) <= target else "missed"
        print(f"{name:<12} {kind:<8} {len(xs):>3} {floor:>6.2f}s {bf} {statistics.median(xs):>6.2f}s "
              f"{pct(xs, 99):>6.2f}s {max(xs):>6.2f}s {target:>9.2f}s {verdict}")

    for dest in dep.chains:
        dest_part = 0.0 if dest.hub else depth(dest.chain_id)
        floor = batch_interval + hub_part + dest_part
        src = max(depth(c.chain_id) for c in dep.chains if c.chain_id != dest.chain_id)
        for kind, want in (("direct", False), ("bridged", True)):
            xs = [r[0] for r in rows if r[1] == dest.name and r[2] == want]
            if xs:
                line(dest.name, kind, xs, floor, floor + src, (floor + src if want else floor) + 1)
    lat = [r[0] for r in rows]
    worst_floor = batch_interval + hub_part + max(depth(c.chain_id) for c in dep.chains if not c.hub)
    direct = [r[0] for r in rows if not r[2]]
    if direct:
        line("all", "direct", direct, worst_floor, None, worst_floor + 1)
    line("all", "", lat, worst_floor, None, worst_floor + 1)
    names = ("until close", "hub commit", "hub confirm", "deliver")
    print("where the time went (median seconds): " + ", ".join(names)
          + " (hub confirm = hub receipt -> relayer has the confirmed Dispatch; deliver = that -> paid seen)")
    for kind, want in (("direct", False), ("bridged", True)):
        ph = [r[3] for r in rows if r[2] == want and len(r[3]) == len(names)]
        if ph:
            print(f"  {kind:<8} " + "  ".join(f"{k} {statistics.median(p[k] for p in ph):.2f}s" for k in names))


def print_trace(dep: devnet.Deployment, svc: Service, store: RelayStore, relayer, t_start: float) -> None:
    """Every batch (closed, committed on the hub) and every relayed message (picked up
    confirmed, submitted, delivered) in seconds since the first withdrawal request."""
    names = {c.chain_id: c.name for c in dep.chains}
    print("trace (seconds since the first request):")
    for n, rec in sorted(svc.batcher.records.items()):
        if rec.submitted_at is None or rec.submitted_at < t_start:
            continue
        print(f"  batch {n}: closed {rec.closed_at - t_start:6.2f} committed {rec.submitted_at - t_start:6.2f} "
              f"withdrawals {rec.withdrawals}")
    for m in sorted(store.list(limit=10_000), key=lambda m: m.created_at):
        if m.created_at < t_start:
            continue
        kind = "settle" if m.origin == dep.hub.chain_id and m.sender.endswith(
            dep.settlement.settlement_hub.lower()[2:]) else "mint"
        sub = f"{m.submitted_at - t_start:6.2f}" if m.submitted_at else "     -"
        dl = f"{m.delivered_at - t_start:6.2f}" if m.delivered_at else "     -"
        print(f"  {kind:<6} {names[m.origin]:>8}->{names[m.destination]:<8} #{m.nonce:<3} picked "
              f"{m.created_at - t_start:6.2f} submitted {sub} delivered {dl} {m.status} retries {m.retries}")
    print(f"  relayer retries by reason: {relayer.stats.retries}")


async def loop_lag(lags: list[float], stop: asyncio.Event) -> None:
    """Record how late a 10 ms sleep wakes up: the event loop's own delay (CPU, blocking calls)."""
    while not stop.is_set():
        t = time.monotonic()
        await asyncio.sleep(0.01)
        lags.append(time.monotonic() - t - 0.01)


async def main(traders: int, batch_interval: float, pace: float, seed: int, trace: bool = False,
               liquidity: int = 0) -> None:
    rng = random.Random(seed)
    settings = load_settings()
    settings = settings.with_ports({c.name: free_port() for c in settings.chains})
    work = Path(tempfile.mkdtemp(prefix="omniclear-wlat-"))
    dep, procs = await asyncio.to_thread(devnet.up, settings, work, detach=False)
    engine = make_engine(f"sqlite:///{work / 'bench.db'}")
    lp = Account.create() if liquidity else None
    svc = Service(settings, dep, engine, port=free_port(), oracle=False, journal_dir=work / "journal",
                  tick_interval=0, batch_interval=batch_interval, poll_interval=0.02,
                  liquidity_account=lp.address if lp else None)
    stop = asyncio.Event()
    relayer = None
    tasks: list[asyncio.Task] = []
    watcher: Any = None
    collector: asyncio.Task | None = None
    collect_stop = asyncio.Event()
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
        if lp is not None:
            for c in dep.chains:
                w3 = devnet.web3_for(c.rpc_url)
                await asyncio.to_thread(fund_gas, w3, lp.address)
                await asyncio.to_thread(deposit, w3, c, lp.key.to_0x_hex(), liquidity * 10**c.token_decimals)
        seq = svc.sequencer.sequencer
        deadline = time.monotonic() + 60
        while any((seq.account(a.address) or {}).get("total_collateral", 0) < 1_000 * 10**6 for a, _, _ in plan) or (
                lp is not None and (seq.account(lp.address) or {}).get("total_collateral", 0)
                < liquidity * 10**6 * len(dep.chains)):
            if time.monotonic() > deadline:
                raise TimeoutError("deposits not credited")
            await asyncio.sleep(0.05)
        while seq.pending_batch_preview().is_empty() is False or (seq.last_batch() and any(
                seq.last_settled_batch(c) < seq.last_batch().number for c in seq.last_batch().domains)):
            await asyncio.sleep(0.1)  # let the deposits' own batches settle first

        t_start = time.time()
        lags: list[float] = []
        tasks.append(asyncio.create_task(loop_lag(lags, stop)))
        seen: dict[str, float] = {}
        mp = multiprocessing.get_context("spawn")
        paid_q = mp.Queue()
        watch_stop = mp.Event()
        watcher = mp.Process(target=watch_paid, args=([(c.rpc_url, c.vault) for c in dep.chains], paid_q, watch_stop),
                             daemon=True)
        watcher.start()
        await asyncio.to_thread(paid_q.get, True, 60)  # its filters are in place
        collector = asyncio.create_task(collect_paid(paid_q, seen, collect_stop))
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

        report(settings, dep, svc, store, batch_interval, pace, sent, seen)
        if trace:
            print_trace(dep, svc, store, relayer, t_start)
            print(f"  event loop lag (10 ms sleeps): p50 {statistics.median(lags) * 1000:.1f} ms, "
                  f"p99 {pct(lags, 99) * 1000:.1f} ms, max {max(lags) * 1000:.0f} ms, "
                  f"late by {sum(lags):.1f} s in total over {time.time() - t_start:.1f} s")
        net = seq.netting()
        print(f"netting over the run: gross {net['gross']:,} bridged {net['bridged']:,} served from the liquidity "
              f"account {net.get('buffered', 0):,} (1e-6 USDC), efficiency {net['efficiency_bps'] / 100:.2f}% "
              f"over {net['batches']} batches" + (f"; liquidity {liquidity:,} USDC per chain" if liquidity else ""))
    finally:
        if watcher is not None:
            watch_stop.set()
            watcher.join(timeout=5)
        if collector is not None:
            collect_stop.set()
            await asyncio.gather(collector, return_exceptions=True)
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
    ap.add_argument("--trace", action="store_true", help="also print every batch and relayed message on a timeline")
    ap.add_argument("--liquidity", type=int, default=0,
                    help="USDC a liquidity account deposits on every chain (0: none, every net is bridged)")
    a = ap.parse_args()
    asyncio.run(main(a.traders, a.batch_interval, a.pace, a.seed, a.trace, a.liquidity))
