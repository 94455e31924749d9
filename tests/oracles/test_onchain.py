"""Reports signed in Python against PriceReportVerifier / OracleFeed on a real anvil chain."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace

import pytest
from eth_abi import decode
from eth_utils import keccak
from web3 import Web3
from web3.exceptions import ContractCustomError

from bridges.anvil import DEV_KEYS
from bridges.contracts import contract, send_tx
from oracles.config import load_feeds
from oracles.deploy import deploy_oracle_contracts
from oracles.publisher import ChainPublisher
from oracles.report import Eip712Domain, PriceReport, ReportSigner, feed_id
from oracles.service import OracleService
from oracles.sources.base import wall_clock_ms
from oracles.sources.simulator import MarketSimulator, SimulatedVenue
from oracles.types import MarketStatus
from oracles.vectors import VECTORS_PATH

pytestmark = pytest.mark.chain

SIGNERS = ReportSigner(DEV_KEYS[1:6])
OUTSIDER = ReportSigner(DEV_KEYS[8:9])


@pytest.fixture
def chain(anvil):
    w3 = Web3(Web3.HTTPProvider(anvil.rpc_url))
    addrs = deploy_oracle_contracts(w3, DEV_KEYS[0], list(SIGNERS.addresses), 3, ["ETH-USD", "TBILL-NAV"])
    verifier = contract(w3, "PriceReportVerifier", addrs["PriceReportVerifier"])
    domain = Eip712Domain(w3.eth.chain_id, addrs["PriceReportVerifier"])
    return w3, addrs, verifier, domain


def now_s(w3: Web3) -> int:
    return int(w3.eth.get_block("latest")["timestamp"])


def custom_error(exc: ContractCustomError, signature: str) -> tuple:
    data = exc.data if isinstance(exc.data, str) else exc.args[0]
    raw = bytes.fromhex(data.removeprefix("0x"))
    name, _, args = signature.partition("(")
    assert raw[:4] == keccak(text=signature)[:4], f"expected {name}, got {data[:10]}"
    types = [t for t in args.rstrip(")").split(",") if t]
    return tuple(decode(types, raw[4:]))


def report(ts: int, price: int = 3012_45000000) -> PriceReport:
    return PriceReport(feed_id("ETH-USD"), price, 1_50000000, ts, int(MarketStatus.OPEN))


def test_vector_domain_and_digest_match_on_anvil(chain) -> None:
    w3, addrs, verifier, _ = chain
    vec = json.loads(VECTORS_PATH.read_text())
    assert addrs["PriceReportVerifier"] == vec["domain"]["verifyingContract"]  # nonce-0 deployment
    assert "0x" + verifier.functions.domainSeparator().call().hex() == vec["domain"]["separator"]
    for r in vec["reports"]:
        tup = (bytes.fromhex(r["feedId"][2:]), int(r["price"]), int(r["confidence"]), r["timestamp"],
               r["marketStatus"])
        assert "0x" + verifier.functions.hashReport(tup).call().hex() == r["digest"]


def test_report_signed_here_accepted_and_stored(chain) -> None:
    w3, addrs, verifier, domain = chain
    r = report(now_s(w3) - 2)
    signed = SIGNERS.sign(r, domain, count=3)
    assert verifier.functions.verifyReport(r.as_tuple(), list(signed.signatures)).call() == 3
    feed = contract(w3, "OracleFeed", addrs["feed:ETH-USD"])
    send_tx(w3, DEV_KEYS[7], feed.functions.updateFromReport(r.as_tuple(), list(signed.signatures))
            .build_transaction({"from": w3.eth.account.from_key(DEV_KEYS[7]).address}))
    stored = verifier.functions.latestReport(feed_id("ETH-USD")).call()
    assert tuple(stored) == r.as_tuple()
    _, answer, _, updated, _ = feed.functions.latestRoundData().call()
    assert (answer, updated) == (r.price, r.timestamp)


def test_too_few_signers_rejected(chain) -> None:
    w3, _, verifier, domain = chain
    r = report(now_s(w3) - 1)
    with pytest.raises(ContractCustomError) as e:
        verifier.functions.submitReport(r.as_tuple(), list(SIGNERS.sign(r, domain, count=2).signatures)).call()
    assert custom_error(e.value, "InsufficientSignatures(uint256,uint256)") == (2, 3)


def test_duplicate_signer_rejected(chain) -> None:
    w3, _, verifier, domain = chain
    r = report(now_s(w3) - 1)
    s = SIGNERS.sign(r, domain, count=2).signatures
    with pytest.raises(ContractCustomError) as e:
        verifier.functions.submitReport(r.as_tuple(), [s[0], s[1], s[0]]).call()
    assert custom_error(e.value, "DuplicateSigner(address)") == (SIGNERS.addresses[0].lower(),)


def test_unknown_signer_rejected(chain) -> None:
    w3, _, verifier, domain = chain
    r = report(now_s(w3) - 1)
    sigs = list(SIGNERS.sign(r, domain, count=2).signatures) + list(OUTSIDER.sign(r, domain).signatures)
    with pytest.raises(ContractCustomError) as e:
        verifier.functions.submitReport(r.as_tuple(), sigs).call()
    assert custom_error(e.value, "UnknownSigner(address)") == (OUTSIDER.addresses[0].lower(),)


def test_stale_report_rejected(chain) -> None:
    w3, _, verifier, domain = chain
    ts = now_s(w3) - 3601 - 5
    r = report(ts)
    with pytest.raises(ContractCustomError) as e:
        verifier.functions.submitReport(r.as_tuple(), list(SIGNERS.sign(r, domain, count=3).signatures)).call()
    fid, got_ts, _block_ts, max_age = custom_error(e.value, "ReportStale(bytes32,uint64,uint256,uint64)")
    assert (fid, got_ts, max_age) == (feed_id("ETH-USD"), ts, 3600)


def test_future_report_rejected(chain) -> None:
    w3, _, verifier, domain = chain
    ts = now_s(w3) + 600
    r = report(ts)
    with pytest.raises(ContractCustomError) as e:
        verifier.functions.submitReport(r.as_tuple(), list(SIGNERS.sign(r, domain, count=3).signatures)).call()
    fid, got_ts, _ = custom_error(e.value, "ReportFromFuture(bytes32,uint64,uint256)")
    assert (fid, got_ts) == (feed_id("ETH-USD"), ts)


def test_nav_feed_uses_its_own_freshness_window(chain) -> None:
    w3, _, verifier, domain = chain
    assert verifier.functions.maxAge(feed_id("TBILL-NAV")).call() == load_feeds()["TBILL-NAV"].onchain_max_age_s
    r = replace(report(now_s(w3) - 86_400, 1_04120000), feed_id=feed_id("TBILL-NAV"))
    assert verifier.functions.verifyReport(r.as_tuple(), list(SIGNERS.sign(r, domain).signatures)).call() == 5


async def test_service_pushes_aggregates_to_onchain_feed(chain) -> None:
    w3, addrs, _, _ = chain
    feeds = {k: v for k, v in load_feeds().items() if k == "ETH-USD"}
    sim = MarketSimulator(seed=3, start_ms=wall_clock_ms() - 30_000)
    venues = [SimulatedVenue(sim, v, {"ETH-USD": "ETH"}) for v in ("sim-a", "sim-b", "sim-c")]
    pub = ChainPublisher("hub", w3.provider.endpoint_uri, w3.eth.chain_id, addrs["PriceReportVerifier"],
                         {"ETH-USD": addrs["feed:ETH-USD"]}, DEV_KEYS[7], SIGNERS, feeds)
    svc = OracleService(feeds, venues, SIGNERS, pub.domain, publishers=[pub], poll_interval_s=0.2)
    await svc.start()
    try:
        for _ in range(100):
            await asyncio.sleep(0.1)
            if pub.pushed:
                break
    finally:
        await svc.stop()
    assert pub.pushed >= 1 and pub.failed == 0
    feed = contract(w3, "OracleFeed", addrs["feed:ETH-USD"])
    _, answer, _, updated, _ = feed.functions.latestRoundData().call()
    pushed = pub._last["ETH-USD"]
    assert (answer, updated) == (pushed.price, pushed.timestamp)
