"""Oracle latency: source update -> published aggregate (subscriber callback), p50/p99.

End to end over HTTP: a local server answering in Pyth Hermes' format changes its price at
random moments; the OracleService polls it (``--interval``) through ``PythHermesSource``,
applies the feed rules, signs the report (3 keys) and calls the subscriber. Latency = the
subscriber's time minus the moment the server started serving the new price. The poll
interval bounds it (expected p50 ~ interval/2 + one HTTP round trip). Also the in-process
part alone: ingest -> evaluate -> sign -> callback.

    python -m bench.bench_oracle_latency [--updates 200] [--interval 0.05]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import time
from dataclasses import replace
from decimal import Decimal

from aiohttp import web

from bridges.anvil import DEV_KEYS
from oracles.config import load_feeds
from oracles.report import Eip712Domain, ReportSigner
from oracles.service import OracleService
from oracles.sources.pyth import PythHermesSource
from oracles.types import Observation

PID = "ff61491a931112ddf1bd8147cd1b641375f79f5825126d665480874634fd0ace"


def pct(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, int(q * len(s)))]


class Hermes:
    def __init__(self) -> None:
        self.price = 300_000_000_000
        self.publish = int(time.time())

    async def latest(self, _req: web.Request) -> web.Response:
        p = {"price": str(self.price), "conf": "100000000", "expo": -8, "publish_time": self.publish}
        return web.json_response({"binary": {"encoding": "hex", "data": []},
                                  "parsed": [{"id": PID, "price": p, "ema_price": p, "metadata": {}}]})


async def bench_http(updates: int, interval: float) -> None:
    cfg = replace(load_feeds()["ETH-USD"], sources={"pyth": PID}, quorum=1, max_jump_bps=10_000)
    hermes = Hermes()
    app = web.Application()
    app.router.add_get("/v2/updates/price/latest", hermes.latest)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    svc = OracleService({"ETH-USD": cfg}, [PythHermesSource(url, {"ETH-USD": PID})], ReportSigner(DEV_KEYS[1:4]),
                        Eip712Domain(31337), poll_interval_s=interval)
    changed_at: dict[int, float] = {}
    lat: list[float] = []
    svc.subscribe(lambda r: lat.append(time.perf_counter() - changed_at[r.report.price])
                  if r.report.price in changed_at else None)
    await svc.start()
    rng = random.Random(1)
    try:
        await asyncio.sleep(0.3)
        for i in range(updates):
            await asyncio.sleep(interval * (1 + 2 * rng.random()))
            hermes.price += 1_000_000 * (1 + i)
            hermes.publish = int(time.time())
            changed_at[hermes.price] = time.perf_counter()
        await asyncio.sleep(interval * 3)
    finally:
        await svc.stop()
        await runner.cleanup()
    ms = [x * 1000 for x in lat]
    print(f"HTTP (Hermes format) -> subscriber, poll interval {interval * 1000:.0f} ms, "
          f"{len(ms)}/{updates} updates seen")
    print(f"  p50 {pct(ms, 0.5):7.1f} ms   p99 {pct(ms, 0.99):7.1f} ms   max {max(ms):7.1f} ms   "
          f"mean {statistics.fmean(ms):6.1f} ms")


async def bench_core(n: int) -> None:
    feeds = load_feeds()
    svc = OracleService(feeds, [], ReportSigner(DEV_KEYS[1:4]), Eip712Domain(31337))
    got: list[float] = []
    svc.subscribe(lambda r: got.append(time.perf_counter()))
    now = int(time.time() * 1000)
    lat = []
    for i in range(n):
        t = now + i * 1000
        obs = [Observation("ETH-USD", s, Decimal(3000 + i % 7) + Decimal(j) / 100, t - 10, Decimal("0.5"))
               for j, s in enumerate(("sim-a", "sim-b", "sim-c"))]
        t0 = time.perf_counter()
        svc.ingest(obs)
        reports, _, _ = svc.evaluate_all(t)
        await svc._publish(reports)
        lat.append((got[-1] - t0) * 1e6)
    print(f"in-process ingest -> rules ({len(feeds)} feeds) -> sign (3 keys) -> callback, n={n}")
    print(f"  p50 {pct(lat, 0.5):7.1f} us   p99 {pct(lat, 0.99):7.1f} us")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--updates", type=int, default=200)
    ap.add_argument("--interval", type=float, default=0.05)
    args = ap.parse_args()
    asyncio.run(bench_core(2000))
    asyncio.run(bench_http(args.updates, args.interval))


if __name__ == "__main__":
    main()
