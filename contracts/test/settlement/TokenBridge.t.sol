// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {IERC20Errors} from "@openzeppelin/contracts/interfaces/draft-IERC6093.sol";
import {CollateralToken} from "../../src/CollateralToken.sol";
import {TokenBridge} from "../../src/TokenBridge.sol";
import {IMailbox} from "../../src/interfaces/IMailbox.sol";
import {ITokenBridge} from "../../src/interfaces/ITokenBridge.sol";
import {Message} from "../../src/libraries/Message.sol";
import {Settlement} from "../../src/libraries/Settlement.sol";
import {SettlementSystem} from "./SettlementSystem.sol";

/**
 * @dev TokenBridge through real Mailboxes: {bridgeOut} (vault only) burns exactly the native
 * amount and dispatches `abi.encode(batch, canonical)` to the remote bridge; {handle} (local
 * Mailbox only, from the registered remote bridge only) mints `canonical * scale` to the vault
 * and records it per (batch, source). 6-decimal HUB/ARB and 18-decimal BNB move the same value.
 */
contract TokenBridgeTest is SettlementSystem {
    address internal stranger;

    event BridgedOut(
        uint32 indexed toDomain, uint64 indexed batchNumber, uint256 canonicalAmount, uint256 nativeAmount, bytes32 messageId
    );
    event BridgedIn(uint32 indexed fromDomain, uint64 indexed batchNumber, uint256 canonicalAmount, uint256 nativeAmount);
    event RemoteBridgeSet(uint32 indexed domain, bytes32 bridge);

    function setUp() public {
        _deploySystem();
        stranger = makeAddr("stranger");
    }

    // ------------------------------------------------------------------ helpers

    /// @dev What the vault does for a bridge-out: hand the native amount over, then call {bridgeOut}.
    function _bridgeOut(uint32 from, uint32 to, uint256 canonical, uint64 batch) internal returns (bytes32 id) {
        Chain storage c = chains[from];
        c.token.faucet(address(c.bridge), canonical * c.scale);
        vm.recordLogs();
        vm.prank(address(c.vault));
        id = c.bridge.bridgeOut(to, canonical, batch);
        _collect();
    }

    function _mintMessage(uint32 from, uint32 to, uint32 nonce, uint64 batch, uint256 canonical)
        internal
        view
        returns (bytes memory)
    {
        return Message.formatMessage(
            1,
            nonce,
            from,
            Message.addressToBytes32(address(chains[from].bridge)),
            to,
            Message.addressToBytes32(address(chains[to].bridge)),
            abi.encode(batch, canonical)
        );
    }

    function _vaultHoldings(uint32 domain) internal view returns (uint256) {
        return chains[domain].token.balanceOf(address(chains[domain].vault));
    }

    // ------------------------------------------------------------------ burn and mint

    function test_BridgeOut_BurnsNativeAndDispatchesMintMessage() public {
        bytes memory expected = _mintMessage(HUB, BNB, 0, 7, 5e6);
        uint256 supply = chains[HUB].token.totalSupply();
        chains[HUB].token.faucet(address(chains[HUB].bridge), 5e6);
        vm.expectEmit(true, true, true, true, address(chains[HUB].bridge));
        emit BridgedOut(BNB, 7, 5e6, 5e6, keccak256(expected));
        vm.prank(address(chains[HUB].vault));
        bytes32 id = chains[HUB].bridge.bridgeOut(BNB, 5e6, 7);
        vm.assertEq(id, keccak256(expected), "message id");
        vm.assertEq(chains[HUB].token.totalSupply(), supply, "burned what it was handed");
        vm.assertEq(chains[HUB].token.balanceOf(address(chains[HUB].bridge)), 0, "bridge keeps nothing");
        vm.assertEq(chains[HUB].mailbox.outboundNonce(address(chains[HUB].bridge), BNB), 1, "dispatched");
    }

    function test_Handle_MintsScaledAmountToVault() public {
        _bridgeOut(HUB, BNB, 5e6, 7);
        vm.assertEq(pending[0].message, _mintMessage(HUB, BNB, 0, 7, 5e6), "message bytes");
        vm.expectEmit(true, true, true, true, address(chains[BNB].bridge));
        emit BridgedIn(HUB, 7, 5e6, 5e18);
        (bool ok,) = _tryDeliver(0);
        vm.assertTrue(ok, "delivered");
        vm.assertEq(_vaultHoldings(BNB), 5e18, "6 -> 18 decimals: x 1e12");
        vm.assertEq(chains[BNB].bridge.received(7, HUB), 5e6, "recorded per batch and source");
        vm.assertEq(chains[BNB].bridge.received(7, ARB), 0, "other source");
        vm.assertEq(chains[BNB].bridge.received(8, HUB), 0, "other batch");
    }

    function test_BridgeOut_From18DecimalsTo6() public {
        uint256 bnbSupply = chains[BNB].token.totalSupply();
        _bridgeOut(BNB, HUB, 3e6, 1);
        vm.assertEq(chains[BNB].token.totalSupply(), bnbSupply, "3e18 burned on BNB");
        _tryDeliver(0);
        vm.assertEq(_vaultHoldings(HUB), 3e6, "3e6 minted on HUB");
    }

    function test_Received_AccumulatesPerBatchAndSource() public {
        _bridgeOut(HUB, ARB, 1e6, 4);
        _bridgeOut(HUB, ARB, 2e6, 4);
        _bridgeOut(BNB, ARB, 5e6, 4);
        _bridgeOut(HUB, ARB, 9e6, 5);
        vm.assertEq(_relayAll(), 0, "all delivered");
        vm.assertEq(chains[ARB].bridge.received(4, HUB), 3e6, "two legs from HUB");
        vm.assertEq(chains[ARB].bridge.received(4, BNB), 5e6, "BNB");
        vm.assertEq(chains[ARB].bridge.received(5, HUB), 9e6, "next batch");
        vm.assertEq(_vaultHoldings(ARB), 17e6, "minted in total");
    }

    /// @dev Any amount in either direction between any two chains: the canonical value burned on
    /// one side is the canonical value minted on the other, scaled per decimals both ways.
    function testFuzz_BridgeOut_ConservesCanonicalValue(uint256 amount, uint256 fromSeed, uint256 toSeed, uint64 batch)
        public
    {
        amount = bound(amount, 1, 1_000_000e6);
        uint32 from = domainIds[bound(fromSeed, 0, 2)];
        uint32 to = domainIds[bound(toSeed, 0, 2)];
        vm.assume(from != to);
        uint256 fromSupply = chains[from].token.totalSupply();
        uint256 toSupply = chains[to].token.totalSupply();
        _bridgeOut(from, to, amount, batch);
        vm.assertEq(chains[from].token.totalSupply(), fromSupply, "burned exactly what was handed over");
        (bool ok,) = _tryDeliver(0);
        vm.assertTrue(ok, "delivered");
        vm.assertEq(chains[to].token.totalSupply() - toSupply, amount * chains[to].scale, "minted scaled");
        vm.assertEq(_vaultHoldings(to), amount * chains[to].scale, "to the vault");
        vm.assertEq(chains[to].bridge.received(batch, from), amount, "recorded canonical");
    }

    // ------------------------------------------------------------------ bridgeOut rejections

    function test_RevertWhen_BridgeOutNotFromVault() public {
        vm.expectRevert(abi.encodeWithSelector(ITokenBridge.NotVault.selector, stranger));
        vm.prank(stranger);
        chains[HUB].bridge.bridgeOut(ARB, 1, 1);
    }

    function test_RevertWhen_BridgeOutZero() public {
        vm.expectRevert(ITokenBridge.ZeroAmount.selector);
        vm.prank(address(chains[HUB].vault));
        chains[HUB].bridge.bridgeOut(ARB, 0, 1);
    }

    function test_RevertWhen_BridgeOutToUnknownRemote() public {
        vm.expectRevert(abi.encodeWithSelector(ITokenBridge.UnknownRemote.selector, uint32(777)));
        vm.prank(address(chains[HUB].vault));
        chains[HUB].bridge.bridgeOut(777, 1, 1);
    }

    function test_RevertWhen_BridgeOutNotFunded() public {
        chains[BNB].token.faucet(address(chains[BNB].bridge), 1e18 - 1);
        vm.expectRevert(
            abi.encodeWithSelector(
                IERC20Errors.ERC20InsufficientBalance.selector, address(chains[BNB].bridge), 1e18 - 1, 1e18
            )
        );
        vm.prank(address(chains[BNB].vault));
        chains[BNB].bridge.bridgeOut(HUB, 1e6, 1);
    }

    // ------------------------------------------------------------------ handle rejections

    function test_RevertWhen_HandleNotFromMailbox() public {
        vm.expectRevert(abi.encodeWithSelector(ITokenBridge.NotMailbox.selector, address(this)));
        chains[BNB].bridge.handle(HUB, Message.addressToBytes32(address(chains[HUB].bridge)), abi.encode(uint64(1), 1));
    }

    function test_RevertWhen_MintFromUnknownSender() public {
        // anyone may dispatch to the bridge, and validators attest it: the bridge refuses the sender
        vm.recordLogs();
        vm.prank(stranger);
        chains[HUB].mailbox.dispatch(
            BNB, Message.addressToBytes32(address(chains[BNB].bridge)), abi.encode(uint64(1), uint256(1e6))
        );
        _collect();
        (bool ok, bytes memory reason) = _tryDeliver(0);
        vm.assertFalse(ok, "refused");
        vm.assertEq(
            reason,
            abi.encodeWithSelector(ITokenBridge.UnauthorizedSender.selector, HUB, Message.addressToBytes32(stranger)),
            "reason"
        );
        vm.assertEq(_vaultHoldings(BNB), 0, "nothing minted");
    }

    function test_RevertWhen_MintFromUnregisteredOrigin() public {
        bytes32 hubBridge = Message.addressToBytes32(address(chains[HUB].bridge));
        vm.expectRevert(abi.encodeWithSelector(ITokenBridge.UnauthorizedSender.selector, uint32(999), hubBridge));
        vm.prank(address(chains[BNB].mailbox));
        chains[BNB].bridge.handle(999, hubBridge, abi.encode(uint64(1), 1));
    }

    function test_RevertWhen_RemoteRemovedBeforeDelivery() public {
        _bridgeOut(HUB, BNB, 1e6, 1);
        vm.expectEmit(true, true, true, true, address(chains[BNB].bridge));
        emit RemoteBridgeSet(HUB, bytes32(0));
        chains[BNB].bridge.setRemoteBridge(HUB, bytes32(0));
        (bool ok, bytes memory reason) = _tryDeliver(0);
        vm.assertFalse(ok, "refused");
        vm.assertEq(
            reason,
            abi.encodeWithSelector(
                ITokenBridge.UnauthorizedSender.selector, HUB, Message.addressToBytes32(address(chains[HUB].bridge))
            ),
            "reason"
        );
        chains[BNB].bridge.setRemoteBridge(HUB, Message.addressToBytes32(address(chains[HUB].bridge)));
        (ok,) = _tryDeliver(0);
        vm.assertTrue(ok, "retry after re-registering");
    }

    function test_RevertWhen_MintReplayed() public {
        _bridgeOut(HUB, ARB, 1e6, 1);
        _tryDeliver(0);
        bytes memory m = pending[0].message;
        bytes[] memory sigs = _validatorSigs(m, ARB);
        vm.expectRevert(abi.encodeWithSelector(IMailbox.AlreadyDelivered.selector, keccak256(m)));
        chains[ARB].mailbox.process(m, sigs);
        vm.assertEq(_vaultHoldings(ARB), 1e6, "minted once");
    }

    // ------------------------------------------------------------------ owner and construction

    function test_RevertWhen_NonOwnerAdministers() public {
        vm.expectRevert(abi.encodeWithSelector(Ownable.OwnableUnauthorizedAccount.selector, stranger));
        vm.prank(stranger);
        chains[HUB].bridge.setRemoteBridge(ARB, bytes32(uint256(1)));
        vm.expectRevert(abi.encodeWithSelector(Ownable.OwnableUnauthorizedAccount.selector, stranger));
        vm.prank(stranger);
        chains[HUB].bridge.setVault(stranger);
    }

    function test_SetVault_RedirectsMintsAndBridgeOut() public {
        vm.expectRevert(ITokenBridge.ZeroAddress.selector);
        chains[ARB].bridge.setVault(address(0));
        chains[ARB].bridge.setVault(stranger);
        vm.assertEq(chains[ARB].bridge.vault(), stranger, "vault");
        _bridgeOut(HUB, ARB, 2e6, 1);
        _tryDeliver(0);
        vm.assertEq(chains[ARB].token.balanceOf(stranger), 2e6, "minted to the new vault");
        vm.expectRevert(abi.encodeWithSelector(ITokenBridge.NotVault.selector, address(chains[ARB].vault)));
        vm.prank(address(chains[ARB].vault));
        chains[ARB].bridge.bridgeOut(HUB, 1, 1);
    }

    function test_RevertWhen_ConstructedBadly() public {
        CollateralToken five = new CollateralToken("Five", "FIVE", 5, address(this), false);
        address box = address(chains[HUB].mailbox);
        vm.expectRevert(abi.encodeWithSelector(Settlement.UnsupportedDecimals.selector, uint8(5)));
        new TokenBridge(address(this), box, address(five), address(0));
        vm.expectRevert(ITokenBridge.ZeroAddress.selector);
        new TokenBridge(address(this), address(0), address(chains[HUB].token), address(0));
        vm.expectRevert(ITokenBridge.ZeroAddress.selector);
        new TokenBridge(address(this), box, address(0), address(0));
        TokenBridge b = new TokenBridge(address(this), box, address(chains[BNB].token), address(0));
        vm.assertEq(b.scale(), 1e12, "scale from decimals");
        vm.assertEq(b.mailbox(), box, "mailbox");
        vm.assertEq(b.token(), address(chains[BNB].token), "token");
    }
}
