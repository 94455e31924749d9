"""State-root vectors shared by pytest and forge: build, and write with ``python -m``.

    python -m tests.core.merkle_vectors   # rewrites contracts/test/vectors/state_root.json

Seven accounts (one with a negative balance, one at zero) in creation order, the root
``aggregator.core.merkle`` computes over them and every account's proof. Forge checks each
proof with OpenZeppelin's ``MerkleProof.verify`` against a leaf it computes itself, so an
on-chain escape hatch can prove a balance under a batch's ``stateRoot``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from aggregator.core.merkle import MerkleTree, leaf_hash
from aggregator.eip712 import keccak, to_checksum_address

VECTORS_FILE = Path(__file__).resolve().parents[2] / "contracts" / "test" / "vectors" / "state_root.json"

ACCOUNTS = [to_checksum_address("0x" + keccak(f"omniclear-merkle-{i}".encode())[12:].hex()) for i in range(7)]
BALANCES = [1_000_000_000, 5, -250_000, 0, 2**128, 123_456_789, 42]


def build() -> dict[str, Any]:
    tree = MerkleTree(zip(ACCOUNTS, BALANCES))
    return {
        "root": "0x" + tree.root.hex(),
        "leaves": [{"account": a, "balance": str(b), "leaf": "0x" + leaf_hash(a, b).hex(),
                    "proof": ["0x" + p.hex() for p in tree.proof(a)]} for a, b in zip(ACCOUNTS, BALANCES)],
    }


def render() -> str:
    return json.dumps(build(), indent=2) + "\n"


if __name__ == "__main__":
    VECTORS_FILE.parent.mkdir(parents=True, exist_ok=True)
    VECTORS_FILE.write_text(render())
    print(f"wrote {VECTORS_FILE}")
