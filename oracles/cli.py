"""``aggregator oracle``: run the oracle service (sources -> rules -> signed reports).

Examples::

    aggregator oracle --deployment .devnet/deployment.json --deploy      # devnet, simulator
    aggregator oracle --chain hub=http://127.0.0.1:8545 --deploy --port 8090
    aggregator oracle --sources pyth,coinbase --no-chain --duration 30

Chains come from a deployment JSON (the devnet's ``deployment.json``: ``chains[]`` with
``name``, ``chain_id``, ``rpc_url`` and the oracle addresses in ``extra`` or
``contracts``) and/or ``--chain NAME=RPC_URL``. ``--deploy`` deploys the oracle
contracts where a chain has none and writes them to ``--oracle-deployment``. Signer keys
come from ``--signer-key`` or ``OMNICLEAR_ORACLE_SIGNER_KEYS`` (comma-separated); without
either, the devnet's anvil keys 1-3 are used and a warning says so.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

log = logging.getLogger(__name__)

DEFAULT_PUSHER_KEY_INDEX = 7  # an anvil dev key nobody else on the devnet sends from
SIM_VENUES = ("sim-a", "sim-b", "sim-c")


@dataclass
class ChainTarget:
    name: str
    rpc_url: str
    chain_id: int | None = None
    contracts: dict[str, str] = field(default_factory=dict)


def add_oracle_parser(subparsers: Any) -> None:
    """Register the ``oracle`` sub-command on an argparse ``subparsers`` object."""
    p = subparsers.add_parser("oracle", help="run the oracle service: price feeds, signed reports, on-chain push",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--feeds", help="feed configuration TOML (default: the packaged oracles/feeds.toml)")
    p.add_argument("--db", help="database URL (default $OMNICLEAR_DB_URL or SQLite in .devnet/)")
    p.add_argument("--deployment", help="deployment JSON with the chains (e.g. .devnet/deployment.json)")
    p.add_argument("--chain", action="append", default=[], metavar="NAME=RPC_URL", help="a chain to push to")
    p.add_argument("--no-chain", action="store_true", help="do not push on-chain even if chains are known")
    p.add_argument("--deploy", action="store_true", help="deploy oracle contracts where a chain has none")
    p.add_argument("--oracle-deployment", default=".devnet/oracle-deployment.json",
                   help="where --deploy writes the oracle addresses (and where they are read back)")
    p.add_argument("--signer-key", action="append", default=[], help="oracle signer private key (repeat)")
    p.add_argument("--threshold", type=int, help="signatures the verifier requires (default: majority)")
    p.add_argument("--pusher-key", help="key that sends push transactions (default: anvil dev key 7)")
    p.add_argument("--sources", default="sim", help="comma list of sim,pyth,coinbase,chainlink (default sim)")
    p.add_argument("--sim-seed", type=int, default=7, help="seed of the devnet market simulator")
    p.add_argument("--pyth-url", default="https://hermes.pyth.network")
    p.add_argument("--coinbase-url", default="https://api.exchange.coinbase.com")
    p.add_argument("--chainlink-chain", help="chain whose OracleFeeds are read as the chainlink source")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8090, help="price API port (0: no HTTP API)")
    p.add_argument("--interval", type=float, default=1.0, help="poll interval in seconds")
    p.add_argument("--duration", type=float, help="stop after this many seconds (default: run until Ctrl-C)")
    p.add_argument("--snapshot-every", type=float, default=10.0, help="print a snapshot every N seconds (0: never)")
    p.set_defaults(func=cmd_oracle)


def cmd_oracle(args: argparse.Namespace) -> int:
    """Entry point of ``aggregator oracle``."""
    return asyncio.run(run_oracle(args))


def signer_keys(args: argparse.Namespace) -> list[str]:
    from bridges.anvil import DEV_KEYS

    keys = list(args.signer_key)
    env = os.environ.get("OMNICLEAR_ORACLE_SIGNER_KEYS", "")
    keys += [k.strip() for k in env.split(",") if k.strip()]
    if not keys:
        log.warning("no oracle signer keys given: using anvil dev keys 1-3 (devnet only)")
        keys = list(DEV_KEYS[1:4])
    return keys


def load_chains(args: argparse.Namespace) -> list[ChainTarget]:
    """Chains from ``--deployment``, ``--oracle-deployment`` and ``--chain``."""
    chains: dict[str, ChainTarget] = {}
    for path in (args.deployment, args.oracle_deployment):
        if not path or not Path(path).exists():
            continue
        raw = json.loads(Path(path).read_text())
        for c in raw.get("chains", []):
            t = chains.setdefault(c["name"], ChainTarget(c["name"], c["rpc_url"], c.get("chain_id")))
            t.chain_id = t.chain_id or c.get("chain_id")
            for key in ("extra", "contracts"):
                t.contracts.update({k: v for k, v in (c.get(key) or {}).items()
                                    if k == "PriceReportVerifier" or k.startswith("feed:")})
    for spec in args.chain:
        name, _, url = spec.partition("=")
        if not url:
            raise SystemExit(f"--chain expects NAME=RPC_URL, got {spec!r}")
        chains.setdefault(name, ChainTarget(name, url)).rpc_url = url
    return list(chains.values())


def deploy_missing(chains: list[ChainTarget], feeds: list[str], signers: list[str], threshold: int,
                   out_path: str) -> None:
    """Deploy the oracle contracts on chains without them and record them in ``out_path``."""
    from web3 import Web3

    from bridges.anvil import DEV_KEYS
    from oracles.deploy import deploy_oracle_contracts

    changed = False
    for c in chains:
        w3 = Web3(Web3.HTTPProvider(c.rpc_url))
        c.chain_id = c.chain_id or w3.eth.chain_id
        if "PriceReportVerifier" not in c.contracts:
            c.contracts = deploy_oracle_contracts(w3, DEV_KEYS[0], signers, threshold, feeds)
            changed = True
            print(f"oracle: deployed on {c.name}: verifier {c.contracts['PriceReportVerifier']}")
    if changed:
        Path(out_path).parent.mkdir(parents=True, exist_ok=True)
        doc = {"chains": [{"name": c.name, "chain_id": c.chain_id, "rpc_url": c.rpc_url, "contracts": c.contracts}
                          for c in chains]}
        Path(out_path).write_text(json.dumps(doc, indent=2))


def build_sources(args: argparse.Namespace, feeds: dict, chains: list[ChainTarget]) -> list:
    from oracles.sources.chainlink import ChainlinkSource
    from oracles.sources.coinbase import CoinbaseTickerSource
    from oracles.sources.pyth import PythHermesSource
    from oracles.sources.base import wall_clock_ms
    from oracles.sources.simulator import MarketSimulator, SimulatedVenue

    def symbols(src: str) -> dict[str, str]:
        return {f: c.sources[src] for f, c in feeds.items() if src in c.sources}

    out: list = []
    wanted = {s.strip() for s in args.sources.split(",") if s.strip()}
    if "sim" in wanted:
        sim = MarketSimulator(seed=args.sim_seed, start_ms=wall_clock_ms() - 60_000)
        out += [SimulatedVenue(sim, v, symbols(v)) for v in SIM_VENUES]
    if "pyth" in wanted:
        out.append(PythHermesSource(args.pyth_url, symbols("pyth")))
    if "coinbase" in wanted:
        out.append(CoinbaseTickerSource(args.coinbase_url, symbols("coinbase")))
    if "chainlink" in wanted:
        chain = next((c for c in chains if c.name == args.chainlink_chain), chains[0] if chains else None)
        if chain is None:
            raise SystemExit("--sources chainlink needs a chain with OracleFeed contracts")
        addrs = {f: chain.contracts[f"feed:{f}"] for f in symbols("chainlink") if f"feed:{f}" in chain.contracts}
        out.append(ChainlinkSource(chain.rpc_url, addrs))
    unknown = wanted - {"sim", "pyth", "coinbase", "chainlink"}
    if unknown:
        raise SystemExit(f"unknown sources: {sorted(unknown)}")
    return out


async def run_oracle(args: argparse.Namespace) -> int:
    from aggregator.config import database_url
    from aggregator.db import init_db, make_engine
    from bridges.anvil import DEV_KEYS
    from oracles.api import add_price_routes
    from oracles.config import load_feeds
    from oracles.publisher import ChainPublisher
    from oracles.report import Eip712Domain, ReportSigner
    from oracles.service import OracleService
    from oracles.store import OracleStore

    feeds = load_feeds(args.feeds)
    signer = ReportSigner(signer_keys(args))
    threshold = args.threshold or len(signer.addresses) // 2 + 1
    chains = [] if args.no_chain else load_chains(args)
    if args.deploy and chains:
        await asyncio.to_thread(deploy_missing, chains, list(feeds), list(signer.addresses), threshold,
                                args.oracle_deployment)
    publishers = []
    for c in chains:
        if "PriceReportVerifier" not in c.contracts:
            log.warning("chain %s has no oracle contracts (use --deploy): not pushing there", c.name)
            continue
        if c.chain_id is None:
            from web3 import Web3
            c.chain_id = Web3(Web3.HTTPProvider(c.rpc_url)).eth.chain_id
        publishers.append(ChainPublisher(
            c.name, c.rpc_url, c.chain_id, c.contracts["PriceReportVerifier"],
            {k.removeprefix("feed:"): v for k, v in c.contracts.items() if k.startswith("feed:")},
            args.pusher_key or DEV_KEYS[DEFAULT_PUSHER_KEY_INDEX], signer, feeds,
        ))
    # off-chain reports (API, subscribers) use the first chain's verifier domain
    domain = publishers[0].domain if publishers else Eip712Domain(31337)
    engine = make_engine(args.db or database_url())
    init_db(engine)
    service = OracleService(feeds, build_sources(args, feeds, chains), signer, domain, store=OracleStore(engine),
                            publishers=publishers, poll_interval_s=args.interval)

    runner = None
    if args.port:
        app = web.Application()
        add_price_routes(app, service)
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, args.host, args.port).start()
        print(f"oracle: price API on http://{args.host}:{args.port}/v1/prices")

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):
            pass
    await service.start()
    print(f"oracle: {len(feeds)} feeds, {len(service.sources)} sources, {len(publishers)} chains, "
          f"signers {', '.join(signer.addresses)} (threshold {threshold})")
    try:
        elapsed = 0.0
        step = args.snapshot_every or 1.0
        while not stop.is_set() and (args.duration is None or elapsed < args.duration):
            wait = step if args.duration is None else min(step, args.duration - elapsed)
            try:
                await asyncio.wait_for(stop.wait(), wait)
            except TimeoutError:
                pass
            elapsed += wait
            if args.snapshot_every:
                print_snapshot(service.snapshot())
    finally:
        await service.stop()
        if runner is not None:
            await runner.cleanup()
        engine.dispose()
    return 0


def print_snapshot(rows: list[dict[str, Any]]) -> None:
    for r in rows:
        print(f"  {r['feed']:<10} {r['price'] or '-':>22}  {r['status']:<13} {r['reason']}")
