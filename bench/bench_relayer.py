"""Relayer throughput: messages delivered per second by one relayer on three local anvils.

Three automining anvils (a background thread adds an empty block every 0.1 s so
confirmations accrue), the settlement layer deployed, ``--batches`` batches committed on
the hub up front (three settlement messages each), then one in-process relayer (with the
devnet's in-process validators) is started and timed until every message is delivered.

    python -m bench.bench_relayer [--batches 40] [--db sqlite:///...]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import threading
import time
from pathlib import Path

from eth_account import Account

from aggregator.config import local_settings
from aggregator.db import make_engine
from aggregator.devnet import deploy_all, web3_for
from aggregator.traders import deposit, fund_gas
from bridges.anvil import free_port, start_anvil
from bridges.chain import ChainClient, NonceManager
from bridges.contracts import ensure_built
from bridges.messages import AccountDelta, BatchHeader, ChainSettlement, settlements_hash
from bridges.relay_store import DELIVERED, RelayStore
from bridges.relayer import RelayerConfig, build_relayer, close_relayer
from bridges.settle import submit_batch

IDS = (62000, 62001, 62002)


def _miner(urls: list[str], stop: threading.Event) -> None:
    w3s = [web3_for(u) for u in urls]
    while not stop.wait(0.1):
        for w3 in w3s:
            try:
                w3.provider.make_request("anvil_mine", ["0x1"])
            except Exception:
                pass


async def run(batches: int, db_url: str) -> dict[str, float]:
    ensure_built()
    procs = [start_anvil(free_port(), cid) for cid in IDS]
    stop_mining = threading.Event()
    try:
        settings = local_settings(("hub", IDS[0], procs[0].port, 6), ("arb", IDS[1], procs[1].port, 6),
                                  ("bnb", IDS[2], procs[2].port, 18), confirmations=2)
        dep = await asyncio.to_thread(deploy_all, settings, oracle=False)
        st = dep.settlement
        assert st is not None
        payer, payee = Account.create(), Account.create()
        arb = dep.chain("arb")
        await asyncio.to_thread(fund_gas, web3_for(arb.rpc_url), payer.address)
        await asyncio.to_thread(deposit, web3_for(arb.rpc_url), arb, payer.key.to_0x_hex(), 10**12)
        threading.Thread(target=_miner, args=([c.rpc_url for c in dep.chains], stop_mining), daemon=True).start()
        hub = dep.hub
        client = ChainClient("hub", hub.rpc_url, hub.chain_id)
        nonces = NonceManager()
        prev = bytes(32)
        t0 = time.perf_counter()
        for n in range(1, batches + 1):
            ss = [ChainSettlement(IDS[0], n),
                  ChainSettlement(IDS[1], n, deltas=(AccountDelta(payer.address, -1), AccountDelta(payee.address, 1))),
                  ChainSettlement(IDS[2], n)]
            header = BatchHeader(n, prev, bytes(32), bytes(32), settlements_hash(ss))
            await submit_batch(client, st.settlement_hub, header, ss, st.sequencer_key, nonces=nonces)
            prev = header.hash
        submit_s = time.perf_counter() - t0
        await client.close()
        store = RelayStore(make_engine(db_url))
        store.create_tables()
        relayer = build_relayer(dep, store, config=RelayerConfig())
        stop = asyncio.Event()
        total = 3 * batches
        t0 = time.perf_counter()
        task = asyncio.create_task(relayer.run(stop))
        while store.counts()[DELIVERED] < total:
            await asyncio.sleep(0.05)
            if time.perf_counter() - t0 > 600:
                raise RuntimeError("relayer did not finish in 600 s")
        elapsed = time.perf_counter() - t0
        stop.set()
        await asyncio.wait_for(task, 60)
        lat = relayer.stats.latency
        await close_relayer(relayer)
        store.engine.dispose()
        return {"messages": total, "seconds": elapsed, "per_second": total / elapsed,
                "mean_latency_s": lat.sum / max(1, lat.total), "submit_batches_s": submit_s}
    finally:
        stop_mining.set()
        for p in procs:
            p.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batches", type=int, default=40)
    ap.add_argument("--db", help="database URL (default: a fresh SQLite file)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        db = args.db or f"sqlite:///{Path(d) / 'relay.db'}"
        r = asyncio.run(run(args.batches, db))
    print(f"relayer: {r['messages']} messages delivered in {r['seconds']:.2f} s = {r['per_second']:.1f} msg/s "
          f"(one relayer, 3 automining anvils + an empty block every 0.1 s, in-process validators, confirmations 2; "
          f"mean seen→delivered {r['mean_latency_s']:.2f} s; committing {args.batches} batches took "
          f"{r['submit_batches_s']:.2f} s)")


if __name__ == "__main__":
    main()
