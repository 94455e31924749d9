"""Helpers shared by the chain benchmarks: one anvil with the vault, traders, raw tx batches."""

from __future__ import annotations

import json
import urllib.request
from typing import Any

from eth_account import Account

from aggregator.config import local_settings
from aggregator.devnet import ChainDeployment, deploy_chain
from bridges.anvil import free_port, start_anvil
from bridges.contracts import contract, ensure_built


def start_chain(chain_id: int = 31337, decimals: int = 6, block_time: float | None = None, **kw):
    """Start an anvil on a free port and deploy the vault; return (proc, settings, deployment)."""
    ensure_built()
    proc = start_anvil(free_port(), chain_id, block_time=block_time, **kw)
    settings = local_settings(("bench", chain_id, proc.port, decimals))
    return proc, settings, deploy_chain(settings.chains[0], oracle=False)


def rpc_batch(url: str, calls: list[tuple[str, list[Any]]], timeout: float = 120) -> list[Any]:
    """Send one JSON-RPC batch array; raise on any error in it."""
    body = json.dumps([{"jsonrpc": "2.0", "id": i, "method": m, "params": p} for i, (m, p) in enumerate(calls)])
    req = urllib.request.Request(url, data=body.encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        replies = sorted(json.loads(r.read()), key=lambda x: x["id"])
    errors = [x["error"] for x in replies if "error" in x]
    if errors:
        raise RuntimeError(f"{len(errors)} errors in batch, first: {errors[0]}")
    return [x["result"] for x in replies]


def signed_deposit_txs(w3, c: ChainDeployment, traders: list, per_trader: int, amount: int) -> list[str]:
    """Return raw signed txs: per trader faucet + approve, then ``per_trader`` deposits."""
    token = contract(w3, "CollateralToken", c.token)
    vault = contract(w3, "CollateralVault", c.vault)
    fees = {"maxFeePerGas": 10**11, "maxPriorityFeePerGas": 10**9, "chainId": c.chain_id}
    raws = []
    for acct in traders:
        n = 0

        def tx(to: str, data: str, gas: int) -> str:
            nonlocal n
            t = {"to": to, "data": data, "gas": gas, "nonce": n, "value": 0, **fees}
            n += 1
            return acct.sign_transaction(t).raw_transaction.to_0x_hex()

        raws.append(tx(c.token, token.encode_abi("faucet", args=[acct.address, amount * per_trader]), 100_000))
        raws.append(tx(c.token, token.encode_abi("approve", args=[c.vault, 2**256 - 1]), 80_000))
        data = vault.encode_abi("deposit", args=[c.token, amount])
        raws.extend(tx(c.vault, data, 150_000) for _ in range(per_trader))
    return raws


def new_traders(n: int) -> list:
    return [Account.create() for _ in range(n)]
