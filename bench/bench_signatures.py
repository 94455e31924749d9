"""Benchmark EIP-712 digests and signer recovery: fast path vs eth-account.

    python bench/bench_signatures.py [--n 20000]

Digest: ``aggregator.eip712.digest`` (precomputed type hash and domain separator, packed
encoding, keccak) vs ``eth_account.messages.encode_typed_data`` + its EIP-191 hash, on
distinct Order messages. Recovery: ``aggregator.eip712.recover`` (coincurve directly,
low-s and v checks, EIP-55 checksum) vs ``Account._recover_hash`` (eth-account, which uses
coincurve through eth-keys when it is installed). Single thread.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from eth_account import Account  # noqa: E402
from eth_account.messages import _hash_eip191_message, encode_typed_data  # noqa: E402

from aggregator.eip712 import Domain, Order, digest, keccak, recover, sign_digest, typed_data  # noqa: E402


def rate(fn, items) -> float:
    t0 = time.perf_counter()
    for x in items:
        fn(x)
    return len(items) / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=20_000)
    a = ap.parse_args()
    n = a.n
    key = keccak(b"omniclear-bench-key")
    acct = Account.from_key(key).address
    dom = Domain(31337, "0x5FbDB2315678afecb367f032d93F642f64180aa3")
    orders = [Order(acct, "ETH-PERP", 1 + i % 2, 1, 1, 1, False, 3_000_000_000 + i * 10_000, 1 + i % 100, i, i,
                    1_800_000_000) for i in range(n)]
    slow_n = max(200, n // 20)
    tds = [typed_data(dom, o) for o in orders[:slow_n]]

    fast = rate(lambda o: digest(dom, o), orders)
    slow = rate(lambda td: _hash_eip191_message(encode_typed_data(full_message=td)), tds)
    print(f"python {sys.version.split()[0]}")
    print(f"digest   fast path (aggregator.eip712.digest):   {fast:>10,.0f} /s  ({1e6 / fast:7.2f} us)")
    print(f"digest   eth_account encode_typed_data:          {slow:>10,.0f} /s  ({1e6 / slow:7.2f} us)"
          f"   -> {fast / slow:.0f}x")

    digests = [digest(dom, o) for o in orders]
    sigs = [sign_digest(key, d) for d in digests]
    pairs = list(zip(digests, sigs))
    assert all(recover(d, s) == acct for d, s in pairs[:100])
    fast_r = rate(lambda p: recover(p[0], p[1]), pairs)
    slow_r = rate(lambda p: Account._recover_hash(p[0], signature=p[1]), pairs[: max(200, n // 4)])
    print(f"recover  coincurve direct (aggregator.eip712):   {fast_r:>10,.0f} /s  ({1e6 / fast_r:7.2f} us)")
    print(f"recover  eth_account Account._recover_hash:      {slow_r:>10,.0f} /s  ({1e6 / slow_r:7.2f} us)"
          f"   -> {fast_r / slow_r:.1f}x")
    full = rate(lambda o: recover(digest(dom, o), sigs[o.nonce]), orders)
    print(f"verify   digest + recover, per order:            {full:>10,.0f} /s  ({1e6 / full:7.2f} us)")


if __name__ == "__main__":
    main()
