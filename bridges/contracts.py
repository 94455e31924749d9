"""Compiled contract artifacts (forge's ``contracts/out``) and blocking deploy helpers.

``ensure_built()`` runs ``forge build`` once when the artifacts are missing or older than
the sources. Deployment here is for the devnet and tests: a key sends a contract-creation
transaction and waits for its receipt.
"""

from __future__ import annotations

import json
import subprocess
from functools import lru_cache
from pathlib import Path
from typing import Any

from eth_account import Account
from web3 import Web3

from bridges.anvil import tool_path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
CONTRACTS_DIR = PROJECT_ROOT / "contracts"
OUT_DIR = CONTRACTS_DIR / "out"


class ArtifactError(RuntimeError):
    """A contract artifact is missing or the build failed."""


def _newest_mtime(root: Path, pattern: str) -> float:
    return max((p.stat().st_mtime for p in root.rglob(pattern)), default=0.0)


def ensure_built() -> None:
    """Run ``forge build`` if any Solidity source is newer than the build output."""
    src = _newest_mtime(CONTRACTS_DIR / "src", "*.sol")
    out = _newest_mtime(OUT_DIR, "*.json") if OUT_DIR.exists() else 0.0
    if out and out >= src:
        return
    proc = subprocess.run(
        [tool_path("forge"), "build"], cwd=CONTRACTS_DIR, capture_output=True, text=True
    )
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
        raise ArtifactError("forge build failed: " + " | ".join(tail))
    load_artifact.cache_clear()


@lru_cache(maxsize=None)
def load_artifact(name: str) -> dict[str, Any]:
    """Return ``{"abi": [...], "bytecode": "0x..."}`` for contract ``name``."""
    matches = sorted(OUT_DIR.glob(f"*/{name}.json"))
    if not matches:
        raise ArtifactError(f"no artifact for {name} in {OUT_DIR}: run `forge build` in contracts/")
    data = json.loads(matches[0].read_text())
    return {"abi": data["abi"], "bytecode": data["bytecode"]["object"]}


def abi(name: str) -> list[dict[str, Any]]:
    return load_artifact(name)["abi"]


def send_tx(w3: Web3, key: str, tx: dict[str, Any], wait: bool = True) -> dict[str, Any]:
    """Sign ``tx`` with ``key``, send it, and (by default) return its successful receipt."""
    acct = Account.from_key(key)
    tx = dict(tx)
    tx.setdefault("from", acct.address)
    tx.setdefault("chainId", w3.eth.chain_id)
    tx.setdefault("nonce", w3.eth.get_transaction_count(acct.address, "pending"))
    if "gas" not in tx:
        tx["gas"] = int(w3.eth.estimate_gas(tx) * 1.2) + 10_000
    if "maxFeePerGas" not in tx and "gasPrice" not in tx:
        base = w3.eth.get_block("latest")["baseFeePerGas"]
        tx["maxPriorityFeePerGas"] = 10**9
        tx["maxFeePerGas"] = base * 2 + 10**9
    signed = acct.sign_transaction(tx)
    h = w3.eth.send_raw_transaction(signed.raw_transaction)
    if not wait:
        return {"transactionHash": h}
    receipt = w3.eth.wait_for_transaction_receipt(h, timeout=60, poll_latency=0.05)
    if receipt["status"] != 1:
        raise ArtifactError(f"transaction {h.hex()} reverted")
    return dict(receipt)


def deploy(w3: Web3, key: str, name: str, *args: Any) -> str:
    """Deploy contract ``name`` with constructor ``args`` from ``key``; return its address."""
    art = load_artifact(name)
    factory = w3.eth.contract(abi=art["abi"], bytecode=art["bytecode"])
    tx = factory.constructor(*args).build_transaction(
        {"from": Account.from_key(key).address, "nonce": w3.eth.get_transaction_count(Account.from_key(key).address, "pending")}
    )
    receipt = send_tx(w3, key, tx)
    return Web3.to_checksum_address(receipt["contractAddress"])


def contract(w3: Web3, name: str, address: str):
    """Return a web3 contract object for ``name`` at ``address``."""
    return w3.eth.contract(address=Web3.to_checksum_address(address), abi=abi(name))
