"""Nothing acknowledged is lost: ``kill -9`` of the standalone service mid-stream, then restart.

A journal is pre-written (Tick, ETH/BTC prices, deposits for signing traders). The
standalone service (``python -m aggregator.sequencer_service``) is started on it as a
subprocess; the test streams signed orders over REST (single and batch, several traders
concurrently, some off-tick so the core rejects them *with* a seq, some crossing IOCs so
resting orders fill) and records every acknowledgement. After a random number of acks
the process gets SIGKILL. It is restarted on the same journal (no timer, so nothing new
is sequenced) and the test checks:

- the journal's last seq is at least the highest acknowledged seq;
- every acknowledged order is in the journal at its seq, with the same signed message;
- every accepted order that was resting when acked is in the open orders or fills of
  the restarted service; every acked fill is in the fills;
- the restarted service's state root (rebuilt from the balances it serves over the API)
  equals the root of an in-process replay of the journal, and so do open orders.
"""

from __future__ import annotations

import asyncio
import os
import random
import re
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

from aggregator.core import commands as C
from aggregator.core.sequencer import Sequencer
from aggregator.eip712 import message_to_dict, sign, to_checksum_address
from aggregator.journal import Journal
from aggregator.sequencer_service import DEFAULT_FEE_ACCOUNT, DEFAULT_INSURANCE_ACCOUNT, default_sequencer_config
from bridges.anvil import free_port
from tests.api.helpers import DOMAIN, Trader

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
PYTHON = ROOT / ".venv" / "bin" / "python"
USDC = 10**6
ETH8 = 3_000 * 10**8
PER_TRADER = 120  # below max_open_orders (200): every accepted bid/ask can rest


# ------------------------------------------------------------------ the service process


class ServiceProcess:
    """The standalone service on a journal and a free port; ``kill9`` or ``stop`` it.

    ``extra``: more command-line options; ``env``: the process environment (default: ours)."""

    def __init__(self, journal: Path, log: Path, tick_interval: float, extra: tuple[str, ...] = (),
                 env: dict[str, str] | None = None) -> None:
        self.journal = journal
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        self.tick_interval = tick_interval
        self.extra = extra
        self.env = env
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 60.0) -> dict[str, int]:
        """Start and wait until it serves; return ``last_seq``, ``replayed`` and ``checkpoint`` from its banner."""
        out = open(self.log, "w")
        self.proc = subprocess.Popen(
            [str(PYTHON), "-m", "aggregator.sequencer_service", "--journal", str(self.journal), "--port",
             str(self.port), "--tick-interval", str(self.tick_interval), "--rate", "0", "--verify-threads", "2",
             *self.extra], cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, env=self.env)
        out.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"service exited {self.proc.returncode}: {self.log.read_text()}")
            m = re.search(r"last_seq=(\d+) replayed=(\d+) checkpoint=(\d+)", self.log.read_text())
            if m:
                return {"last_seq": int(m.group(1)), "replayed": int(m.group(2)), "checkpoint": int(m.group(3))}
            time.sleep(0.05)
        raise AssertionError(f"service did not start: {self.log.read_text()}")

    def kill9(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        assert self.proc.wait(10) == -signal.SIGKILL

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)


@pytest.fixture
def services(tmp_path):
    """Start ``ServiceProcess``es; every one is stopped (or killed) at teardown."""
    started: list[ServiceProcess] = []

    def make(journal: Path, tick_interval: float) -> ServiceProcess:
        s = ServiceProcess(journal, tmp_path / f"service-{len(started)}.log", tick_interval)
        started.append(s)
        return s

    try:
        yield make
    finally:
        for s in started:
            s.stop()


# ------------------------------------------------------------------ the journal and the stream


async def prewrite(journal: Path, traders: list[Trader], now_ms: int) -> int:
    j = Journal.open(journal)
    cmds: list[C.Command] = [C.Tick(1, now_ms),
                             C.PriceUpdate(2, now_ms, "ETH-USD", ETH8, 10**6, now_ms // 1000, "ok"),
                             C.PriceUpdate(3, now_ms, "BTC-USD", 100_000 * 10**8, 10**6, now_ms // 1000, "ok")]
    for i, t in enumerate(traders):
        cmds.append(C.DepositCredit(4 + i, now_ms, 31337, 500 + i, t.address, 1_000_000 * USDC))
    await asyncio.gather(*(j.append(c) for c in cmds))
    await j.close()
    return len(cmds)


@dataclass
class Ack:
    seq: int
    account: str
    nonce: int
    accepted: bool
    code: str | None
    order_id: int | None
    status: str | None
    filled: int


def plan(rng: random.Random, traders: list[Trader], taker: Trader, now_s: int) -> dict[str, list]:
    """Pre-signed orders per trader: makers bid (even) or offer (odd) away from 3000, the taker crosses."""
    out: dict[str, list] = {}
    nonce = rng.randrange(1, 2**40)
    for i, t in enumerate(traders + [taker]):
        msgs = []
        for _ in range(PER_TRADER):
            nonce += 1
            if t is taker:
                side = rng.choice((1, 2))
                price = 3_020_000_000 if side == 1 else 2_980_000_000  # crosses the best maker level
                tif, size = 2, rng.choice((1, 3, 10))
            else:
                side = 1 if i % 2 == 0 else 2
                off = rng.randrange(1, 80) * 1_000_000
                price = 3_000_000_000 - off if side == 1 else 3_000_000_000 + off
                tif, size = rng.choice((1, 1, 1, 4)), rng.choice((5, 10, 50))
                if rng.random() < 0.08:
                    price += 5_000  # off the 0.01 tick: the core rejects it, with a seq
            o = t.order_msg(None, side=side, price=price, size=size, tif=tif, nonce=nonce, expiry=now_s + 3600)
            msgs.append((o, {"order": message_to_dict(o), "signature": "0x" + sign(t.key, DOMAIN, o).hex()}))
        out[t.address] = msgs
    return out


def record(acks: list[Ack], order, js: dict) -> None:  # noqa: ANN001
    if "error" in js:
        if "seq" in js["error"]:
            acks.append(Ack(js["error"]["seq"], order.account, order.nonce, False, js["error"]["code"], None, None, 0))
        return
    r = js["result"]
    acks.append(Ack(js["seq"], order.account, order.nonce, True, None, r["order_id"], r["status"], r["filled"]))


async def stream(url: str, msgs: list, acks: list[Ack], rng: random.Random, stop: asyncio.Event) -> None:
    i = 0
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as http:
        while i < len(msgs) and not stop.is_set():
            n = 1 if rng.random() < 0.5 else rng.randrange(2, 12)
            chunk = msgs[i:i + n]
            i += n
            try:
                if n == 1:
                    async with http.post(f"{url}/v1/orders", json=chunk[0][1]) as r:
                        record(acks, chunk[0][0], await r.json())
                else:
                    async with http.post(f"{url}/v1/orders/batch", json={"orders": [b for _, b in chunk]}) as r:
                        assert r.status == 200, await r.text()
                        for (o, _), js in zip(chunk, (await r.json())["results"]):
                            record(acks, o, js)
            except (aiohttp.ClientError, asyncio.TimeoutError):
                return  # the process is gone: what was in flight is not acknowledged


async def get(http: aiohttp.ClientSession, url: str) -> dict:
    async with http.get(url) as r:
        assert r.status == 200, await r.text()
        return await r.json()


# ------------------------------------------------------------------ the test


@pytest.mark.parametrize("seed", [1, 2])
async def test_kill9_mid_stream_loses_no_acknowledged_order(tmp_path, services, seed):
    rng = random.Random(seed)
    journal = tmp_path / "journal"
    traders = [Trader.make(100 + i) for i in range(6)]
    taker = Trader.make(199)
    everyone = traders + [taker]
    now_ms = time.time_ns() // 1_000_000
    prewritten = await prewrite(journal, everyone, now_ms - 1_000)
    orders = plan(rng, traders, taker, now_ms // 1000)

    first = services(journal, tick_interval=0.5)
    assert first.start() == {"last_seq": prewritten, "replayed": prewritten, "checkpoint": 0}  # none written yet
    acks: list[Ack] = []
    stop = asyncio.Event()
    kill_after = rng.randrange(40, 400)
    tasks = [asyncio.create_task(stream(first.url, orders[t.address], acks, random.Random(seed * 100 + k), stop))
             for k, t in enumerate(everyone)]
    while len(acks) < kill_after and not all(t.done() for t in tasks):
        await asyncio.sleep(0.001)
    first.kill9()
    stop.set()
    await asyncio.gather(*tasks)
    total = sum(len(v) for v in orders.values())
    assert kill_after <= len(acks) < total, "the kill must land mid-stream"
    assert any(a.accepted for a in acks) and any(not a.accepted for a in acks)

    second = services(journal, tick_interval=0)  # no timer: the state stays what the journal says
    banner = second.start()
    max_acked = max(a.seq for a in acks)
    assert banner["last_seq"] >= max_acked

    async with aiohttp.ClientSession() as http:
        open_ids = {t.address: {o["order_id"] for o in
                                (await get(http, f"{second.url}/v1/orders?account={t.address}"))["orders"]}
                    for t in everyone}
        fill_ids = {t.address: {f["order_id"] for f in
                                (await get(http, f"{second.url}/v1/fills?account={t.address}&limit=1000"))["fills"]}
                    for t in everyone}
        served = {}
        for a in [t.address for t in everyone] + [to_checksum_address(DEFAULT_FEE_ACCOUNT),
                                                   to_checksum_address(DEFAULT_INSURANCE_ACCOUNT)]:
            served[a] = int((await get(http, f"{second.url}/v1/accounts/{a}/margin"))["total_collateral"])
    second.stop()

    # the journal holds every acknowledged order at its seq, and nothing was appended by the restart
    j = Journal.open(journal)
    cmds = {c.seq: c for c in j.replay()}
    j.close_sync()
    assert max(cmds) == banner["last_seq"] >= max_acked
    for a in acks:
        c = cmds[a.seq]
        assert type(c) is C.PlaceOrder and (c.order.account, c.order.nonce) == (a.account, a.nonce), a

    # accepted resting orders survived (still open, or filled later by a durable command)
    for a in acks:
        if a.accepted and a.status in ("open", "partially_filled"):
            assert a.order_id in open_ids[a.account] | fill_ids[a.account], a
        if a.accepted and a.filled:
            assert a.order_id in fill_ids[a.account], a

    # the restarted state equals an in-process replay of the same journal
    replay = Sequencer(default_sequencer_config(31337))
    codes = {}
    for seq in sorted(cmds):
        codes[seq] = replay.apply(cmds[seq]).code
    for a in acks:
        assert codes[a.seq] == a.code, a
    # every balance served after the restart is the replay's (the state root is a function of these
    # balances in account-creation order, which the same journal fixes for both)
    assert served == replay.balances()
    for t in everyone:
        assert {o["order_id"] for o in replay.open_orders(t.address)} == open_ids[t.address]
