"""End to end on three real anvil chains: deposit on A, profit from B, withdraw everything on C.

The whole loop runs for real: vault deposits seen after confirmations, signed orders
through the REST API, the sequencer's batch committed on the hub by the service's
batcher, every settlement and token-bridge message delivered by the relayer, the vaults
applying debits before credits and paying the withdrawal. Afterwards every vault is
solvent and reconciles with the ledger to the wei, and the sequencer's books conserve.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path

import aiohttp
import pytest
from eth_account import Account

from aggregator import devnet, eip712
from aggregator.config import load_settings
from aggregator.db import make_engine
from aggregator.service import Service
from aggregator.traders import deposit, fund_gas
from bridges.anvil import free_port
from bridges.contracts import contract
from tests.settlement.live import service_with_relayer

pytestmark = [pytest.mark.chain, pytest.mark.slow, pytest.mark.timeout(600)]

ETH8 = 10**8  # oracle price decimals
USDC = 10**6


def _sign(key: bytes, domain: eip712.Domain, field: str, msg) -> dict:
    return {field: eip712.message_to_dict(msg), "signature": "0x" + eip712.sign(key, domain, msg).hex()}


class Api:
    def __init__(self, session: aiohttp.ClientSession, url: str, domain: eip712.Domain) -> None:
        self.s, self.url, self.domain = session, url, domain
        self.nonce = int(time.time() * 1000)

    def next_nonce(self) -> int:
        self.nonce += 1
        return self.nonce

    async def get(self, path: str) -> dict:
        async with self.s.get(self.url + path) as r:
            return await r.json()

    async def post(self, path: str, body: dict) -> tuple[int, dict]:
        async with self.s.post(self.url + path, json=body) as r:
            return r.status, await r.json()

    async def order(self, acct, side: int, price: int, size: int, tif: int) -> dict:
        msg = eip712.Order(acct.address, "ETH-PERP", side, 1, tif, 1, False, price, size, 0, self.next_nonce(),
                           int(time.time()) + 600)
        status, body = await self.post("/v1/orders", _sign(bytes(acct.key), self.domain, "order", msg))
        assert status == 200 and body["accepted"], body
        return body

    async def withdraw(self, acct, chain, amount_native: int) -> tuple[int, dict]:
        msg = eip712.Withdrawal(acct.address, chain.token, amount_native, chain.chain_id, acct.address,
                                self.next_nonce(), int(time.time()) + 600)
        return await self.post("/v1/withdrawals", _sign(bytes(acct.key), self.domain, "withdrawal", msg))


async def _until(pred, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not await pred():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        await asyncio.sleep(0.1)


@pytest.mark.parametrize("liquidity", [False, True], ids=["bridged", "liquidity-account"])
async def test_deposit_on_a_profit_from_b_withdraw_all_on_c_keeps_every_vault_solvent_and_reconciled(liquidity):
    """With a liquidity account holding 30k on C, C's inflow is served from it: no bridge leg."""
    work = Path(tempfile.mkdtemp(prefix="omniclear-e2e-"))
    settings = load_settings()
    settings = settings.with_ports({c.name: free_port() for c in settings.chains})
    dep, procs = await asyncio.to_thread(devnet.up, settings, work, detach=False)
    engine = make_engine(f"sqlite:///{work / 'db.sqlite'}")
    lp = Account.create() if liquidity else None
    svc = Service(settings, dep, engine, port=free_port(), oracle=False, journal_dir=work / "journal",
                  tick_interval=0, batch_interval=0.5, liquidity_account=lp.address if lp else None)
    try:
        async with service_with_relayer(svc, dep, engine) as store:
            chain_a, chain_b, chain_c = dep.chain("ethereum"), dep.chain("arbitrum"), dep.chain("bnb")
            alice, bob = Account.create(), Account.create()
            w3 = {c.chain_id: devnet.web3_for(c.rpc_url) for c in dep.chains}
            funded = [(alice, chain_a, 10_000), (bob, chain_b, 10_000)] + ([(lp, chain_c, 30_000)] if lp else [])
            for who, c, usd in funded:
                await asyncio.to_thread(fund_gas, w3[c.chain_id], who.address)
                await asyncio.to_thread(deposit, w3[c.chain_id], c, who.key.to_0x_hex(),
                                        usd * 10**c.token_decimals)

            async with aiohttp.ClientSession() as session:
                d = (await (await session.get(svc.url + "/v1/eip712")).json())["domain"]
                api = Api(session, svc.url, eip712.Domain(int(d["chainId"]), d["verifyingContract"]))

                async def credited() -> bool:
                    views = [await api.get(f"/v1/accounts/{a.address}/margin") for a, _, _ in funded]
                    return all(int(v.get("total_collateral") or 0) == usd * USDC
                               for v, (_, _, usd) in zip(views, funded))

                await _until(credited, 60, "deposits not credited")
                now = int(time.time())
                await svc.sequencer.tick()
                await svc.sequencer.submit_price("ETH-USD", 3000 * ETH8, 10**6, now)
                # Bob sells 1 ETH to Alice at 3000; the mark goes to 3200; Alice sells back at 3200.
                await api.order(bob, 2, 3000 * USDC, 1000, 1)
                await api.order(alice, 1, 3000 * USDC, 1000, 2)
                await svc.sequencer.submit_price("ETH-USD", 3200 * ETH8, 10**6, now + 1)
                await api.order(bob, 1, 3200 * USDC, 1000, 1)
                await api.order(alice, 2, 3200 * USDC, 1000, 2)
                margin = await api.get(f"/v1/accounts/{alice.address}/margin")
                assert margin["positions"] == []
                everything = int(margin["total_collateral"])
                assert everything > 10_000 * USDC + 190 * USDC  # +200 profit, minus taker fees

                scale_c = 10 ** (chain_c.token_decimals - 6)
                status, body = await api.withdraw(alice, chain_c, (everything + 1) * scale_c)
                assert status == 422 and body["error"]["code"] == "insufficient_free_collateral"
                status, body = await api.withdraw(alice, chain_c, everything * scale_c)
                assert status == 200 and body["accepted"], body
                wid = body["result"]["withdrawal_id"]

                async def paid() -> bool:
                    return (await api.get(f"/v1/withdrawals/{wid}")).get("tx_hash") is not None

                await _until(paid, 120, "withdrawal not paid on chain C")
                token_c = contract(w3[chain_c.chain_id], "CollateralToken", chain_c.token)
                # sync web3 only off the event loop: web3 shares one lock between sync and async providers
                got = await asyncio.to_thread(token_c.functions.balanceOf(alice.address).call)
                assert got == everything * scale_c

                async def all_applied() -> bool:
                    seq = svc.sequencer.sequencer
                    last = seq.last_batch()
                    return all(seq.last_settled_batch(c) >= last.number for c in last.domains)

                await _until(all_applied, 60, "batches not applied everywhere")
                report = await api.get("/v1/batches")
                assert report["batches"] and all(b["tx_hash"] for b in report["batches"])
                net = report["netting"]
                if lp is None:
                    assert 0 < net["bridged"] <= net["gross"] and net["buffered"] == 0
                else:  # C's inflow came out of the liquidity account's balance on C: never bridged. Only the
                    # trade's P&L and fees between B and A (~201 USDC) may be, when a batch closed between the trades
                    # and the withdrawal (batches close every 0.5 s) and the account held nothing on A then
                    assert net["buffered"] >= everything and net["bridged"] <= 300 * USDC, net

            seq = svc.sequencer.sequencer
            assert seq.total_balance() == seq.deposited - seq.withdrawn
            assert seq.account(alice.address)["total_collateral"] == 0
            if lp is not None:  # its total never changes: only which chain holds it
                lp_view = seq.account(lp.address)
                assert lp_view["total_collateral"] == 30_000 * USDC
                assert int(lp_view["balances"][str(chain_c.chain_id)]) == 30_000 * USDC - everything
            for r in await svc.reconciler.check_all():
                assert r.ok, r.to_json()
                assert r.vault_holdings >= r.vault_settled  # solvent
                assert r.vault_holdings == r.vault_settled + r.in_flight
            # Bob's loss left chain B; Alice's payout arrived on chain C through the token bridge
            # (or out of the liquidity account's balance there).
            vault_b = contract(w3[chain_b.chain_id], "CollateralVault", chain_b.vault)
            assert await asyncio.to_thread(vault_b.functions.balanceOf(bob.address, chain_b.token).call) < 10_000 * USDC
            delivered = [m for m in store.list("delivered")]
            assert len({m.id for m in delivered}) == len(delivered) and delivered
    finally:
        for p in procs:
            p.stop()
