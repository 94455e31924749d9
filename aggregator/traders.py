"""Devnet trader actions over real transactions: fund, approve, deposit (blocking web3).

Used by the demo, the tests and the benchmarks. A trader is an eth-account key; gas money
comes from ``anvil_setBalance`` (devnet only) and collateral from the token's devnet
faucet. Transactions are signed locally and sent raw, as a wallet would.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from eth_account import Account
from web3 import Web3
from web3.logs import DISCARD

from aggregator.devnet import ChainDeployment
from bridges.contracts import contract

GAS_MONEY = 10**20  # 100 ETH


@dataclass(frozen=True)
class DepositReceipt:
    chain_id: int
    account: str
    amount: int
    deposit_nonce: int
    tx_hash: str
    block_number: int


def _fees(w3: Web3) -> dict[str, int]:
    base = int(w3.eth.get_block("latest")["baseFeePerGas"])
    return {"maxPriorityFeePerGas": 10**9, "maxFeePerGas": 2 * base + 10**9}


def fund_gas(w3: Web3, address: str, wei: int = GAS_MONEY) -> None:
    """Give ``address`` gas money (anvil only)."""
    w3.provider.make_request("anvil_setBalance", [address, hex(wei)])


def sign_and_send(w3: Web3, key: str, tx: dict[str, Any], nonce: int, gas: int) -> bytes:
    acct = Account.from_key(key)
    tx = {**tx, "from": acct.address, "nonce": nonce, "gas": gas, "chainId": w3.eth.chain_id, **_fees(w3)}
    return w3.eth.send_raw_transaction(acct.sign_transaction(tx).raw_transaction)


def deposit(w3: Web3, chain: ChainDeployment, key: str, amount: int, *, faucet: bool = True,
            wait: bool = True) -> DepositReceipt | bytes:
    """Faucet ``amount`` tokens to the trader, approve the vault and deposit them.

    The three transactions are sent back to back with consecutive nonces; with ``wait``
    the deposit's receipt is awaited and its ``Deposit`` event returned.
    """
    acct = Account.from_key(key)
    token = contract(w3, "CollateralToken", chain.token)
    vault = contract(w3, "CollateralVault", chain.vault)
    nonce = w3.eth.get_transaction_count(acct.address, "pending")
    if faucet:
        sign_and_send(w3, key, token.functions.faucet(acct.address, amount).build_transaction(
            {"from": acct.address, "gas": 100_000, **_fees(w3)}), nonce, 100_000)
        nonce += 1
    sign_and_send(w3, key, token.functions.approve(chain.vault, amount).build_transaction(
        {"from": acct.address, "gas": 80_000, **_fees(w3)}), nonce, 80_000)
    h = sign_and_send(w3, key, vault.functions.deposit(chain.token, amount).build_transaction(
        {"from": acct.address, "gas": 200_000, **_fees(w3)}), nonce + 1, 200_000)
    if not wait:
        return h
    receipt = w3.eth.wait_for_transaction_receipt(h, timeout=60, poll_latency=0.05)
    if receipt["status"] != 1:
        raise RuntimeError(f"deposit {h.hex()} reverted")
    ev = vault.events.Deposit().process_receipt(receipt, errors=DISCARD)[0]["args"]
    return DepositReceipt(chain.chain_id, ev["account"], int(ev["amount"]), int(ev["depositNonce"]),
                          receipt["transactionHash"].to_0x_hex(), int(receipt["blockNumber"]))
