// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {SettlementHub} from "../../src/SettlementHub.sol";
import {ISettlementHub} from "../../src/interfaces/ISettlementHub.sol";
import {Message} from "../../src/libraries/Message.sol";
import {Settlement} from "../../src/libraries/Settlement.sol";
import {SettlementSystem} from "./SettlementSystem.sol";

/**
 * @dev SettlementHub on its own: a valid batch is committed and dispatches exactly one message
 * per registered domain (ids recomputed here from the codec); every batch rule reverts with its
 * exact custom error and offending values; admin functions are owner-only. The hub never looks
 * at vault balances, so no deposits are needed; delivery is covered by VaultSettlement.t.sol.
 */
contract SettlementHubTest is SettlementSystem {
    address internal alice;
    address internal bob;
    address internal stranger;

    event BatchCommitted(uint64 indexed batchNumber, bytes32 indexed batchHash, bytes32 stateRoot);
    event SettlementDispatched(uint64 indexed batchNumber, uint32 indexed domain, bytes32 messageId);
    event SequencerSet(address sequencer);
    event VaultSet(uint32 indexed domain, address vault);

    function setUp() public {
        _deploySystem();
        alice = makeAddr("alice");
        bob = makeAddr("bob");
        stranger = makeAddr("stranger");
    }

    // ------------------------------------------------------------------ helpers

    /// @dev The message the hub dispatches for `s` as the path's `nonce`-th message.
    function _expectedMessage(uint32 nonce, Settlement.ChainSettlement memory s) internal view returns (bytes memory) {
        return Message.formatMessage(
            1,
            nonce,
            HUB,
            Message.addressToBytes32(address(hub)),
            s.domain,
            Message.addressToBytes32(address(chains[s.domain].vault)),
            abi.encode(s)
        );
    }

    /// @dev Sign `s` correctly (so only the rule under test fails) and expect `err`.
    function _expectReject(Settlement.ChainSettlement[] memory s, bytes memory err) internal {
        Settlement.BatchHeader memory h = _header(s);
        bytes memory sig = _signBatch(h, sequencerKey);
        vm.expectRevert(err);
        hub.submitBatch(h, s, sig);
    }

    /// @dev A batch moving `amount` from alice on HUB to bob on BNB through the token bridge.
    function _crossChainBatch(uint256 amount) internal view returns (Settlement.ChainSettlement[] memory s) {
        s = _nextBatch();
        s[0].deltas = _deltas1(alice, -int256(amount));
        s[0].bridgeOut = _legs1(BNB, amount);
        s[2].deltas = _deltas1(bob, int256(amount));
        s[2].bridgeIn = _legs1(HUB, amount);
    }

    // ------------------------------------------------------------------ accept

    function test_SubmitBatch_CommitsAndDispatchesOneMessagePerDomain() public {
        Settlement.ChainSettlement[] memory s = _crossChainBatch(250e6);
        s[1].deltas = _deltas2(alice, -10e6, bob, 10e6);
        s[1].withdrawals = _withdrawal1(keccak256("w1"), bob, bob, 10e6);
        Settlement.BatchHeader memory h = _header(s);
        bytes memory sig = _signBatch(h, sequencerKey);
        bytes32 batchHash = hub.hashBatch(h);

        vm.expectEmit(true, true, true, true, address(hub));
        emit BatchCommitted(1, batchHash, h.stateRoot);
        for (uint256 i; i < s.length; ++i) {
            vm.expectEmit(true, true, true, true, address(hub));
            emit SettlementDispatched(1, s[i].domain, keccak256(_expectedMessage(0, s[i])));
        }
        vm.recordLogs();
        hub.submitBatch(h, s, sig);
        _collect();

        vm.assertEq(pending.length, 3, "one message per domain");
        for (uint256 i; i < s.length; ++i) {
            vm.assertEq(pending[i].message, _expectedMessage(0, s[i]), "message bytes");
            vm.assertEq(uint256(pending[i].destination), s[i].domain, "destination");
            vm.assertEq(chains[HUB].mailbox.outboundNonce(address(hub), s[i].domain), 1, "path nonce");
        }
        vm.assertEq(uint256(hub.lastBatchNumber()), 1, "number");
        vm.assertEq(hub.lastBatchHash(), batchHash, "last hash");
        vm.assertEq(hub.batchHash(1), batchHash, "stored hash");
        vm.assertEq(
            batchHash,
            keccak256(
                abi.encode(
                    Settlement.BATCH_TYPEHASH, h.batchNumber, h.prevBatchHash, h.stateRoot, h.journalHash, h.settlementsHash
                )
            ),
            "struct hash"
        );
    }

    function test_SubmitBatch_ChainsBatchesAndNumbersPathNonces() public {
        Settlement.BatchHeader memory h1 = _submit(_nextBatch());
        Settlement.ChainSettlement[] memory s2 = _crossChainBatch(1);
        Settlement.BatchHeader memory h2 = _header(s2);
        vm.assertEq(h2.prevBatchHash, hub.hashBatch(h1), "header chains");
        _submit(s2);
        vm.assertEq(uint256(hub.lastBatchNumber()), 2, "number");
        vm.assertEq(hub.batchHash(1), hub.hashBatch(h1), "first kept");
        vm.assertEq(hub.lastBatchHash(), hub.hashBatch(h2), "second");
        vm.assertEq(pending.length, 6, "three per batch");
        for (uint256 i; i < 3; ++i) {
            vm.assertEq(pending[3 + i].message, _expectedMessage(1, s2[i]), "second message uses nonce 1");
        }
    }

    function test_SubmitBatch_AnyoneMaySubmitASignedBatch() public {
        Settlement.ChainSettlement[] memory s = _nextBatch();
        Settlement.BatchHeader memory h = _header(s);
        bytes memory sig = _signBatch(h, sequencerKey);
        vm.prank(stranger);
        hub.submitBatch(h, s, sig);
        vm.assertEq(uint256(hub.lastBatchNumber()), 1, "committed");
    }

    function test_BatchDigest_IsEip712OverHubDomain() public view {
        Settlement.BatchHeader memory h = _header(_nextBatch());
        bytes32 separator = keccak256(
            abi.encode(
                keccak256("EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"),
                keccak256("Omniclear"),
                keccak256("1"),
                block.chainid,
                address(hub)
            )
        );
        vm.assertEq(
            hub.batchDigest(h), keccak256(abi.encodePacked(hex"1901", separator, hub.hashBatch(h))), "digest"
        );
    }

    /// @dev Any zero-sum trade between any two chains, routed through one bridge leg, is accepted.
    function testFuzz_SubmitBatch_AcceptsZeroSumTransfer(uint256 fromSeed, uint256 toSeed, uint256 amount) public {
        uint256 fromIdx = bound(fromSeed, 0, 2);
        uint256 toIdx = bound(toSeed, 0, 2);
        amount = bound(amount, 1, type(uint128).max);
        Settlement.ChainSettlement[] memory s = _nextBatch();
        if (fromIdx == toIdx) {
            s[fromIdx].deltas = _deltas2(alice, -int256(amount), bob, int256(amount));
        } else {
            s[fromIdx].deltas = _deltas1(alice, -int256(amount));
            s[fromIdx].bridgeOut = _legs1(domainIds[toIdx], amount);
            s[toIdx].deltas = _deltas1(bob, int256(amount));
            s[toIdx].bridgeIn = _legs1(domainIds[fromIdx], amount);
        }
        _submit(s);
        vm.assertEq(pending.length, 3, "dispatched");
        for (uint256 i; i < 3; ++i) {
            vm.assertEq(keccak256(pending[i].message), keccak256(_expectedMessage(0, s[i])), "id");
        }
    }

    // ------------------------------------------------------------------ header rules

    function test_RevertWhen_WrongSequencerSignature() public {
        Settlement.ChainSettlement[] memory s = _nextBatch();
        Settlement.BatchHeader memory h = _header(s);
        bytes memory sig = _signBatch(h, 0xBAD);
        vm.expectRevert(abi.encodeWithSelector(ISettlementHub.BadSequencerSignature.selector, vm.addr(0xBAD)));
        hub.submitBatch(h, s, sig);
    }

    function test_RevertWhen_SignatureOverOtherHeader() public {
        Settlement.ChainSettlement[] memory s = _nextBatch();
        Settlement.BatchHeader memory h = _header(s);
        bytes memory sig = _signBatch(h, sequencerKey);
        h.stateRoot = keccak256("another state");
        vm.expectRevert(); // recovers some unrelated address
        hub.submitBatch(h, s, sig);
        vm.assertEq(uint256(hub.lastBatchNumber()), 0, "nothing committed");
    }

    function test_RevertWhen_MalformedSequencerSignature() public {
        Settlement.ChainSettlement[] memory s = _nextBatch();
        Settlement.BatchHeader memory h = _header(s);
        vm.expectRevert(abi.encodeWithSelector(ISettlementHub.BadSequencerSignature.selector, address(0)));
        hub.submitBatch(h, s, hex"1234");
    }

    /// @dev Any key other than the sequencer's is refused, naming the address it recovered.
    function testFuzz_RevertWhen_SignedByOtherKey(uint256 key) public {
        key = bound(key, 1, 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364140);
        vm.assume(key != sequencerKey);
        Settlement.ChainSettlement[] memory s = _nextBatch();
        Settlement.BatchHeader memory h = _header(s);
        bytes memory sig = _signBatch(h, key);
        vm.expectRevert(abi.encodeWithSelector(ISettlementHub.BadSequencerSignature.selector, vm.addr(key)));
        hub.submitBatch(h, s, sig);
    }

    function test_RevertWhen_BatchNumberSkipped() public {
        Settlement.ChainSettlement[] memory s = _emptyBatch(2);
        Settlement.BatchHeader memory h = _header(s);
        bytes memory sig = _signBatch(h, sequencerKey);
        vm.expectRevert(abi.encodeWithSelector(ISettlementHub.BatchOutOfOrder.selector, uint64(1), uint64(2)));
        hub.submitBatch(h, s, sig);
    }

    function test_RevertWhen_BatchReplayed() public {
        Settlement.ChainSettlement[] memory s = _nextBatch();
        Settlement.BatchHeader memory h = _header(s);
        bytes memory sig = _signBatch(h, sequencerKey);
        hub.submitBatch(h, s, sig);
        vm.expectRevert(abi.encodeWithSelector(ISettlementHub.BatchOutOfOrder.selector, uint64(2), uint64(1)));
        hub.submitBatch(h, s, sig);
    }

    function test_RevertWhen_BadPrevHash() public {
        _submit(_nextBatch());
        Settlement.ChainSettlement[] memory s = _nextBatch();
        Settlement.BatchHeader memory h = _header(s);
        bytes32 good = h.prevBatchHash;
        h.prevBatchHash = keccak256("fork");
        bytes memory sig = _signBatch(h, sequencerKey);
        vm.expectRevert(abi.encodeWithSelector(ISettlementHub.BadPrevHash.selector, good, h.prevBatchHash));
        hub.submitBatch(h, s, sig);
    }

    function test_RevertWhen_FirstBatchHasNonZeroPrevHash() public {
        Settlement.ChainSettlement[] memory s = _nextBatch();
        Settlement.BatchHeader memory h = _header(s);
        h.prevBatchHash = bytes32(uint256(1));
        bytes memory sig = _signBatch(h, sequencerKey);
        vm.expectRevert(abi.encodeWithSelector(ISettlementHub.BadPrevHash.selector, bytes32(0), h.prevBatchHash));
        hub.submitBatch(h, s, sig);
    }

    function test_RevertWhen_SettlementsHashMismatch() public {
        Settlement.ChainSettlement[] memory s = _crossChainBatch(5);
        Settlement.BatchHeader memory h = _header(s);
        bytes memory sig = _signBatch(h, sequencerKey);
        s[2].deltas[0].account = alice; // tampered after signing
        bytes32 actual = keccak256(abi.encode(s));
        vm.expectRevert(
            abi.encodeWithSelector(ISettlementHub.SettlementsHashMismatch.selector, actual, h.settlementsHash)
        );
        hub.submitBatch(h, s, sig);
    }

    // ------------------------------------------------------------------ domain coverage

    function test_RevertWhen_DomainMissing() public {
        Settlement.ChainSettlement[] memory all = _nextBatch();
        Settlement.ChainSettlement[] memory s = new Settlement.ChainSettlement[](2);
        (s[0], s[1]) = (all[0], all[2]);
        _expectReject(s, abi.encodeWithSelector(ISettlementHub.DomainSetMismatch.selector, uint256(3), uint256(2)));
    }

    function test_RevertWhen_ExtraDomain() public {
        Settlement.ChainSettlement[] memory all = _nextBatch();
        Settlement.ChainSettlement[] memory s = new Settlement.ChainSettlement[](4);
        (s[0], s[1], s[2], s[3]) = (all[0], all[1], all[2], all[2]);
        s[3].domain = 99999;
        _expectReject(s, abi.encodeWithSelector(ISettlementHub.DomainSetMismatch.selector, uint256(3), uint256(4)));
    }

    function test_RevertWhen_UnknownDomain() public {
        Settlement.ChainSettlement[] memory s = _nextBatch();
        s[1].domain = 424242;
        _expectReject(s, abi.encodeWithSelector(ISettlementHub.UnknownDomain.selector, uint32(424242)));
    }

    function test_RevertWhen_DuplicateDomain() public {
        Settlement.ChainSettlement[] memory s = _nextBatch();
        s[1].domain = HUB; // HUB twice, ARB missing: index 1 must be ARB
        _expectReject(s, abi.encodeWithSelector(ISettlementHub.UnknownDomain.selector, HUB));
    }

    function test_RevertWhen_DomainsNotAscending() public {
        Settlement.ChainSettlement[] memory s = _nextBatch();
        (s[0], s[1]) = (s[1], s[0]);
        _expectReject(s, abi.encodeWithSelector(ISettlementHub.UnknownDomain.selector, ARB));
    }

    function test_RevertWhen_SettlementCarriesOtherBatchNumber() public {
        Settlement.ChainSettlement[] memory s = _nextBatch();
        s[2].batchNumber = 7;
        _expectReject(s, abi.encodeWithSelector(ISettlementHub.BatchNumberMismatch.selector, BNB, uint64(7)));
    }

    // ------------------------------------------------------------------ balance

    function test_RevertWhen_ChainDeltasDoNotBalance() public {
        Settlement.ChainSettlement[] memory s = _nextBatch();
        s[1].deltas = _deltas2(alice, -100, bob, 99);
        _expectReject(
            s, abi.encodeWithSelector(Settlement.DeltasDoNotBalance.selector, ARB, int256(-1), int256(0))
        );
    }

    function test_RevertWhen_BridgedDeltasDoNotBalance() public {
        Settlement.ChainSettlement[] memory s = _crossChainBatch(100);
        s[2].deltas[0].amount = 101;
        _expectReject(
            s, abi.encodeWithSelector(Settlement.DeltasDoNotBalance.selector, BNB, int256(101), int256(100))
        );
    }

    /// @dev Each chain nets with its legs, but a bridge-out nobody receives leaves Σ deltas ≠ 0.
    function test_RevertWhen_BatchUnbalanced() public {
        Settlement.ChainSettlement[] memory s = _nextBatch();
        s[0].deltas = _deltas1(alice, -100);
        s[0].bridgeOut = _legs1(ARB, 100);
        _expectReject(s, abi.encodeWithSelector(ISettlementHub.Unbalanced.selector, int256(-100)));
    }

    function testFuzz_RevertWhen_ChainDeltasOff(uint256 amount, int128 off, uint256 chainSeed) public {
        vm.assume(off != 0);
        amount = bound(amount, 1, type(uint128).max);
        uint256 idx = bound(chainSeed, 0, 2);
        Settlement.ChainSettlement[] memory s = _nextBatch();
        s[idx].deltas = _deltas2(alice, -int256(amount), bob, int256(amount) + off);
        _expectReject(
            s,
            abi.encodeWithSelector(
                Settlement.DeltasDoNotBalance.selector, domainIds[idx], int256(off), int256(0)
            )
        );
    }

    // ------------------------------------------------------------------ bridge legs

    function test_RevertWhen_BridgeOutUnmatched() public {
        // HUB sends to ARB, but BNB is the one that claims the bridge-in: totals agree, legs do not.
        Settlement.ChainSettlement[] memory s = _nextBatch();
        s[0].deltas = _deltas1(alice, -100);
        s[0].bridgeOut = _legs1(ARB, 100);
        s[2].deltas = _deltas1(bob, 100);
        s[2].bridgeIn = _legs1(HUB, 100);
        _expectReject(s, abi.encodeWithSelector(ISettlementHub.BridgeMismatch.selector, HUB, ARB));
    }

    function test_RevertWhen_BridgeAmountsSwapped() public {
        Settlement.ChainSettlement[] memory s = _nextBatch();
        s[0].deltas = _deltas1(alice, -150);
        s[0].bridgeOut = _legs2(ARB, 100, BNB, 50);
        s[1].deltas = _deltas1(bob, 50);
        s[1].bridgeIn = _legs1(HUB, 50);
        s[2].deltas = _deltas1(bob, 100);
        s[2].bridgeIn = _legs1(HUB, 100);
        _expectReject(s, abi.encodeWithSelector(ISettlementHub.BridgeMismatch.selector, HUB, ARB));
    }

    function test_RevertWhen_ChainBothSendsAndReceives() public {
        // HUB -> ARB -> BNB: ARB relays and would wait on HUB's bridge-in before paying BNB.
        Settlement.ChainSettlement[] memory s = _nextBatch();
        s[0].deltas = _deltas1(alice, -100);
        s[0].bridgeOut = _legs1(ARB, 100);
        s[1].bridgeIn = _legs1(HUB, 100);
        s[1].bridgeOut = _legs1(BNB, 100);
        s[2].deltas = _deltas1(bob, 100);
        s[2].bridgeIn = _legs1(ARB, 100);
        _expectReject(s, abi.encodeWithSelector(ISettlementHub.BridgeCycle.selector, ARB));
    }

    function test_RevertWhen_BridgeLegToSelf() public {
        Settlement.ChainSettlement[] memory s = _nextBatch();
        s[0].deltas = _deltas1(alice, -100);
        s[0].bridgeOut = _legs1(HUB, 100);
        _expectReject(s, abi.encodeWithSelector(Settlement.InvalidBridgeTransfers.selector, HUB));
    }

    function test_RevertWhen_BridgeLegsNotAscending() public {
        Settlement.ChainSettlement[] memory s = _nextBatch();
        s[0].deltas = _deltas1(alice, -150);
        s[0].bridgeOut = _legs2(BNB, 50, ARB, 100);
        _expectReject(s, abi.encodeWithSelector(Settlement.InvalidBridgeTransfers.selector, HUB));
    }

    function test_RevertWhen_BridgeLegRepeated() public {
        Settlement.ChainSettlement[] memory s = _nextBatch();
        s[2].deltas = _deltas1(bob, 100);
        s[2].bridgeIn = _legs2(HUB, 50, HUB, 50);
        _expectReject(s, abi.encodeWithSelector(Settlement.InvalidBridgeTransfers.selector, BNB));
    }

    function test_RevertWhen_BridgeLegZero() public {
        Settlement.ChainSettlement[] memory s = _nextBatch();
        s[1].bridgeIn = _legs1(HUB, 0);
        _expectReject(s, abi.encodeWithSelector(Settlement.InvalidBridgeTransfers.selector, ARB));
    }

    // ------------------------------------------------------------------ withdrawals

    function test_RevertWhen_WithdrawalInvalid() public {
        bytes32 id = keccak256("w");
        Settlement.Withdrawal[4] memory bad = [
            Settlement.Withdrawal(bytes32(0), alice, alice, 1),
            Settlement.Withdrawal(id, address(0), alice, 1),
            Settlement.Withdrawal(id, alice, address(0), 1),
            Settlement.Withdrawal(id, alice, alice, 0)
        ];
        for (uint256 i; i < bad.length; ++i) {
            Settlement.ChainSettlement[] memory s = _nextBatch();
            s[1].withdrawals = _withdrawal1(bad[i].withdrawalId, bad[i].account, bad[i].recipient, bad[i].amount);
            _expectReject(
                s, abi.encodeWithSelector(ISettlementHub.InvalidWithdrawal.selector, ARB, bad[i].withdrawalId)
            );
        }
    }

    // ------------------------------------------------------------------ admin

    function test_RevertWhen_NonOwnerSetsSequencer() public {
        vm.expectRevert(abi.encodeWithSelector(Ownable.OwnableUnauthorizedAccount.selector, stranger));
        vm.prank(stranger);
        hub.setSequencer(stranger);
    }

    function test_RevertWhen_NonOwnerSetsVault() public {
        vm.expectRevert(abi.encodeWithSelector(Ownable.OwnableUnauthorizedAccount.selector, stranger));
        vm.prank(stranger);
        hub.setVault(ARB, stranger);
    }

    function test_RevertWhen_ZeroAddresses() public {
        vm.expectRevert(ISettlementHub.ZeroAddress.selector);
        hub.setSequencer(address(0));
        vm.expectRevert(ISettlementHub.ZeroAddress.selector);
        new SettlementHub(address(this), address(0), stranger);
        vm.expectRevert(ISettlementHub.ZeroAddress.selector);
        new SettlementHub(address(this), stranger, address(0));
        vm.expectRevert(abi.encodeWithSelector(ISettlementHub.UnknownDomain.selector, uint32(0)));
        hub.setVault(0, stranger);
    }

    function test_SetSequencer_RotatesSigningKey() public {
        address next = vm.addr(0x5E1);
        vm.expectEmit(true, true, true, true, address(hub));
        emit SequencerSet(next);
        hub.setSequencer(next);
        vm.assertEq(hub.sequencer(), next, "sequencer");
        Settlement.ChainSettlement[] memory s = _nextBatch();
        Settlement.BatchHeader memory h = _header(s);
        bytes memory oldSig = _signBatch(h, sequencerKey);
        vm.expectRevert(abi.encodeWithSelector(ISettlementHub.BadSequencerSignature.selector, vm.addr(sequencerKey)));
        hub.submitBatch(h, s, oldSig);
        hub.submitBatch(h, s, _signBatch(h, 0x5E1));
    }

    function test_SetVault_KeepsDomainsAscendingAndChangesCoverage() public {
        vm.expectEmit(true, true, true, true, address(hub));
        emit VaultSet(5, stranger);
        hub.setVault(5, stranger);
        hub.setVault(40000, stranger);
        uint32[] memory d = hub.domains();
        vm.assertEq(d.length, 5, "added");
        for (uint256 i = 1; i < d.length; ++i) {
            vm.assertGt(d[i], d[i - 1], "ascending");
        }
        vm.assertEq(uint256(d[0]), 5, "lowest first");
        vm.assertEq(uint256(d[4]), 40000, "highest last");
        hub.setVault(5, bob); // re-point: no duplicate
        vm.assertEq(hub.domains().length, 5, "re-pointed, not added");
        vm.assertEq(hub.vaultOf(5), bob, "vault");

        hub.setVault(5, address(0));
        hub.setVault(40000, address(0));
        hub.setVault(ARB, address(0));
        d = hub.domains();
        vm.assertEq(d.length, 2, "removed");
        vm.assertEq(uint256(d[0]), HUB, "hub");
        vm.assertEq(uint256(d[1]), BNB, "bnb");
        hub.setVault(ARB, address(0)); // removing twice is a no-op
        vm.assertEq(hub.domains().length, 2, "idempotent");

        Settlement.ChainSettlement[] memory three = _nextBatch();
        _expectReject(three, abi.encodeWithSelector(ISettlementHub.DomainSetMismatch.selector, uint256(2), uint256(3)));
        Settlement.ChainSettlement[] memory two = new Settlement.ChainSettlement[](2);
        (two[0], two[1]) = (three[0], three[2]);
        _submit(two);
        vm.assertEq(pending.length, 2, "only registered chains get a message");
    }
}
