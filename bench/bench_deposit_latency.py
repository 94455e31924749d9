"""Deposit-to-credit latency p50/p99 against its floor (confirmations x block time).

Brings up the chains of chains.toml on free ports (interval mining at their block time),
runs the service (watchers + ledger), and sends deposits one after another on every chain
at once. Latency = the ledger's credit time minus the moment the sender saw the deposit's
receipt (i.e. inclusion). Prints p50/p99 per chain next to the floor.

    .venv/bin/python bench/bench_deposit_latency.py [--per-chain 60]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from eth_account import Account  # noqa: E402
from sqlmodel import Session, select  # noqa: E402

from aggregator import devnet  # noqa: E402
from aggregator.config import load_settings  # noqa: E402
from aggregator.db import make_engine  # noqa: E402
from aggregator.models import Deposit  # noqa: E402
from aggregator.service import Service  # noqa: E402
from aggregator.traders import deposit, fund_gas  # noqa: E402
from bridges.anvil import free_port  # noqa: E402


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


async def main(per_chain: int) -> None:
    settings = load_settings()
    settings = settings.with_ports({c.name: free_port() for c in settings.chains})
    work = Path(tempfile.mkdtemp())
    dep, procs = await asyncio.to_thread(devnet.up, settings, work, detach=False)
    svc = Service(settings, dep, make_engine(f"sqlite:///{work / 'bench.db'}"), port=free_port(), poll_interval=0.02)
    try:
        await svc.start()
        seen: dict[tuple[int, int], float] = {}

        def sender(c: devnet.ChainDeployment) -> None:
            w3 = devnet.web3_for(c.rpc_url)
            acct = Account.create()
            fund_gas(w3, acct.address)
            for _ in range(per_chain):
                r = deposit(w3, c, acct.key.to_0x_hex(), 10**c.token_decimals)
                seen[(c.chain_id, r.deposit_nonce)] = time.time()

        await asyncio.gather(*(asyncio.to_thread(sender, c) for c in dep.chains))
        deadline = time.monotonic() + 30
        while svc.ledger.deposit_count() < per_chain * len(dep.chains) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        with Session(svc.engine) as s:
            rows = s.exec(select(Deposit)).all()
        print(f"{'chain':<10} {'n':>4} {'conf':>4} {'block':>6} {'floor':>7} {'p50':>7} {'p99':>7}")
        for c in dep.chains:
            conf = settings.chain(c.chain_id)
            lat = [r.credited_at.timestamp() - seen[(r.chain_id, r.deposit_nonce)]
                   for r in rows if r.chain_id == c.chain_id]
            floor = conf.confirmations * conf.block_time
            print(f"{c.name:<10} {len(lat):>4} {conf.confirmations:>4} {conf.block_time:>5g}s {floor:>6.2f}s "
                  f"{statistics.median(lat):>6.3f}s {pct(lat, 99):>6.3f}s")
    finally:
        await svc.stop()
        for p in procs:
            p.stop()


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--per-chain", type=int, default=60)
    asyncio.run(main(ap.parse_args().per_chain))
