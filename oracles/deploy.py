"""Deploy the oracle contracts on one chain (devnet and tests; blocking web3).

``deploy_oracle_contracts`` deploys one ``PriceReportVerifier`` and one ``OracleFeed`` per
feed, sets each feed's freshness window on the verifier (from ``feeds.toml`` unless given)
and returns their addresses::

    {"PriceReportVerifier": "0x...", "feed:ETH-USD": "0x...", ...}

The deployer owns the verifier and the feeds and is the feeds' authorised updater unless
``updater`` names another account.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from eth_account import Account
from web3 import Web3

from bridges.contracts import contract, deploy, ensure_built, send_tx
from oracles.config import load_feeds
from oracles.report import feed_id, feed_name

VERIFIER = "PriceReportVerifier"
FEED = "OracleFeed"
DEFAULT_MAX_AGE_S = 3600


def _name(fid: str | bytes) -> str:
    if isinstance(fid, bytes):
        return feed_name(fid)
    if fid.startswith("0x") and len(fid) == 66:
        return feed_name(bytes.fromhex(fid[2:]))
    return fid


def feed_key(name: str) -> str:
    """Return the key of feed ``name``'s address in the deployment dict."""
    return f"feed:{name}"


def deploy_oracle_contracts(
    w3: Web3,
    deployer_key: str,
    signer_addresses: list[str],
    threshold: int,
    feed_ids: Sequence[str | bytes],
    *,
    default_max_age_s: int = DEFAULT_MAX_AGE_S,
    max_ages: Mapping[str, int] | None = None,
    updater: str | None = None,
) -> dict[str, str]:
    """Deploy the verifier and one feed per id; return ``{contract key: address}``.

    ``feed_ids`` are feed names (``"ETH-USD"``) or their ``bytes32`` ids (bytes or 0x-hex).
    """
    ensure_built()
    owner = Account.from_key(deployer_key).address
    signers = [Web3.to_checksum_address(a) for a in signer_addresses]
    out: dict[str, str] = {}
    verifier = deploy(w3, deployer_key, VERIFIER, owner, signers, threshold, default_max_age_s)
    out[VERIFIER] = verifier
    if max_ages is None:
        cfg = load_feeds()
        max_ages = {n: c.onchain_max_age_s for n, c in cfg.items()}
    v = contract(w3, VERIFIER, verifier)
    for fid in feed_ids:
        name = _name(fid)
        out[feed_key(name)] = deploy(w3, deployer_key, FEED, owner, updater or owner, verifier, feed_id(name), name)
        age = max_ages.get(name)
        if age and age != default_max_age_s:
            send_tx(w3, deployer_key, v.functions.setMaxAge(feed_id(name), age).build_transaction({"from": owner}))
    return out
