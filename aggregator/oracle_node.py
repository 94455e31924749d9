"""The oracle, run inside the main service on the devnet.

The service process runs an ``OracleService`` fed by the devnet market simulator (three
simulated venues per feed, so quorum and deviation rules are exercised), signing reports
with m-of-n oracle keys and pushing them to the hub chain's ``PriceReportVerifier`` and
``OracleFeed`` contracts that ``devnet up`` deployed. ``aggregator oracle`` runs the same
service as its own process (with real HTTP sources if wanted).
"""

from __future__ import annotations

from sqlalchemy.engine import Engine
from web3 import Web3

from aggregator.devnet import ChainDeployment, Deployment
from bridges.anvil import DEV_KEYS
from oracles.cli import DEFAULT_PUSHER_KEY_INDEX, SIM_VENUES
from oracles.config import load_feeds
from oracles.deploy import deploy_oracle_contracts
from oracles.publisher import ChainPublisher
from oracles.report import Eip712Domain, ReportSigner
from oracles.service import OracleService
from oracles.sources.base import wall_clock_ms
from oracles.sources.simulator import MarketSimulator, SimulatedVenue
from oracles.store import OracleStore

ORACLE_SIGNER_KEYS = DEV_KEYS[1:4]  # devnet only: 3 signers
ORACLE_THRESHOLD = 2


def deploy_devnet_oracle(w3: Web3, chain: ChainDeployment, deployer_key: str) -> None:
    """Deploy the verifier and one feed contract per configured feed; record them in ``extra``."""
    signer = ReportSigner(list(ORACLE_SIGNER_KEYS))
    chain.extra.update(deploy_oracle_contracts(w3, deployer_key, list(signer.addresses), ORACLE_THRESHOLD,
                                               list(load_feeds())))


def devnet_oracle(dep: Deployment, engine: Engine, *, seed: int = 7, poll_interval_s: float = 0.5,
                  publish: bool = True) -> OracleService:
    """Build the in-process oracle for a devnet deployment (not started)."""
    feeds = load_feeds()
    signer = ReportSigner(list(ORACLE_SIGNER_KEYS))
    sim = MarketSimulator(seed=seed, start_ms=wall_clock_ms() - 60_000)
    sources = [SimulatedVenue(sim, v, {f: c.sources[v] for f, c in feeds.items() if v in c.sources})
               for v in SIM_VENUES]
    publishers = []
    hub = next(c for c in dep.chains if c.hub)
    if publish and "PriceReportVerifier" in hub.extra:
        publishers.append(ChainPublisher(
            hub.name, hub.rpc_url, hub.chain_id, hub.extra["PriceReportVerifier"],
            {k.removeprefix("feed:"): v for k, v in hub.extra.items() if k.startswith("feed:")},
            DEV_KEYS[DEFAULT_PUSHER_KEY_INDEX], signer, feeds))
    domain = publishers[0].domain if publishers else Eip712Domain(hub.chain_id)
    return OracleService(feeds, sources, signer, domain, store=OracleStore(engine), publishers=publishers,
                         poll_interval_s=poll_interval_s)
