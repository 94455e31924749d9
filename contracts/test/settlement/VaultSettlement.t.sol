// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {IMailbox} from "../../src/interfaces/IMailbox.sol";
import {ISettlementVault} from "../../src/interfaces/ISettlementVault.sol";
import {Message} from "../../src/libraries/Message.sol";
import {Settlement} from "../../src/libraries/Settlement.sol";
import {SettlementSystem} from "./SettlementSystem.sol";

/**
 * @dev Vault settlement end to end through {SettlementSystem}: the hub commits a batch, the test
 * relay signs and delivers the Mailbox messages, each vault applies its chain's settlement.
 * Proves: debits apply before credits and withdrawals after credits; a withdrawal pays its
 * recipient once; a vault never pays more than an account holds ({InsufficientBalance}, nothing
 * moves); per-chain batch order; replayed, reordered, under-signed and forged messages are
 * refused; a bridge-in waits (BridgeInPending) until the TokenBridge mint is delivered, in any
 * relay order. HUB and ARB use a 6-decimal token, BNB an 18-decimal one (scale 1e12).
 */
contract VaultSettlementTest is SettlementSystem {
    address internal alice;
    address internal bob;
    address internal carol;
    address internal payee;

    event BatchApplied(
        uint64 indexed batchNumber,
        uint256 debited,
        uint256 credited,
        uint256 bridgedOut,
        uint256 bridgedIn,
        uint256 withdrawn
    );
    event WithdrawalPaid(bytes32 indexed withdrawalId, address indexed account, address indexed recipient, uint256 amount);

    function setUp() public {
        _deploySystem();
        alice = makeAddr("alice");
        bob = makeAddr("bob");
        carol = makeAddr("carol");
        payee = makeAddr("payee");
    }

    // ------------------------------------------------------------------ helpers

    /// @dev Submit `s`; return the index in `pending` of its first message (domains follow ascending).
    function _commit(Settlement.ChainSettlement[] memory s) internal returns (uint256 base) {
        base = pending.length;
        _submit(s);
    }

    function _deliver(uint256 i) internal {
        (bool ok, bytes memory reason) = _tryDeliver(i);
        if (!ok) {
            assembly {
                revert(add(reason, 32), mload(reason))
            }
        }
    }

    /// @dev Delivery of pending `i` fails with exactly `err` and leaves it undelivered.
    function _assertRefused(uint256 i, bytes memory err) internal {
        (bool ok, bytes memory reason) = _tryDeliver(i);
        vm.assertFalse(ok, "delivered");
        vm.assertEq(reason, err, "revert reason");
        vm.assertFalse(chains[pending[i].destination].mailbox.delivered(keccak256(pending[i].message)), "marked");
    }

    function _holdings(uint32 domain) internal view returns (uint256) {
        Chain storage c = chains[domain];
        return c.token.balanceOf(address(c.vault));
    }

    function _total(uint32 domain) internal view returns (uint256) {
        Chain storage c = chains[domain];
        return c.vault.totalBalance(address(c.token));
    }

    function _assertSolvent(string memory when) internal view {
        for (uint256 i; i < domainIds.length; ++i) {
            vm.assertGe(_holdings(domainIds[i]), _total(domainIds[i]), when);
        }
    }

    /// @dev Σ token supply over chains in canonical units (every token outside a vault was withdrawn).
    function _canonicalSupply() internal view returns (uint256 sum) {
        for (uint256 i; i < domainIds.length; ++i) {
            Chain storage c = chains[domainIds[i]];
            sum += c.token.totalSupply() / c.scale;
        }
    }

    /// @dev A batch moving `amount` from alice on `from` to bob on `to` through one bridge leg.
    function _bridgeBatch(uint32 from, uint32 to, uint256 amount)
        internal
        view
        returns (Settlement.ChainSettlement[] memory s)
    {
        s = _nextBatch();
        uint256 fi = _index(from);
        uint256 ti = _index(to);
        s[fi].deltas = _deltas1(alice, -int256(amount));
        s[fi].bridgeOut = _legs1(to, amount);
        s[ti].deltas = _deltas1(bob, int256(amount));
        s[ti].bridgeIn = _legs1(from, amount);
    }

    function _index(uint32 domain) internal view returns (uint256 i) {
        while (domainIds[i] != domain) ++i;
    }

    // ------------------------------------------------------------------ applying a batch

    function test_Batch_MovesBalancesAndEmitsNativeTotals() public {
        _deposit(HUB, alice, 1000e6);
        _deposit(BNB, carol, 70e6);
        Settlement.ChainSettlement[] memory s = _nextBatch();
        s[0].deltas = _deltas2(alice, -300e6, bob, 300e6);
        s[2].deltas = _deltas2(carol, -70e6, bob, 70e6);
        uint256 base = _commit(s);

        vm.expectEmit(true, true, true, true, address(chains[HUB].vault));
        emit BatchApplied(1, 300e6, 300e6, 0, 0, 0);
        _deliver(base);
        vm.expectEmit(true, true, true, true, address(chains[BNB].vault));
        emit BatchApplied(1, 70e18, 70e18, 0, 0, 0);
        _deliver(base + 2);
        _deliver(base + 1);

        vm.assertEq(_balance(HUB, alice), 700e6, "alice debited");
        vm.assertEq(_balance(HUB, bob), 300e6, "bob credited");
        vm.assertEq(chains[BNB].vault.balanceOf(bob, address(chains[BNB].token)), 70e18, "bob native 18 decimals");
        for (uint256 i; i < domainIds.length; ++i) {
            vm.assertEq(uint256(chains[domainIds[i]].vault.lastSettledBatch()), 1, "applied");
            vm.assertEq(_holdings(domainIds[i]), _total(domainIds[i]), "holdings == settled");
        }
    }

    /// @dev A credit listed before a debit of the same account does not fund that debit: all
    /// debits run first, so the batch is refused and nothing changes.
    function test_DebitsApplyBeforeCredits() public {
        _deposit(ARB, alice, 50e6);
        Settlement.ChainSettlement[] memory s = _nextBatch();
        s[1].deltas = _deltas2(bob, 100e6, bob, -100e6);
        uint256 base = _commit(s);
        _assertRefused(
            base + 1, abi.encodeWithSelector(ISettlementVault.InsufficientBalance.selector, bob, 0, uint256(100e6))
        );
        vm.assertEq(_balance(ARB, bob), 0, "no credit applied");
        vm.assertEq(uint256(chains[ARB].vault.lastSettledBatch()), 0, "batch not applied");
        vm.assertEq(_relayAll(), 1, "only ARB is stuck");
    }

    /// @dev Withdrawals run after credits: a batch may credit an account and pay it out at once.
    function test_WithdrawalAfterCreditsInSameBatch() public {
        _deposit(HUB, alice, 200e6);
        Settlement.ChainSettlement[] memory s = _nextBatch();
        s[0].deltas = _deltas2(alice, -200e6, carol, 200e6);
        s[0].withdrawals = _withdrawal1(keccak256("w-carol"), carol, payee, 200e6);
        _commit(s);
        vm.assertEq(_relayAll(), 0, "delivered");
        vm.assertEq(chains[HUB].token.balanceOf(payee), 200e6, "paid");
        vm.assertEq(_balance(HUB, carol), 0, "debited");
        vm.assertEq(_holdings(HUB), 0, "vault emptied exactly");
    }

    // ------------------------------------------------------------------ withdrawals

    function test_Withdrawal_PaidToRecipientOnce() public {
        bytes32 id = keccak256("w1");
        _deposit(BNB, alice, 1000e6);
        Settlement.ChainSettlement[] memory s = _nextBatch();
        s[2].withdrawals = _withdrawal1(id, alice, payee, 400e6);
        uint256 base = _commit(s);

        vm.expectEmit(true, true, true, true, address(chains[BNB].vault));
        emit WithdrawalPaid(id, alice, payee, 400e18);
        _deliver(base + 2);
        vm.assertEq(chains[BNB].token.balanceOf(payee), 400e18, "recipient paid in native units");
        vm.assertEq(_balance(BNB, alice), 600e6, "account debited");
        vm.assertTrue(chains[BNB].vault.withdrawalPaid(id), "marked paid");

        // the same message again: the Mailbox refuses it
        bytes32 msgId = keccak256(pending[base + 2].message);
        bytes[] memory sigs = _validatorSigs(pending[base + 2].message, BNB);
        vm.expectRevert(abi.encodeWithSelector(IMailbox.AlreadyDelivered.selector, msgId));
        chains[BNB].mailbox.process(pending[base + 2].message, sigs);

        // a later batch naming the same withdrawal id: the vault refuses it
        _relayAll();
        Settlement.ChainSettlement[] memory again = _nextBatch();
        again[2].withdrawals = _withdrawal1(id, alice, payee, 400e6);
        uint256 base2 = _commit(again);
        _assertRefused(base2 + 2, abi.encodeWithSelector(ISettlementVault.WithdrawalAlreadyPaid.selector, id));
        vm.assertEq(chains[BNB].token.balanceOf(payee), 400e18, "paid once");
        vm.assertEq(_balance(BNB, alice), 600e6, "debited once");
    }

    function test_RevertWhen_WithdrawalExceedsBalance() public {
        _deposit(HUB, alice, 100e6);
        _deposit(HUB, bob, 900e6); // the vault holds enough; alice does not
        Settlement.ChainSettlement[] memory s = _nextBatch();
        s[0].withdrawals = _withdrawal1(keccak256("w"), alice, payee, 100e6 + 1);
        uint256 base = _commit(s);
        _assertRefused(
            base, abi.encodeWithSelector(ISettlementVault.InsufficientBalance.selector, alice, 100e6, 100e6 + 1)
        );
        vm.assertEq(chains[HUB].token.balanceOf(payee), 0, "nothing paid");
        vm.assertEq(_holdings(HUB), 1000e6, "holdings unchanged");
    }

    function test_RevertWhen_BridgeOutExceedsBalance() public {
        _deposit(HUB, alice, 100e6);
        uint256 supply = chains[HUB].token.totalSupply();
        uint256 base = _commit(_bridgeBatch(HUB, ARB, 200e6));
        _assertRefused(
            base, abi.encodeWithSelector(ISettlementVault.InsufficientBalance.selector, alice, 100e6, 200e6)
        );
        vm.assertEq(chains[HUB].token.totalSupply(), supply, "nothing burned");
        vm.assertEq(_holdings(HUB), 100e6, "nothing left the vault");
    }

    /// @dev Whatever is asked, a withdrawal pays at most the account's settled balance, and
    /// holdings never fall below the sum of settled balances.
    function testFuzz_VaultNeverPaysMoreThanItHolds(uint256 deposited, uint256 asked, uint256 chainSeed) public {
        uint32 domain = domainIds[bound(chainSeed, 0, 2)];
        deposited = bound(deposited, 1, 1_000_000e6);
        asked = bound(asked, 1, 2_000_000e6);
        _deposit(domain, alice, deposited);
        _deposit(domain, bob, 5e6);
        Settlement.ChainSettlement[] memory s = _nextBatch();
        s[_index(domain)].withdrawals = _withdrawal1(keccak256("w"), alice, payee, asked);
        uint256 base = _commit(s);
        (bool ok,) = _tryDeliver(base + _index(domain));
        uint256 paid = chains[domain].token.balanceOf(payee) / chains[domain].scale;
        vm.assertEq(ok, asked <= deposited, "paid iff covered");
        vm.assertEq(paid, ok ? asked : 0, "paid amount");
        vm.assertLe(paid, deposited, "never more than the balance");
        vm.assertEq(_holdings(domain), _total(domain), "holdings == settled");
    }

    // ------------------------------------------------------------------ order

    function test_RevertWhen_SecondBatchDeliveredFirst() public {
        _deposit(ARB, alice, 10e6);
        Settlement.ChainSettlement[] memory s1 = _nextBatch();
        s1[1].deltas = _deltas2(alice, -4e6, bob, 4e6);
        uint256 b1 = _commit(s1);
        Settlement.ChainSettlement[] memory s2 = _nextBatch();
        s2[1].deltas = _deltas2(bob, -4e6, carol, 4e6); // needs batch 1's credit
        uint256 b2 = _commit(s2);

        _assertRefused(b2 + 1, abi.encodeWithSelector(IMailbox.MessageOutOfOrder.selector, uint32(0), uint32(1)));
        _deliver(b1 + 1);
        _deliver(b2 + 1);
        vm.assertEq(_balance(ARB, carol), 4e6, "applied in order");
        vm.assertEq(uint256(chains[ARB].vault.lastSettledBatch()), 2, "ARB at 2");
        vm.assertEq(uint256(chains[HUB].vault.lastSettledBatch()), 0, "HUB's own stream is independent");
    }

    function test_RevertWhen_VaultHandedBatchOutOfOrder() public {
        Settlement.ChainSettlement[] memory s = _emptyBatch(2);
        vm.expectRevert(abi.encodeWithSelector(ISettlementVault.BatchOutOfOrder.selector, uint64(1), uint64(2)));
        vm.prank(address(chains[ARB].mailbox));
        chains[ARB].vault.handle(HUB, Message.addressToBytes32(address(hub)), abi.encode(s[1]));
    }

    function test_RevertWhen_VaultHandedOtherChainsSettlement() public {
        Settlement.ChainSettlement[] memory s = _emptyBatch(1);
        vm.expectRevert(abi.encodeWithSelector(ISettlementVault.WrongSettlementDomain.selector, ARB, BNB));
        vm.prank(address(chains[ARB].mailbox));
        chains[ARB].vault.handle(HUB, Message.addressToBytes32(address(hub)), abi.encode(s[2]));
    }

    function test_RevertWhen_VaultHandedUnbalancedSettlement() public {
        Settlement.ChainSettlement[] memory s = _emptyBatch(1);
        s[1].deltas = _deltas1(alice, 5);
        vm.expectRevert(abi.encodeWithSelector(Settlement.DeltasDoNotBalance.selector, ARB, int256(5), int256(0)));
        vm.prank(address(chains[ARB].mailbox));
        chains[ARB].vault.handle(HUB, Message.addressToBytes32(address(hub)), abi.encode(s[1]));
    }

    // ------------------------------------------------------------------ forged and replayed messages

    function test_RevertWhen_SettlementReplayed() public {
        uint256 base = _commit(_nextBatch());
        _deliver(base + 1);
        bytes memory m = pending[base + 1].message;
        bytes[] memory sigs = _validatorSigs(m, ARB);
        vm.expectRevert(abi.encodeWithSelector(IMailbox.AlreadyDelivered.selector, keccak256(m)));
        chains[ARB].mailbox.process(m, sigs);
    }

    function test_RevertWhen_SettlementUnderSigned() public {
        uint256 base = _commit(_nextBatch());
        bytes memory m = pending[base + 1].message;
        bytes[] memory one = new bytes[](1);
        one[0] = _validatorSigs(m, ARB)[0];
        vm.expectRevert(abi.encodeWithSelector(IMailbox.ThresholdNotMet.selector, uint256(1), uint256(2)));
        chains[ARB].mailbox.process(m, one);
    }

    function test_RevertWhen_SettlementSignedByNonValidators() public {
        uint256 base = _commit(_nextBatch());
        bytes memory m = pending[base + 1].message;
        uint256[] memory keys = new uint256[](2);
        (keys[0], keys[1]) = (0xE1, 0xE2);
        bytes[] memory sigs = _signSorted(keys, chains[ARB].mailbox.deliveryDigest(keccak256(m)));
        address first = vm.addr(0xE1) < vm.addr(0xE2) ? vm.addr(0xE1) : vm.addr(0xE2);
        vm.expectRevert(abi.encodeWithSelector(IMailbox.UnknownValidator.selector, first));
        chains[ARB].mailbox.process(m, sigs);
    }

    /// @dev The validators' signatures cover the message id: rewriting the body (here: the
    /// credited account) makes them recover strangers.
    function test_RevertWhen_SettlementBodyForged() public {
        _deposit(ARB, alice, 10e6);
        Settlement.ChainSettlement[] memory s = _nextBatch();
        s[1].deltas = _deltas2(alice, -10e6, bob, 10e6);
        uint256 base = _commit(s);
        bytes memory m = pending[base + 1].message;
        bytes[] memory sigs = _validatorSigs(m, ARB);
        s[1].deltas[1].account = carol;
        bytes memory forged = Message.formatMessage(
            1, 0, HUB, Message.addressToBytes32(address(hub)), ARB,
            Message.addressToBytes32(address(chains[ARB].vault)), abi.encode(s[1])
        );
        bytes32 digest = chains[ARB].mailbox.deliveryDigest(keccak256(forged));
        address recovered = _recover(digest, sigs[0]);
        vm.expectRevert(abi.encodeWithSelector(IMailbox.UnknownValidator.selector, recovered));
        chains[ARB].mailbox.process(forged, sigs);
        _deliver(base + 1);
        vm.assertEq(_balance(ARB, bob), 10e6, "the signed body still applies");
        vm.assertEq(_balance(ARB, carol), 0, "the forged one never did");
    }

    /// @dev Validators attest any dispatch; the vault itself only trusts the hub on the hub domain.
    function test_RevertWhen_SettlementNotFromHub() public {
        _deposit(ARB, alice, 10e6);
        Settlement.ChainSettlement[] memory s = _nextBatch();
        s[1].withdrawals = _withdrawal1(keccak256("steal"), alice, carol, 10e6);
        address attacker = makeAddr("attacker");
        vm.recordLogs();
        vm.prank(attacker);
        chains[HUB].mailbox.dispatch(ARB, Message.addressToBytes32(address(chains[ARB].vault)), abi.encode(s[1]));
        // the hub's own address, dispatching from a non-hub chain
        vm.prank(address(hub));
        chains[BNB].mailbox.dispatch(ARB, Message.addressToBytes32(address(chains[ARB].vault)), abi.encode(s[1]));
        _collect();
        _assertRefused(
            0,
            abi.encodeWithSelector(
                ISettlementVault.UnauthorizedSender.selector, HUB, Message.addressToBytes32(attacker)
            )
        );
        _assertRefused(
            1,
            abi.encodeWithSelector(
                ISettlementVault.UnauthorizedSender.selector, BNB, Message.addressToBytes32(address(hub))
            )
        );
        vm.assertEq(chains[ARB].token.balanceOf(carol), 0, "nothing paid");
    }

    function test_RevertWhen_HandleNotCalledByMailbox() public {
        Settlement.ChainSettlement[] memory s = _emptyBatch(1);
        vm.expectRevert(abi.encodeWithSelector(ISettlementVault.NotMailbox.selector, address(this)));
        chains[ARB].vault.handle(HUB, Message.addressToBytes32(address(hub)), abi.encode(s[1]));
    }

    // ------------------------------------------------------------------ bridge-in waits for the mint

    function test_BridgeIn_WaitsForTokenBridgeMint() public {
        _deposit(HUB, alice, 1000e6);
        uint256 supplyBefore = _canonicalSupply();
        uint256 base = _commit(_bridgeBatch(HUB, BNB, 400e6));

        // BNB first: nothing has been minted for batch 1 yet
        _assertRefused(
            base + 2,
            abi.encodeWithSelector(ISettlementVault.BridgeInPending.selector, uint64(1), HUB, uint256(400e6), uint256(0))
        );
        // HUB applies: debits alice, burns through the bridge, dispatches the mint message
        vm.expectEmit(true, true, true, true, address(chains[HUB].vault));
        emit BatchApplied(1, 400e6, 0, 400e6, 0, 0);
        _deliver(base);
        vm.assertEq(_holdings(HUB), 600e6, "burned on HUB");
        uint256 mint = pending.length - 1;
        vm.assertEq(uint256(pending[mint].destination), BNB, "mint message to BNB");
        vm.assertEq(
            Message.bytes32ToAddress(_recipientOf(pending[mint].message)), address(chains[BNB].bridge), "to the bridge"
        );
        // still pending: the mint message is not delivered
        _assertRefused(
            base + 2,
            abi.encodeWithSelector(ISettlementVault.BridgeInPending.selector, uint64(1), HUB, uint256(400e6), uint256(0))
        );
        vm.assertEq(_canonicalSupply(), supplyBefore - 400e6, "in flight");

        _deliver(mint);
        vm.assertEq(_holdings(BNB), 400e18, "minted to the BNB vault");
        vm.assertEq(_total(BNB), 0, "not yet credited: holdings exceed settled balances");
        vm.assertEq(_canonicalSupply(), supplyBefore, "supply conserved across decimals");

        vm.expectEmit(true, true, true, true, address(chains[BNB].vault));
        emit BatchApplied(1, 0, 400e18, 0, 400e18, 0);
        _deliver(base + 2);
        vm.assertEq(chains[BNB].vault.balanceOf(bob, address(chains[BNB].token)), 400e18, "bob credited");
        vm.assertEq(_holdings(BNB), _total(BNB), "holdings == settled");
        vm.assertEq(_relayAll(), 0, "all delivered");
    }

    function test_RevertWhen_BridgeInExceedsBatch() public {
        _deposit(HUB, alice, 1000e6);
        _commit(_bridgeBatch(HUB, ARB, 400e6));
        _relayAll(); // HUB burns, the mint lands, ARB applies
        vm.assertEq(_balance(ARB, bob), 400e6, "applied");
        // an extra mint recorded for batch 2 before batch 2 is applied
        Settlement.ChainSettlement[] memory s2 = _bridgeBatch(HUB, ARB, 100e6);
        uint256 b2 = _commit(s2);
        vm.prank(address(chains[ARB].mailbox));
        chains[ARB].bridge.handle(HUB, Message.addressToBytes32(address(chains[HUB].bridge)), abi.encode(uint64(2), uint256(1)));
        _deliver(b2); // HUB: burn and mint 100 for batch 2
        _deliver(pending.length - 1);
        _assertRefused(
            b2 + 1,
            abi.encodeWithSelector(
                ISettlementVault.BridgeInExceeded.selector, uint64(2), HUB, uint256(100e6), uint256(100e6 + 1)
            )
        );
    }

    /// @dev Two chains send to a third in one batch (multilateral netting); any relay order converges.
    function testFuzz_Relay_AnyOrderConverges(uint256 seed, uint256 a, uint256 b) public {
        a = bound(a, 1, 1_000_000e6);
        b = bound(b, 1, 1_000_000e6);
        _deposit(HUB, alice, a);
        _deposit(ARB, carol, b);
        Settlement.ChainSettlement[] memory s = _nextBatch();
        s[0].deltas = _deltas1(alice, -int256(a));
        s[0].bridgeOut = _legs1(BNB, a);
        s[1].deltas = _deltas1(carol, -int256(b));
        s[1].bridgeOut = _legs1(BNB, b);
        s[2].deltas = _deltas1(bob, int256(a + b));
        s[2].bridgeIn = _legs2(HUB, a, ARB, b);
        _commit(s);
        uint256 supply = _canonicalSupply();
        vm.assertEq(_relayAll(seed), 0, "everything delivered");
        vm.assertEq(pending.length, 5, "three settlements, two mints");
        vm.assertEq(_balance(BNB, bob), a + b, "credited");
        vm.assertEq(_holdings(HUB) + _holdings(ARB), 0, "sources emptied");
        vm.assertEq(_canonicalSupply(), supply, "conserved");
        _assertSolvent("after relay");
        for (uint256 i; i < domainIds.length; ++i) {
            vm.assertEq(_holdings(domainIds[i]), _total(domainIds[i]), "holdings == settled");
        }
    }

    // ------------------------------------------------------------------ internal

    function _recipientOf(bytes memory m) internal pure returns (bytes32 r) {
        assembly {
            r := mload(add(m, add(32, 45)))
        }
    }

    function _recover(bytes32 digest, bytes memory sig) internal pure returns (address) {
        bytes32 r;
        bytes32 s;
        uint8 v;
        assembly {
            r := mload(add(sig, 32))
            s := mload(add(sig, 64))
            v := byte(0, mload(add(sig, 96)))
        }
        return ecrecover(digest, v, r, s);
    }
}
