"""Push signed reports to one chain's ``OracleFeed`` contracts (Chainlink-style push policy).

A report is pushed when it is newer than the last one pushed for its feed and the feed is
due: first push, market status changed, price moved at least ``push_deviation_bps`` or
``push_heartbeat_s`` elapsed. Only the latest due report per feed waits in the queue
(coalescing), so a slow chain never builds a backlog. Each push re-signs the report for
this chain's verifier domain and calls ``OracleFeed.updateFromReport`` (the verifier
checks the signatures on-chain); any funded key can send it.

Nonces are kept locally and resynced from the chain after any failure; a failed push is
logged and dropped (the next due report supersedes it).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping

from eth_account import Account
from web3 import AsyncHTTPProvider, AsyncWeb3

from bridges.contracts import abi
from oracles.config import FeedConfig
from oracles.report import Eip712Domain, PriceReport, ReportSigner, SignedPriceReport
from oracles.rules import deviation_bps

log = logging.getLogger(__name__)

PUSH_GAS = 600_000


class ChainPublisher:
    """Pushes reports to the ``OracleFeed``s of one chain."""

    def __init__(
        self,
        name: str,
        rpc_url: str,
        chain_id: int,
        verifier: str,
        feeds: Mapping[str, str],
        sender_key: str,
        signer: ReportSigner,
        configs: Mapping[str, FeedConfig],
        timeout_s: float = 10.0,
    ) -> None:
        self.name = name
        self.domain = Eip712Domain(chain_id, AsyncWeb3.to_checksum_address(verifier))
        self.signer = signer
        self.configs = dict(configs)
        self._key = sender_key
        self._sender = Account.from_key(sender_key).address
        self._w3 = AsyncWeb3(AsyncHTTPProvider(rpc_url, request_kwargs={"timeout": timeout_s}))
        feed_abi = abi("OracleFeed")
        self._feeds = {f: self._w3.eth.contract(address=AsyncWeb3.to_checksum_address(a), abi=feed_abi)
                       for f, a in feeds.items()}
        self._pending: dict[str, PriceReport] = {}
        self._last: dict[str, PriceReport] = {}
        self._wake = asyncio.Event()
        self._nonce: int | None = None
        self.pushed = 0
        self.failed = 0

    def due(self, r: PriceReport, feed: str) -> bool:
        last = self._pending.get(feed) or self._last.get(feed)
        if last is None:
            return True
        if r.timestamp <= last.timestamp:
            return False
        cfg = self.configs.get(feed)
        if cfg is None:
            return True
        return (r.market_status != last.market_status
                or deviation_bps(r.price, last.price) >= cfg.push_deviation_bps
                or r.timestamp - last.timestamp >= cfg.push_heartbeat_s)

    def offer(self, signed: SignedPriceReport) -> bool:
        """Queue ``signed`` for this chain if its feed is due; return whether it was queued."""
        feed = signed.feed
        if feed not in self._feeds or not self.due(signed.report, feed):
            return False
        self._pending[feed] = signed.report
        self._wake.set()
        return True

    async def push(self, report: PriceReport) -> dict:
        """Send one ``updateFromReport`` and return its receipt (raises on failure)."""
        feed = report.feed
        signed = self.signer.sign(report, self.domain)
        if self._nonce is None:
            self._nonce = await self._w3.eth.get_transaction_count(self._sender, "pending")
        block = await self._w3.eth.get_block("latest")
        base = int(block.get("baseFeePerGas") or 0)
        tx = await self._feeds[feed].functions.updateFromReport(report.as_tuple(), list(signed.signatures)) \
            .build_transaction({
                "from": self._sender, "nonce": self._nonce, "gas": PUSH_GAS, "chainId": self.domain.chain_id,
                "maxFeePerGas": 2 * base + 10**9, "maxPriorityFeePerGas": 10**9,
            })
        raw = Account.sign_transaction(tx, self._key).raw_transaction
        self._nonce += 1
        h = await self._w3.eth.send_raw_transaction(raw)
        receipt = await self._w3.eth.wait_for_transaction_receipt(h, timeout=30, poll_latency=0.05)
        if receipt["status"] != 1:
            raise RuntimeError(f"updateFromReport {feed} reverted in tx {h.hex()}")
        return dict(receipt)

    async def run(self) -> None:
        """Push queued reports until cancelled."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            batch, self._pending = self._pending, {}
            for feed, report in batch.items():
                try:
                    await self.push(report)
                    self._last[feed] = report
                    self.pushed += 1
                except Exception as e:  # RPC, revert, timeout: log, resync nonce, move on
                    self.failed += 1
                    self._nonce = None
                    log.warning("%s: push of %s @%s failed: %s", self.name, feed, report.timestamp, e)

    async def close(self) -> None:
        disconnect = getattr(self._w3.provider, "disconnect", None)
        if disconnect is not None:
            await disconnect()
