"""Oracle price reports: signed/s and verified/s (Python), and gas to verify on-chain.

Python side: a report signed by 3 oracle keys (coincurve, precomputed type hash and domain
separator) and verified (3 recoveries + signer-set checks), against eth-account's
typed-data path for reference. Chain side: an anvil on a free port (started and stopped
here), one PriceReportVerifier per signer count, gas of ``submitReport`` for 1, 3 and 5
signatures (threshold = signatures): the first report of a feed (cold storage) and a
later one (warm), plus gas of ``OracleFeed.updateFromReport`` (verify + new round).

    python -m bench.bench_oracle_reports [--n 2000]
"""

from __future__ import annotations

import argparse
import time

from eth_account import Account
from eth_account.messages import encode_typed_data
from web3 import Web3

from bridges.anvil import DEV_KEYS, free_port, start_anvil
from bridges.contracts import contract, ensure_built, send_tx
from oracles.deploy import deploy_oracle_contracts
from oracles.report import Eip712Domain, PriceReport, ReportSigner, feed_id, verify_report
from oracles.types import MarketStatus

DOMAIN = Eip712Domain(31337, "0x5FbDB2315678afecb367f032d93F642f64180aa3")


def reports(n: int) -> list[PriceReport]:
    return [PriceReport(feed_id("ETH-USD"), 3000_00000000 + i, 1_00000000, 1_750_000_000 + i, 1) for i in range(n)]


def bench_python(n: int) -> None:
    signer = ReportSigner(DEV_KEYS[1:4])
    rs = reports(n)
    t0 = time.perf_counter()
    signed = [signer.sign(r, DOMAIN) for r in rs]
    t_sign = time.perf_counter() - t0
    t0 = time.perf_counter()
    for s in signed:
        verify_report(s, signer.addresses, 3)
    t_verify = time.perf_counter() - t0
    m = max(50, n // 20)
    acct = Account.from_key(DEV_KEYS[1])
    t0 = time.perf_counter()
    for r in rs[:m]:
        acct.sign_message(encode_typed_data(full_message=r.typed_data(DOMAIN)))
    t_slow = (time.perf_counter() - t0) / m
    print(f"python, 3 signers per report, n={n}")
    print(f"  sign   (coincurve, precomputed digest): {n / t_sign:10,.0f} reports/s  ({t_sign / n * 1e6:7.1f} us/report)")
    print(f"  verify (3 recoveries + set checks)    : {n / t_verify:10,.0f} reports/s  ({t_verify / n * 1e6:7.1f} us/report)")
    print(f"  eth-account typed-data sign, 1 key    : {1 / t_slow:10,.0f} sigs/s     ({t_slow * 1e6:7.1f} us/sig, reference)")


def bench_gas() -> None:
    ensure_built()
    proc = start_anvil(free_port(), 31337)
    try:
        w3 = Web3(Web3.HTTPProvider(proc.rpc_url))
        sender = Account.from_key(DEV_KEYS[7]).address
        print("on-chain gas (anvil), submitReport / OracleFeed.updateFromReport")
        print(f"  {'signers':>7} {'first report':>13} {'next report':>12} {'via feed':>9}")
        for n in (1, 3, 5):
            signer = ReportSigner(DEV_KEYS[1:1 + n])
            addrs = deploy_oracle_contracts(w3, DEV_KEYS[0], list(signer.addresses), n, ["ETH-USD", "BTC-USD"])
            domain = Eip712Domain(31337, addrs["PriceReportVerifier"])
            v = contract(w3, "PriceReportVerifier", addrs["PriceReportVerifier"])
            gas = []
            for i in range(2):
                ts = int(w3.eth.get_block("latest")["timestamp"]) - 10 + i
                r = PriceReport(feed_id("ETH-USD"), 3000_00000000 + i, 1_00000000, ts, int(MarketStatus.OPEN))
                s = signer.sign(r, domain)
                rc = send_tx(w3, DEV_KEYS[7], v.functions.submitReport(r.as_tuple(), list(s.signatures))
                             .build_transaction({"from": sender}))
                gas.append(rc["gasUsed"])
            feed = contract(w3, "OracleFeed", addrs["feed:BTC-USD"])
            feed_gas = []
            for i in range(2):
                ts = int(w3.eth.get_block("latest")["timestamp"]) - 10 + i
                r = PriceReport(feed_id("BTC-USD"), 95000_00000000 + i, 1_00000000, ts, int(MarketStatus.OPEN))
                s = signer.sign(r, domain)
                rc = send_tx(w3, DEV_KEYS[7], feed.functions.updateFromReport(r.as_tuple(), list(s.signatures))
                             .build_transaction({"from": sender}))
                feed_gas.append(rc["gasUsed"])
            print(f"  {n:>7} {gas[0]:>13,} {gas[1]:>12,} {feed_gas[1]:>9,}")
        print("  (gasUsed of the whole transaction, 21,000 base and calldata included; 'via feed' = a later report)")
    finally:
        proc.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--no-chain", action="store_true")
    args = ap.parse_args()
    bench_python(args.n)
    if not args.no_chain:
        bench_gas()


if __name__ == "__main__":
    main()
