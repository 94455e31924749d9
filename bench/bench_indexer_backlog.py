"""Deposit events indexed per second from a backlog of 10,000 deposits on one chain.

The backlog is filled with JSON-RPC batch arrays of pre-signed transactions into an anvil
that mines only on demand (big blocks); then a fresh watcher + ledger (SQLite, or
$OMNICLEAR_DB_URL) indexes it from the vault's deployment block. Prints events/s.

    .venv/bin/python bench/bench_indexer_backlog.py [--deposits 10000]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from aggregator.config import database_url  # noqa: E402
from aggregator.db import init_db, make_engine  # noqa: E402
from aggregator.deposits import CURSOR_NAME, DepositSink  # noqa: E402
from aggregator.devnet import web3_for  # noqa: E402
from aggregator.ledger import Ledger  # noqa: E402
from bench._devchain import new_traders, rpc_batch, signed_deposit_txs, start_chain  # noqa: E402
from bridges.chain import ChainClient  # noqa: E402
from bridges.events import DEPOSIT_TOPIC  # noqa: E402
from bridges.watcher import EventWatcher  # noqa: E402


async def index(settings, c, db_url: str, expected: int) -> tuple[float, int]:
    engine = make_engine(db_url)
    init_db(engine)
    ledger = Ledger(engine, settings)
    client = ChainClient(c.name, c.rpc_url, c.chain_id)
    w = EventWatcher(client, DepositSink(ledger), name=CURSOR_NAME, address=c.vault, topic0=DEPOSIT_TOPIC,
                     confirmations=1, start_block=c.deploy_block, batch_blocks=10_000)
    t0 = time.perf_counter()
    while await w.poll_once():
        pass
    dt = time.perf_counter() - t0
    await client.close()
    return dt, ledger.deposit_count(c.chain_id)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--deposits", type=int, default=10_000)
    ap.add_argument("--traders", type=int, default=100)
    args = ap.parse_args()
    per = args.deposits // args.traders
    proc, settings, c = start_chain(gas_limit=300_000_000)
    try:
        w3 = web3_for(c.rpc_url)
        w3.provider.make_request("evm_setAutomine", [False])
        traders = new_traders(args.traders)
        rpc_batch(c.rpc_url, [("anvil_setBalance", [a.address, hex(10**20)]) for a in traders])
        t0 = time.perf_counter()
        raws = signed_deposit_txs(w3, c, traders, per, 10**6)
        t_sign = time.perf_counter() - t0
        t0 = time.perf_counter()
        for i in range(0, len(raws), 500):
            rpc_batch(c.rpc_url, [("eth_sendRawTransaction", [r]) for r in raws[i:i + 500]])
            w3.provider.make_request("evm_mine", [])
        while int(w3.provider.make_request("txpool_status", [])["result"]["pending"], 16):
            w3.provider.make_request("evm_mine", [])
        w3.provider.make_request("anvil_mine", ["0x2"])
        t_fill = time.perf_counter() - t0
        n = per * args.traders
        print(f"backlog: {n} deposits ({len(raws)} txs) signed in {t_sign:.1f}s, mined into "
              f"{w3.eth.block_number - c.deploy_block} blocks in {t_fill:.1f}s via JSON-RPC batches")
        db = database_url(Path(tempfile.mkdtemp()) / "bench.db")  # $OMNICLEAR_DB_URL wins
        dt, credited = asyncio.run(index(settings, c, db, n))
        assert credited == n, f"indexed {credited} of {n}"
        print(f"indexed {credited} deposit events in {dt:.2f}s = {credited / dt:,.0f} events/s "
              f"(db: {db.split(':')[0]})")
    finally:
        proc.stop()


if __name__ == "__main__":
    main()
