"""Relayer fixtures: three anvils with the settlement layer, batches, a miner, relayer processes."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from eth_account import Account
from web3 import Web3

from aggregator.config import Settings, local_settings
from aggregator.devnet import ChainDeployment, Deployment, deploy_all, web3_for
from aggregator.traders import deposit, fund_gas
from bridges.anvil import AnvilProcess, free_port, start_anvil, stop_pid
from bridges.contracts import contract, ensure_built
from bridges.messages import (
    AccountDelta,
    BatchHeader,
    BridgeTransfer,
    ChainSettlement,
    settlements_hash,
)
from bridges.relay_store import PROCESS_TOPIC

ROOT = Path(__file__).resolve().parents[2]
HUB, ARB, BNB = 61000, 61001, 61002
USD = 10**6  # canonical unit


class Miner:
    """Mines an empty block on each enabled chain every ``interval`` (automine handles txs)."""

    def __init__(self, urls: dict[int, str], interval: float = 0.1) -> None:
        self.w3 = {cid: web3_for(u) for cid, u in urls.items()}
        self.enabled = {cid: True for cid in urls}
        self.interval = interval
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            for cid, w3 in self.w3.items():
                if self.enabled[cid]:
                    try:
                        w3.provider.make_request("anvil_mine", ["0x1"])
                    except Exception:
                        pass

    def start(self) -> "Miner":
        self._t.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._t.join(timeout=5)


@dataclass
class System:
    settings: Settings
    dep: Deployment
    procs: list[AnvilProcess]
    dir: Path
    miner: Miner
    traders: dict[str, str] = field(default_factory=dict)  # name -> key
    headers: list[BatchHeader] = field(default_factory=list)

    @property
    def deployment_path(self) -> Path:
        return self.dir / "deployment.json"

    def chain(self, cid: int) -> ChainDeployment:
        return self.dep.chain(cid)

    def w3(self, cid: int) -> Web3:
        # One Web3 per chain: creating many makes web3's session cache evict (and lock) under load.
        cache = self.__dict__.setdefault("_w3", {})
        if cid not in cache:
            cache[cid] = web3_for(self.chain(cid).rpc_url)
        return cache[cid]

    def addr(self, trader: str) -> str:
        return str(Account.from_key(self.traders[trader]).address)

    def vault_balance(self, cid: int, trader: str) -> int:
        c = self.chain(cid)
        return int(contract(self.w3(cid), "CollateralVault", c.vault).functions.balanceOf(self.addr(trader), c.token).call())

    def holdings(self, cid: int) -> tuple[int, int]:
        c = self.chain(cid)
        w3 = self.w3(cid)
        held = contract(w3, "CollateralToken", c.token).functions.balanceOf(c.vault).call()
        total = contract(w3, "CollateralVault", c.vault).functions.totalBalance(c.token).call()
        return int(held), int(total)

    def next_header(self, settlements: list[ChainSettlement]) -> BatchHeader:
        prev = self.headers[-1].hash if self.headers else bytes(32)
        n = len(self.headers) + 1
        h = BatchHeader(n, prev, bytes([n % 256]) * 32, bytes([(n + 1) % 256]) * 32, settlements_hash(settlements))
        return h

    def process_counts(self) -> Counter[str]:
        """Message id → number of Process events over every chain's Mailbox."""
        out: Counter[str] = Counter()
        for c in self.dep.chains:
            w3 = self.w3(c.chain_id)
            for lg in w3.eth.get_logs({"address": c.mailbox, "topics": [PROCESS_TOPIC], "fromBlock": 0,
                                       "toBlock": "latest"}):
                out["0x" + bytes(lg["topics"][1]).hex()] += 1
        return out

    def dispatched_ids(self) -> set[str]:
        """Every message id any Mailbox dispatched (canonical chain)."""
        from bridges.relay_store import DISPATCH_TOPIC

        ids: set[str] = set()
        for c in self.dep.chains:
            w3 = self.w3(c.chain_id)
            for lg in w3.eth.get_logs({"address": c.mailbox, "topics": [DISPATCH_TOPIC], "fromBlock": 0,
                                       "toBlock": "latest"}):
                ids.add("0x" + bytes(lg["topics"][1]).hex())
        return ids

    def delivered(self, mid: str) -> bool:
        for c in self.dep.chains:
            mb = contract(self.w3(c.chain_id), "Mailbox", c.mailbox)
            if mb.functions.delivered(bytes.fromhex(mid[2:])).call():
                return True
        return False


@pytest.fixture
def system(tmp_path) -> Iterator[System]:
    """Three automining anvils (hub, arb 6 decimals, bnb 18 decimals), everything deployed,
    confirmations 2, a background miner, traders t1 (1,000 on bnb) and t2 (500 on arb)."""
    ensure_built()
    procs: list[AnvilProcess] = []
    miner: Miner | None = None
    try:
        for cid in (HUB, ARB, BNB):
            procs.append(start_anvil(free_port(), cid))
        settings = local_settings(("hub", HUB, procs[0].port, 6), ("arb", ARB, procs[1].port, 6),
                                  ("bnb", BNB, procs[2].port, 18), confirmations=2, block_time=0.1)
        dep = deploy_all(settings, oracle=False)
        dep.save(tmp_path)
        miner = Miner({c.chain_id: c.rpc_url for c in dep.chains}).start()
        sysm = System(settings, dep, procs, tmp_path, miner)
        for name in ("t1", "t2", "t3", "t4"):
            sysm.traders[name] = Account.create().key.to_0x_hex()
            for c in dep.chains:
                fund_gas(sysm.w3(c.chain_id), sysm.addr(name))
        deposit(sysm.w3(BNB), sysm.chain(BNB), sysm.traders["t1"], 1000 * 10**18)
        deposit(sysm.w3(ARB), sysm.chain(ARB), sysm.traders["t2"], 500 * USD)
        yield sysm
    finally:
        if miner is not None:
            miner.stop()
        for p in procs:
            p.stop()


def bridging_batch(s: System, number: int) -> list[ChainSettlement]:
    """t1 moves 300 from bnb to t3 on the hub (bnb burns, the hub mints); t2 pays t4 100 on arb."""
    return [
        ChainSettlement(HUB, number, deltas=(AccountDelta(s.addr("t3"), 300 * USD),),
                        bridge_in=(BridgeTransfer(BNB, 300 * USD),)),
        ChainSettlement(ARB, number, deltas=(AccountDelta(s.addr("t2"), -100 * USD),
                                             AccountDelta(s.addr("t4"), 100 * USD))),
        ChainSettlement(BNB, number, deltas=(AccountDelta(s.addr("t1"), -300 * USD),),
                        bridge_out=(BridgeTransfer(HUB, 300 * USD),)),
    ]


def small_batch(s: System, number: int, amount: int = 1) -> list[ChainSettlement]:
    """t2 pays t4 ``amount`` units on arb; the hub and bnb get an empty settlement."""
    return [
        ChainSettlement(HUB, number),
        ChainSettlement(ARB, number, deltas=(AccountDelta(s.addr("t2"), -amount), AccountDelta(s.addr("t4"), amount))),
        ChainSettlement(BNB, number),
    ]


async def submit(s: System, settlements: list[ChainSettlement], client=None, nonces=None):
    """Commit ``settlements`` as the next batch on the hub with the settle adapter."""
    from bridges.chain import ChainClient, NonceManager
    from bridges.settle import submit_batch

    st = s.dep.settlement
    assert st is not None
    header = s.next_header(settlements)
    hub = s.chain(HUB)
    own = client is None
    client = client or ChainClient("hub", hub.rpc_url, hub.chain_id)
    try:
        sub = await submit_batch(client, st.settlement_hub, header, settlements, st.sequencer_key,
                                 nonces=nonces or NonceManager(), domains=[HUB, ARB, BNB])
    finally:
        if own:
            await client.close()
    s.headers.append(header)
    return sub


def start_relayer_process(s: System, db_url: str, *, key_index: int = 0, port: int | None = None,
                          log_name: str = "relayer", extra: list[str] | None = None) -> subprocess.Popen:
    """Run ``aggregator relayer`` as its own process (own process group); caller stops it."""
    cmd = [sys.executable, "-m", "aggregator.cli", "relayer", "--deployment", str(s.deployment_path), "--db", db_url,
           "--key-index", str(key_index), "--lease", "5", *(extra or [])]
    if port is not None:
        cmd += ["--port", str(port)]
    out = open(s.dir / f"{log_name}.log", "ab")
    try:
        return subprocess.Popen(cmd, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    finally:
        out.close()


def stop_process(p: subprocess.Popen, timeout: float = 10.0) -> None:
    if p.poll() is None:
        stop_pid(p.pid, timeout)
    try:
        p.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        pass


async def wait_until(pred, timeout: float, interval: float = 0.1, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await asyncio.to_thread(pred):
            return
        await asyncio.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")
