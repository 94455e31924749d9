"""The main job: an end-to-end run on a fresh local devnet, reconciled chain by chain.

Steps: start one anvil per chain on free ports (a running devnet is never touched),
deploy, start the service (watchers, sequencer, oracle, API) on a fresh database and
journal, fund traders and a market maker and deposit through the real vaults on every
chain, wait until the API shows every credit (ledger and sequencer), then trade: the
market maker quotes perpetuals and options on both sides, the traders (who deposited on
different chains) take with IOC orders, all signed EIP-712 through the public API
(``aggregator.demo_trading``). Finally each chain's vault figures read from the chain are
put next to the ledger's, and the sequencer's books are checked for conservation.

Exit status is 0 only if every chain reconciles exactly (vault token holdings == vault
settled total == ledger settled total, and every account's on-chain balance == its
ledger balance), the sequencer conserves money (sum of all balances, fee and insurance
accounts included, == sum of credited deposits) and trades happened.
"""

from __future__ import annotations

import asyncio
import json
import random
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from eth_account import Account

from aggregator import devnet
from aggregator.config import Settings
from aggregator.demo_settlement import request_withdrawals, wait_paid
from aggregator.demo_trading import account_rows, run_trading
from aggregator.db import make_engine
from aggregator.service import Service
from aggregator.traders import DepositReceipt, deposit, fund_gas
from bridges.anvil import free_port
from bridges.contracts import contract

SEED = 20261124
MAKER_DEPOSIT = 1_000_000  # whole USDC the market maker deposits on the hub chain (the faucet cap)


@dataclass
class ChainRow:
    name: str
    chain_id: int
    decimals: int
    vault_holdings: int
    vault_settled: int
    ledger_settled: int
    deposits_onchain: int
    deposits_ledger: int
    in_flight: int = 0  # minted by the bridge for a batch the vault has not applied yet
    account_mismatches: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return (self.vault_holdings == self.vault_settled + self.in_flight and self.vault_settled == self.ledger_settled
                and self.deposits_onchain == self.deposits_ledger and not self.account_mismatches)


def _fmt_units(amount: int, decimals: int) -> str:
    whole, frac = divmod(amount, 10**decimals)
    return f"{whole:,}.{frac:0{decimals}d}"[: len(f"{whole:,}") + 1 + min(decimals, 6)]


async def _wait_credited(session: aiohttp.ClientSession, url: str, expected: dict[str, int],
                         sent_at: dict[str, float], timeout: float = 90.0) -> dict[str, float]:
    """Poll the API until every account shows its expected total; return credit times."""
    credited_at: dict[str, float] = {}
    deadline = time.monotonic() + timeout
    pending = dict(expected)
    while pending and time.monotonic() < deadline:
        for addr, total in list(pending.items()):
            async with session.get(f"{url}/v1/accounts/{addr}") as r:
                if r.status == 200 and int((await r.json())["total"]) >= total:
                    credited_at[addr] = time.monotonic()
                    del pending[addr]
        await asyncio.sleep(0.02)
    if pending:
        raise TimeoutError(f"{len(pending)} accounts not credited within {timeout:g}s")
    return credited_at


async def _wait_collateral(session: aiohttp.ClientSession, url: str, expected: dict[str, int],
                           timeout: float = 30.0) -> None:
    """Poll until the sequencer shows every account's credited collateral (it trades on that)."""
    deadline = time.monotonic() + timeout
    pending = dict(expected)
    while pending:
        for addr, total in list(pending.items()):
            async with session.get(f"{url}/v1/accounts/{addr}/margin") as r:
                body = await r.json()
                if r.status == 200 and int(body.get("total_collateral") or 0) >= total:
                    del pending[addr]
        if pending and time.monotonic() > deadline:
            raise TimeoutError(f"{len(pending)} accounts have no collateral in the sequencer after {timeout:g}s")
        await asyncio.sleep(0.05)


def _trading_summary(figs: Any, accts: list[dict[str, Any]], maker: str, seconds: float,
                     tickers: list[dict[str, Any]]) -> dict[str, Any]:
    """Trades, volume, positions and margin per account from the API's answers.

    Every trade appears as one maker fill and one taker fill; counting the taker fills of
    all participants counts each trade once. Volume is notional in 1e-6 USDC.
    """
    per = []
    trades = 0
    volume = 0
    for a in accts:
        for f in a["fills"]:
            if f["liquidity"] == "taker":
                trades += 1
                volume += int(f["price"]) * int(f["size"]) // 10 ** figs.size_decimals[f["instrument"]]
        m = a["margin"]
        per.append({
            "account": a["address"], "role": "market maker" if a["address"] == maker else "trader",
            "balances": m.get("balances", {}), "equity": int(m.get("equity", 0)),
            "initial_margin": int(m.get("initial_margin", 0)),
            "maintenance_margin": int(m.get("maintenance_margin", 0)),
            "free_collateral": int(m.get("free_collateral", 0)), "fills": len(a["fills"]),
            "positions": [{"instrument": p["instrument"], "size": int(p["size"]), "avg_entry": p.get("avg_entry"),
                           "mark": p.get("mark"), "unrealised_pnl": p.get("unrealised_pnl"),
                           "liquidation_price": p.get("liquidation_price"), "adl_rank": p.get("adl_rank")}
                          for p in m.get("positions", [])],
            "greeks": m.get("greeks", {}),
        })
    traded = [t for t in tickers if t["day"]["trades"]]
    return {"markets": figs.markets, "orders_sent": figs.orders_sent, "orders_accepted": figs.orders_accepted,
            "rejects": figs.rejects, "trades": trades, "volume_usdc_e6": volume, "seconds": seconds,
            # the venue's own 24-hour figures (GET /v1/tickers): the same trades, counted by the core
            "tickers": [{"instrument": t["instrument"], "trades_24h": t["day"]["trades"],
                         "volume_24h": t["day"]["volume"], "quote_volume_24h_usdc_e6": t["day"]["quote_volume"],
                         "last": t["last_price"], "mark": t["mark"], "open_interest": t["open_interest"]}
                        for t in traded],
            "ticker_volume_matches_fills": sum(t["day"]["quote_volume"] for t in traded) == volume
            and sum(t["day"]["trades"] for t in traded) == trades,
            "batch_ack_ms_median": statistics.median(figs.ack_ms) if figs.ack_ms else None,
            "maker_switch_deadline_ms": figs.switch_deadline_ms, "accounts": per}


def _print_trading(t: dict[str, Any]) -> None:
    print(f"\ntrading: {t['trades']} trades, volume {_fmt_units(t['volume_usdc_e6'], 6)} USDC on "
          f"{len(t['markets'])} markets ({', '.join(t['markets'])}); {t['orders_accepted']}/{t['orders_sent']} "
          f"orders accepted in {t['seconds']:.2f}s" + (f", rejects {t['rejects']}" if t["rejects"] else ""))
    if t.get("maker_switch_deadline_ms"):
        print("market maker's dead man's switch armed: its quotes are cancelled at "
              f"{t['maker_switch_deadline_ms']} ms unless it re-arms")
    print(f"tickers (24 h, by the venue): {sum(x['trades_24h'] for x in t['tickers'])} trades, "
          f"{_fmt_units(sum(x['quote_volume_24h_usdc_e6'] for x in t['tickers']), 6)} USDC on "
          f"{len(t['tickers'])} instruments; equal to the fills' count: {t['ticker_volume_matches_fills']}")
    print(f"{'account':<44} {'role':<13} {'equity':>16} {'init. margin':>14} {'free':>16} {'fills':>5}  positions")
    for a in t["accounts"]:
        pos = ", ".join(f"{p['instrument']} {p['size']:+d}" for p in a["positions"]) or "-"
        print(f"{a['account']:<44} {a['role']:<13} {_fmt_units(a['equity'], 6):>16} "
              f"{_fmt_units(a['initial_margin'], 6):>14} {_fmt_units(a['free_collateral'], 6):>16} "
              f"{a['fills']:>5}  {pos}")


async def _start_relayer(dep: devnet.Deployment, engine: Any) -> tuple[Any, asyncio.Task, asyncio.Event]:
    """Run the relayer daemon's core in this process (same code as ``aggregator relayer``)."""
    from bridges.relay_store import RelayStore
    from bridges.relayer import build_relayer

    store = RelayStore(engine)
    await asyncio.to_thread(store.create_tables)
    relayer = build_relayer(dep, store)
    stop = asyncio.Event()

    async def run() -> None:
        from bridges.relayer import close_relayer

        try:
            await relayer.run(stop)
        finally:
            await close_relayer(relayer)

    return relayer, asyncio.create_task(run(), name="relayer"), stop


async def _wait_settled(svc: Service, timeout: float = 60.0) -> int:
    """Wait until every chain's vault applied the batches closed so far (and the ledger
    recorded it); return that batch number. Marks keep moving, so batches keep closing:
    the target is the newest batch when the wait starts."""
    seq = svc.sequencer.sequencer
    last = seq.last_batch()
    if last is None:
        return 0
    deadline = time.monotonic() + timeout
    while not all(seq.last_settled_batch(c) >= last.number for c in last.domains):
        if time.monotonic() > deadline:
            behind = {c: seq.last_settled_batch(c) for c in last.domains}
            raise TimeoutError(f"batch {last.number} not applied on every chain in time: {behind}")
        await asyncio.sleep(0.1)
    return last.number


async def _settlement_summary(svc: Service, relayer: Any, figs: Any, trades: int, seconds: float) -> dict[str, Any]:
    """Withdrawals paid, netting, and gas spent per chain (hub commits + relayed deliveries)."""
    seq = svc.sequencer.sequencer
    gas: dict[int, int] = {}
    txs: dict[int, int] = {}
    for rec in svc.batcher.records.values() if svc.batcher else ():
        if rec.gas_used:
            hub = svc.deployment.hub.chain_id
            gas[hub] = gas.get(hub, 0) + rec.gas_used
            txs[hub] = txs.get(hub, 0) + 1
    rows = await asyncio.to_thread(relayer.store.list, None, 10_000)
    by_chain = {c.chain_id: c for c in svc.deployment.chains}
    w3s = {c.chain_id: devnet.web3_for(c.rpc_url) for c in svc.deployment.chains}
    for row in rows:
        if row.tx_hash and row.status == "delivered":
            try:
                receipt = await asyncio.to_thread(w3s[row.destination].eth.get_transaction_receipt, row.tx_hash)
            except Exception:  # noqa: BLE001 - delivered by another relayer's tx: not ours to count
                continue
            gas[row.destination] = gas.get(row.destination, 0) + int(receipt["gasUsed"])
            txs[row.destination] = txs.get(row.destination, 0) + 1
    paid = [w for w in figs.withdrawals if w.paid_at is not None]
    exact = all(w.recipient_after - w.recipient_before == w.amount_native for w in figs.withdrawals)
    lat = sorted(w.paid_at - w.requested_at for w in paid)
    net = seq.netting()
    total_gas = sum(gas.values())
    return {
        "ok": len(paid) == len(figs.withdrawals) and exact and bool(figs.withdrawals)
              and figs.refused.get("insufficient_free_collateral", 0) == len(figs.withdrawals),
        "withdrawals": [{"id": w.id, "account": w.account, "chain_id": w.chain_id, "amount_native": str(w.amount_native),
                         "batch": w.batch_number, "tx_hash": w.tx_hash,
                         "received": str(w.recipient_after - w.recipient_before),
                         "latency_s": None if w.paid_at is None else w.paid_at - w.requested_at}
                        for w in figs.withdrawals],
        "refused": figs.refused,
        "withdrawal_latency_s": {"median": statistics.median(lat) if lat else None, "max": lat[-1] if lat else None},
        "batches": net["batches"], "gross_cross_chain_e6": net["gross"], "bridged_e6": net["bridged"],
        "netting_efficiency_bps": net["efficiency_bps"],
        "gas_by_chain": {by_chain[c].name: {"gas": g, "transactions": txs[c]} for c, g in sorted(gas.items())},
        "gas_total": total_gas, "gas_per_trade": total_gas // trades if trades else None,
        "relayed_messages": sum(1 for r in rows if r.status == "delivered"), "seconds": seconds,
    }


def _print_settlement(s: dict[str, Any]) -> None:
    n = len(s["withdrawals"])
    print(f"\nsettlement: {s['batches']} batches, {s['relayed_messages']} messages relayed; "
          f"{sum(1 for w in s['withdrawals'] if w['tx_hash'])}/{n} withdrawals paid on a chain other than the "
          f"deposit chain (median {s['withdrawal_latency_s']['median'] or 0:.2f}s, max "
          f"{s['withdrawal_latency_s']['max'] or 0:.2f}s); refused as expected: {s['refused']}")
    eff = s["netting_efficiency_bps"] / 100
    print(f"netting: gross cross-chain obligations {_fmt_units(s['gross_cross_chain_e6'], 6)} USDC, bridged "
          f"{_fmt_units(s['bridged_e6'], 6)} USDC, efficiency {eff:.2f}%")
    per = ", ".join(f"{k} {v['gas']:,} gas in {v['transactions']} tx" for k, v in s["gas_by_chain"].items())
    print(f"gas: {per}; {s['gas_total']:,} in total, {s['gas_per_trade'] or 0:,} per trade")


async def _reconcile(svc: Service, ledger_chains: dict[int, dict[str, Any]]) -> list[ChainRow]:
    """Run the service's reconciler now and add each vault's deposit count to its figures."""
    rows = []
    for r in await svc.reconciler.check_all():
        c = svc.deployment.chain(r.chain_id)
        vault = contract(devnet.web3_for(c.rpc_url), "CollateralVault", c.vault)
        nonce = int(await asyncio.to_thread(vault.functions.lastDepositNonce().call))
        row = ChainRow(c.name, c.chain_id, c.token_decimals, r.vault_holdings, r.vault_settled, r.ledger_settled,
                       nonce, int(ledger_chains[c.chain_id]["deposits"]), r.in_flight)
        row.account_mismatches = [f"{a}: chain {v} ledger {lv}" for a, v, lv in r.account_mismatches]
        if r.error:
            row.account_mismatches.append(f"chain did not answer: {r.error}")
        rows.append(row)
    return rows


def _print_table(rows: list[ChainRow]) -> None:
    print()
    print(f"{'chain':<10} {'id':>6} {'dec':>3}  {'vault holdings (chain)':>24} {'settled (chain)':>20} "
          f"{'in flight':>14} {'settled (ledger)':>20} {'deposits':>9}  verdict")
    for r in rows:
        print(f"{r.name:<10} {r.chain_id:>6} {r.decimals:>3}  {_fmt_units(r.vault_holdings, r.decimals):>24} "
              f"{_fmt_units(r.vault_settled, r.decimals):>20} {_fmt_units(r.in_flight, r.decimals):>14} "
              f"{_fmt_units(r.ledger_settled, r.decimals):>20} "
              f"{r.deposits_ledger:>4}/{r.deposits_onchain:<4}  {'RECONCILED' if r.ok else 'MISMATCH'}")
        for m in r.account_mismatches:
            print(f"    account mismatch {m}")


async def _oracle_feeds(svc: Service) -> list[dict[str, Any]]:
    """Print the oracle feeds the run used: price, status and why (from the live service)."""
    if svc.oracle_service is None:
        return []
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{svc.url}/v1/prices") as r:
            body = await r.json()
    rows = [{k: f.get(k) for k in ("feed", "price", "status", "reason", "market_status", "timestamp")}
            for f in body["prices"]]
    print(f"\n{'feed':<12} {'price':>16}  {'status':<14} reason")
    for f in rows:
        print(f"{f['feed']:<12} {str(f['price'] or '-'):>16}  {str(f['status']):<14} {f.get('reason') or ''}")
    return rows


async def run_demo(settings: Settings, report_path: Path | None = None, traders: int = 6,
                   db_url: str | None = None) -> bool:
    """Run the scenario; return True if every chain reconciles."""
    rng = random.Random(SEED)
    work = Path(tempfile.mkdtemp(prefix="omniclear-demo-"))
    settings = settings.with_ports({c.name: free_port() for c in settings.chains if c.launch})
    print(f"devnet: starting {len(settings.chains)} chains ({', '.join(c.name for c in settings.chains)})")
    dep, procs = await asyncio.to_thread(devnet.up, settings, work, detach=False)
    svc: Service | None = None
    try:
        engine = make_engine(db_url or f"sqlite:///{work / 'omniclear.db'}")
        svc = Service(settings, dep, engine, port=free_port(), journal_dir=work / "journal")
        await svc.start()
        print(f"service: API on {svc.url}, watching {len(dep.chains)} vaults")

        keys = [Account.create() for _ in range(traders)]
        maker = Account.create()
        hub = next(c for c in dep.chains if c.hub)
        plan: list[tuple[Any, devnet.ChainDeployment, int]] = [(maker, hub, MAKER_DEPOSIT * 10**hub.token_decimals)]
        for i, acct in enumerate(keys):
            chains = dep.chains if i % 2 == 0 else rng.sample(dep.chains, 2)
            for c in chains:
                whole = rng.randint(1_000, 50_000)
                plan.append((acct, c, whole * 10**c.token_decimals + rng.randint(0, 10**c.token_decimals - 1)))
        w3s = {c.chain_id: devnet.web3_for(c.rpc_url) for c in dep.chains}
        for acct in [maker, *keys]:
            for c in dep.chains:
                await asyncio.to_thread(fund_gas, w3s[c.chain_id], acct.address)

        expected: dict[str, int] = {}
        sent_at: dict[str, float] = {}
        for acct, c, amount in plan:
            expected[acct.address] = expected.get(acct.address, 0) + svc.ledger.to_internal(c.chain_id, amount)

        async def one(acct, c, amount) -> DepositReceipt:
            r = await asyncio.to_thread(deposit, w3s[c.chain_id], c, acct.key.to_0x_hex(), amount)
            sent_at[acct.address] = max(sent_at.get(acct.address, 0.0), time.monotonic())
            return r

        # One trader's deposits on one chain go in order; different chains run concurrently.
        by_chain: dict[int, list] = {}
        for item in plan:
            by_chain.setdefault(item[1].chain_id, []).append(item)

        async def chain_worker(items):
            return [await one(*it) for it in items]

        t0 = time.monotonic()
        receipts = [r for rs in await asyncio.gather(*(chain_worker(v) for v in by_chain.values())) for r in rs]
        print(f"deposits: {len(receipts)} confirmed on-chain in {time.monotonic() - t0:.2f}s "
              f"by {traders} traders and a market maker on {len(by_chain)} chains")

        async with aiohttp.ClientSession() as session:
            credited_at = await _wait_credited(session, svc.url, expected, sent_at)
            latencies = [credited_at[a] - sent_at[a] for a in credited_at]
            await _wait_collateral(session, svc.url, expected)

        t0 = time.monotonic()
        figs = await run_trading(svc.url, bytes(maker.key), [bytes(k.key) for k in keys], rng)
        trading_s = time.monotonic() - t0
        async with aiohttp.ClientSession() as session:
            accts = await account_rows(session, svc.url, [maker.address] + [k.address for k in keys])
            async with session.get(f"{svc.url}/v1/chains") as r:
                ledger_chains = {c["chain_id"]: c for c in (await r.json())["chains"]}
            async with session.get(f"{svc.url}/v1/tickers") as r:
                tickers = (await r.json())["tickers"]
        trading = _trading_summary(figs, accts, maker.address, trading_s, tickers)
        _print_trading(trading)

        relayer, relayer_task, relay_stop = await _start_relayer(dep, engine)
        t0 = time.monotonic()
        sfigs = await request_withdrawals(svc.url, [bytes(k.key) for k in keys], dep.chains, rng)
        await wait_paid(svc.url, sfigs, {c.chain_id: c for c in dep.chains})
        # Let the last batch's confirmations reach the vault watchers before reconciling.
        await _wait_settled(svc)
        settlement = await _settlement_summary(svc, relayer, sfigs, trading["trades"], time.monotonic() - t0)
        relay_stop.set()
        await relayer_task
        _print_settlement(settlement)
        seq = svc.sequencer.sequencer
        conservation = {"sum_of_balances": seq.total_balance(), "credited_deposits": seq.deposited,
                        "withdrawn": seq.withdrawn, "state_root": "0x" + seq.state_root().hex(),
                        "last_seq": svc.sequencer.last_seq}
        conserved = conservation["sum_of_balances"] == conservation["credited_deposits"] - conservation["withdrawn"]
        print(f"conservation: sum of all balances {conservation['sum_of_balances']:,} == credited deposits "
              f"{conservation['credited_deposits']:,} - withdrawn {conservation['withdrawn']:,} (1e-6 USDC): "
              f"{'OK' if conserved else 'BROKEN'}; state root {conservation['state_root'][:18]}... "
              f"at seq {conservation['last_seq']}")

        rows = await _reconcile(svc, ledger_chains)
        _print_table(rows)
        feeds = await _oracle_feeds(svc)
        ok = (all(r.ok for r in rows) and conserved and trading["trades"] > 0 and settlement["ok"])
        floor = max(c.confirmations * c.block_time for c in settings.chains)
        print(f"\ncredit latency after the last deposit's receipt: median {statistics.median(latencies):.3f}s, "
              f"max {max(latencies):.3f}s (floor: confirmations x block time = {floor:.2f}s on the slowest chain)")
        print(f"verdict: {'every chain reconciles' if ok else 'RECONCILIATION FAILED'}")
        if report_path:
            report = {
                "ok": ok,
                "chains": [{**r.__dict__, "ok": r.ok} for r in rows],
                "traders": traders,
                "deposits": len(receipts),
                "credit_latency_s": {"median": statistics.median(latencies), "max": max(latencies)},
                "trading": trading,
                "settlement": settlement,
                "conservation": {**conservation, "ok": conserved},
                "feeds": feeds,
            }
            report_path.parent.mkdir(parents=True, exist_ok=True)
            report_path.write_text(json.dumps(report, indent=2, default=str))
            print(f"report written to {report_path}")
        return ok
    finally:
        if svc is not None:
            await svc.stop()
        for p in procs:
            p.stop()
