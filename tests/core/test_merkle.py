"""State root: the incremental tree equals a fresh one, every balance proves, vectors are current."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from aggregator.core.merkle import EMPTY_ROOT, MerkleTree, verify
from tests.core import merkle_vectors as mv

ACCOUNTS = ["0x" + f"{i:040x}" for i in range(1, 40)]


def test_vectors_file_is_current():
    assert mv.VECTORS_FILE.read_text() == mv.render(), "run: python -m tests.core.merkle_vectors"


def test_empty_and_single_leaf_roots():
    assert MerkleTree().root == EMPTY_ROOT
    t = MerkleTree([(ACCOUNTS[0], 7)])
    assert t.proof(ACCOUNTS[0]) == [] and verify(t.root, ACCOUNTS[0], 7, [])


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.integers(0, len(ACCOUNTS) - 1), st.integers(-10**20, 10**20)), min_size=1,
                max_size=120),
       st.sets(st.integers(0, 119)))
def test_incremental_updates_equal_a_fresh_tree_and_every_balance_proves(ops, read_at):
    tree, state = MerkleTree(), {}
    for step, (i, balance) in enumerate(ops):
        tree.set(ACCOUNTS[i], balance)
        state[ACCOUNTS[i]] = balance  # insertion order = first time seen, as the tree keeps it
        if step in read_at:  # roots read in between must not disturb later updates
            assert tree.root == MerkleTree(state.items()).root
    root = tree.root
    assert root == MerkleTree(state.items()).root
    for a, b in state.items():
        proof = tree.proof(a)
        assert verify(root, a, b, proof)
        assert not verify(root, a, b + 1, proof)


def test_sequencer_root_proves_every_account_after_trading():
    from aggregator.core.sequencer import verify_proof
    from tests.sequencer.helpers import ALICE, BOB, CAROL, USDC, Harness

    h = Harness()
    h.tick()
    h.price("ETH-USD", 3000)
    for a in (ALICE, BOB, CAROL):
        h.deposit(a, 10_000 * USDC)
    h.place(BOB, "ETH-PERP", 2, 3_000 * USDC, 1000)
    h.place(ALICE, "ETH-PERP", 1, 3_010 * USDC, 1000)
    root = h.seq.state_root()
    h.price("ETH-USD", 3100)  # moves two balances: only their paths change
    new_root = h.seq.state_root()
    assert new_root != root
    for a, bal in h.seq.balances().items():
        assert verify_proof(new_root, a, bal, h.seq.proof(a))
    assert not verify_proof(new_root, ALICE, h.seq.balances()[ALICE] + 1, h.seq.proof(ALICE))
