// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {Mailbox} from "../../src/Mailbox.sol";
import {IMailbox} from "../../src/interfaces/IMailbox.sol";
import {IMessageRecipient} from "../../src/interfaces/IMessageRecipient.sol";
import {Message} from "../../src/libraries/Message.sol";
import {SettlementSystem} from "./SettlementSystem.sol";

/// @dev Records what it was handed; reverts on demand.
contract MockRecipient is IMessageRecipient {
    uint32 public lastOrigin;
    bytes32 public lastSender;
    bytes public lastBody;
    uint256 public calls;
    bool public fail;

    error Refused();

    function setFail(bool f) external {
        fail = f;
    }

    function handle(uint32 origin, bytes32 sender, bytes calldata body) external {
        if (fail) revert Refused();
        lastOrigin = origin;
        lastSender = sender;
        lastBody = body;
        ++calls;
    }
}

/// @dev Calls `Message` accessors on calldata for the codec fuzz test.
contract MessageHarness {
    function parseEncoded(bytes calldata m) external pure returns (bytes memory) {
        Message.checkLength(m);
        return abi.encode(
            Message.version(m),
            Message.nonce(m),
            Message.origin(m),
            Message.sender(m),
            Message.destination(m),
            Message.recipient(m),
            Message.body(m)
        );
    }
}

contract MailboxTest is SettlementSystem {
    uint32 internal constant A = 1;
    uint32 internal constant B = 2;

    Mailbox internal boxA;
    Mailbox internal boxB;
    MockRecipient internal recipient;
    address internal sender;

    event Dispatch(bytes32 indexed id, address indexed sender, uint32 indexed destination, uint32 nonce, bytes message);
    event Process(bytes32 indexed id, uint32 indexed origin, bytes32 indexed sender, address recipient);
    event ValidatorSetChanged(address[] validators, uint256 threshold);

    function setUp() public {
        validatorKeys.push(0xA1);
        validatorKeys.push(0xB2);
        validatorKeys.push(0xC3);
        for (uint256 i; i < 3; ++i) {
            validatorAddrs.push(vm.addr(validatorKeys[i]));
        }
        boxA = new Mailbox(address(this), A, validatorAddrs, 2);
        boxB = new Mailbox(address(this), B, validatorAddrs, 2);
        recipient = new MockRecipient();
        sender = makeAddr("sender");
    }

    // ------------------------------------------------------------------ helpers

    function _dispatchAB(bytes memory body) internal returns (bytes memory message) {
        uint32 nonce = boxA.outboundNonce(sender, B);
        vm.prank(sender);
        boxA.dispatch(B, Message.addressToBytes32(address(recipient)), body);
        message = Message.formatMessage(
            1, nonce, A, Message.addressToBytes32(sender), B, Message.addressToBytes32(address(recipient)), body
        );
    }

    function _sigs(Mailbox box, bytes memory message, uint256[] memory keys) internal view returns (bytes[] memory) {
        return _signSorted(keys, box.deliveryDigest(keccak256(message)));
    }

    function _keys(uint256 a, uint256 b) internal pure returns (uint256[] memory k) {
        k = new uint256[](2);
        k[0] = a;
        k[1] = b;
    }

    function _sigs2(bytes memory message) internal view returns (bytes[] memory) {
        return _sigs(boxB, message, _keys(0xA1, 0xB2));
    }

    // ------------------------------------------------------------------ dispatch

    function test_Dispatch_EmitsMessageAndNumbersPerPath() public {
        bytes memory body = "hello";
        bytes memory expected = Message.formatMessage(
            1, 0, A, Message.addressToBytes32(sender), B, Message.addressToBytes32(address(recipient)), body
        );
        vm.expectEmit(true, true, true, true, address(boxA));
        emit Dispatch(keccak256(expected), sender, B, 0, expected);
        vm.prank(sender);
        bytes32 id = boxA.dispatch(B, Message.addressToBytes32(address(recipient)), body);
        vm.assertEq(id, keccak256(expected), "id = keccak(message)");
        vm.assertEq(boxA.outboundNonce(sender, B), 1, "path nonce bumped");
        vm.assertEq(boxA.outboundNonce(sender, A), 0, "other destination untouched");
        vm.assertEq(boxA.outboundNonce(address(this), B), 0, "other sender untouched");
        vm.prank(sender);
        boxA.dispatch(B, bytes32(0), "");
        vm.assertEq(boxA.outboundNonce(sender, B), 2, "second");
    }

    // ------------------------------------------------------------------ process: success

    function test_Process_DeliversOnceAndCallsRecipient() public {
        bytes memory message = _dispatchAB("payload");
        bytes32 id = keccak256(message);
        vm.expectEmit(true, true, true, true, address(boxB));
        emit Process(id, A, Message.addressToBytes32(sender), address(recipient));
        boxB.process(message, _sigs2(message));
        vm.assertTrue(boxB.delivered(id), "delivered");
        vm.assertEq(boxB.inboundNonce(A, Message.addressToBytes32(sender)), 1, "inbound nonce");
        vm.assertEq(recipient.calls(), 1, "handled");
        vm.assertEq(uint256(recipient.lastOrigin()), A, "origin");
        vm.assertEq(recipient.lastSender(), Message.addressToBytes32(sender), "sender");
        vm.assertEq(recipient.lastBody(), bytes("payload"), "body");
    }

    function test_Process_AcceptsAllValidatorsAboveThreshold() public {
        bytes memory message = _dispatchAB("x");
        uint256[] memory keys = new uint256[](3);
        (keys[0], keys[1], keys[2]) = (0xA1, 0xB2, 0xC3);
        boxB.process(message, _sigs(boxB, message, keys));
        vm.assertEq(recipient.calls(), 1, "handled");
    }

    function test_Process_SelfDispatchGoesThroughProcess() public {
        vm.prank(sender);
        boxA.dispatch(A, Message.addressToBytes32(address(recipient)), "self");
        bytes memory message = Message.formatMessage(
            1, 0, A, Message.addressToBytes32(sender), A, Message.addressToBytes32(address(recipient)), "self"
        );
        vm.assertEq(recipient.calls(), 0, "not delivered by dispatch");
        boxA.process(message, _sigs(boxA, message, _keys(0xB2, 0xC3)));
        vm.assertEq(recipient.calls(), 1, "delivered by process");
    }

    function test_Process_RecipientRevertLeavesMessageUndelivered() public {
        bytes memory message = _dispatchAB("x");
        recipient.setFail(true);
        bytes[] memory sigs = _sigs2(message);
        vm.expectRevert(MockRecipient.Refused.selector);
        boxB.process(message, sigs);
        vm.assertFalse(boxB.delivered(keccak256(message)), "not delivered");
        recipient.setFail(false);
        boxB.process(message, sigs);
        vm.assertTrue(boxB.delivered(keccak256(message)), "retry delivered");
    }

    // ------------------------------------------------------------------ process: rejections

    function test_RevertWhen_Replayed() public {
        bytes memory message = _dispatchAB("x");
        bytes[] memory sigs = _sigs2(message);
        boxB.process(message, sigs);
        vm.expectRevert(abi.encodeWithSelector(IMailbox.AlreadyDelivered.selector, keccak256(message)));
        boxB.process(message, sigs);
    }

    function test_RevertWhen_Reordered() public {
        _dispatchAB("first");
        bytes memory second = _dispatchAB("second");
        bytes[] memory sigs = _sigs2(second); // signed first: expectRevert applies to the next call
        vm.expectRevert(abi.encodeWithSelector(IMailbox.MessageOutOfOrder.selector, uint32(0), uint32(1)));
        boxB.process(second, sigs);
    }

    function test_Process_PathsAreIndependentPerSender() public {
        _dispatchAB("held"); // sender's nonce 0, never delivered
        vm.prank(address(this));
        boxA.dispatch(B, Message.addressToBytes32(address(recipient)), "other sender");
        bytes memory other = Message.formatMessage(
            1, 0, A, Message.addressToBytes32(address(this)), B, Message.addressToBytes32(address(recipient)), "other sender"
        );
        boxB.process(other, _sigs2(other));
        vm.assertEq(recipient.calls(), 1, "other path not blocked");
    }

    function test_RevertWhen_UnderSigned() public {
        bytes memory message = _dispatchAB("x");
        bytes[] memory one = new bytes[](1);
        one[0] = _sigs2(message)[0];
        vm.expectRevert(abi.encodeWithSelector(IMailbox.ThresholdNotMet.selector, uint256(1), uint256(2)));
        boxB.process(message, one);
    }

    function test_RevertWhen_DuplicatedSigner() public {
        bytes memory message = _dispatchAB("x");
        bytes[] memory sigs = _sigs(boxB, message, _keys(0xA1, 0xA1));
        address a = vm.addr(0xA1);
        vm.expectRevert(abi.encodeWithSelector(IMailbox.DuplicateOrUnsortedSigner.selector, a, a));
        boxB.process(message, sigs);
    }

    function test_RevertWhen_UnsortedSigners() public {
        bytes memory message = _dispatchAB("x");
        bytes[] memory sigs = _sigs2(message);
        (sigs[0], sigs[1]) = (sigs[1], sigs[0]);
        (address lo, address hi) = vm.addr(0xA1) < vm.addr(0xB2) ? (vm.addr(0xA1), vm.addr(0xB2)) : (vm.addr(0xB2), vm.addr(0xA1));
        vm.expectRevert(abi.encodeWithSelector(IMailbox.DuplicateOrUnsortedSigner.selector, hi, lo));
        boxB.process(message, sigs);
    }

    function test_RevertWhen_UnknownSigner() public {
        bytes memory message = _dispatchAB("x");
        bytes[] memory sigs = _sigs(boxB, message, _keys(0xA1, 0xDEAD));
        address stranger = vm.addr(0xDEAD);
        vm.expectRevert(abi.encodeWithSelector(IMailbox.UnknownValidator.selector, stranger));
        boxB.process(message, sigs);
    }

    function test_RevertWhen_WrongDestination() public {
        bytes memory message = _dispatchAB("x");
        bytes[] memory sigs = _sigs(boxA, message, _keys(0xA1, 0xB2));
        vm.expectRevert(abi.encodeWithSelector(IMailbox.WrongDestination.selector, A, B));
        boxA.process(message, sigs);
    }

    function test_RevertWhen_SignedForAnotherMailbox() public {
        // Signatures over box A's digest recover other addresses at box B.
        bytes memory message = _dispatchAB("x");
        bytes[] memory sigs = _sigs(boxA, message, _keys(0xA1, 0xB2));
        vm.expectRevert();
        boxB.process(message, sigs);
    }

    function test_RevertWhen_BodyForgedAfterSigning() public {
        bytes memory message = _dispatchAB("pay alice 1");
        bytes[] memory sigs = _sigs2(message);
        bytes memory forged = Message.formatMessage(
            1, 0, A, Message.addressToBytes32(sender), B, Message.addressToBytes32(address(recipient)), "pay alice 9"
        );
        bytes32 forgedDigest = boxB.deliveryDigest(keccak256(forged));
        (bytes32 r, bytes32 s) = abi.decode(_slice64(sigs[0]), (bytes32, bytes32));
        address recovered = ecrecover(forgedDigest, uint8(sigs[0][64]), r, s);
        vm.expectRevert(abi.encodeWithSelector(IMailbox.UnknownValidator.selector, recovered));
        boxB.process(forged, sigs);
    }

    function test_RevertWhen_WrongVersion() public {
        bytes memory message = Message.formatMessage(
            2, 0, A, Message.addressToBytes32(sender), B, Message.addressToBytes32(address(recipient)), ""
        );
        vm.expectRevert(abi.encodeWithSelector(IMailbox.WrongVersion.selector, uint8(2)));
        boxB.process(message, new bytes[](0));
    }

    function test_RevertWhen_MessageTooShort() public {
        vm.expectRevert(abi.encodeWithSelector(Message.MessageTooShort.selector, uint256(76)));
        boxB.process(new bytes(76), new bytes[](0));
    }

    function test_RevertWhen_MalformedSignature() public {
        bytes memory message = _dispatchAB("x");
        bytes[] memory sigs = _sigs2(message);
        sigs[1] = hex"1234";
        vm.expectRevert(abi.encodeWithSelector(IMailbox.InvalidSignature.selector, uint256(1)));
        boxB.process(message, sigs);
    }

    // ------------------------------------------------------------------ validator set

    function test_SetValidators_ReplacesSetAndThreshold() public {
        address[] memory next = new address[](1);
        next[0] = vm.addr(0xDEAD);
        vm.expectEmit(true, true, true, true, address(boxB));
        emit ValidatorSetChanged(next, 1);
        boxB.setValidators(next, 1);
        vm.assertFalse(boxB.isValidator(vm.addr(0xA1)), "old removed");
        vm.assertTrue(boxB.isValidator(next[0]), "new added");
        vm.assertEq(boxB.threshold(), 1, "threshold");
        vm.assertEq(boxB.validators().length, 1, "list");

        bytes memory message = _dispatchAB("x");
        uint256[] memory k = new uint256[](1);
        k[0] = 0xDEAD;
        boxB.process(message, _sigs(boxB, message, k));
        vm.assertEq(recipient.calls(), 1, "new set delivers");
    }

    function test_RevertWhen_InvalidValidatorSet() public {
        address[] memory none = new address[](0);
        vm.expectRevert(abi.encodeWithSelector(IMailbox.InvalidValidatorSet.selector, uint256(0), uint256(0)));
        boxB.setValidators(none, 0);
        vm.expectRevert(abi.encodeWithSelector(IMailbox.InvalidValidatorSet.selector, uint256(3), uint256(4)));
        boxB.setValidators(validatorAddrs, 4);
        vm.expectRevert(abi.encodeWithSelector(IMailbox.InvalidValidatorSet.selector, uint256(3), uint256(0)));
        boxB.setValidators(validatorAddrs, 0);
        address[] memory dup = new address[](2);
        dup[0] = validatorAddrs[0];
        dup[1] = validatorAddrs[0];
        vm.expectRevert(abi.encodeWithSelector(IMailbox.InvalidValidatorSet.selector, uint256(2), uint256(1)));
        boxB.setValidators(dup, 1);
        address[] memory zero = new address[](1);
        vm.expectRevert(abi.encodeWithSelector(IMailbox.InvalidValidatorSet.selector, uint256(1), uint256(1)));
        boxB.setValidators(zero, 1);
    }

    function test_RevertWhen_NonOwnerSetsValidators() public {
        vm.expectRevert(abi.encodeWithSelector(Ownable.OwnableUnauthorizedAccount.selector, sender));
        vm.prank(sender);
        boxB.setValidators(validatorAddrs, 1);
    }

    // ------------------------------------------------------------------ fuzz

    function testFuzz_Codec_RoundTrips(
        uint32 nonce,
        uint32 origin,
        bytes32 sender_,
        uint32 destination,
        bytes32 recipient_,
        bytes calldata body
    ) public {
        bytes memory m = Message.formatMessage(1, nonce, origin, sender_, destination, recipient_, body);
        vm.assertEq(m.length, 77 + body.length, "length");
        // Compare the parsed fields as one ABI encoding: seven separate locals overflow the stack.
        bytes memory parsed = new MessageHarness().parseEncoded(m);
        vm.assertEq(parsed, abi.encode(uint8(1), nonce, origin, sender_, destination, recipient_, body), "fields");
    }

    /// @dev Any strict subset below the threshold, or any unknown signer, is refused; flipping any
    /// body byte after signing never delivers.
    function testFuzz_RevertWhen_BodyByteFlipped(bytes calldata body, uint256 index, uint8 xor) public {
        vm.assume(body.length > 0 && xor != 0);
        bytes memory message = _dispatchAB(body);
        bytes[] memory sigs = _sigs2(message);
        bytes memory forged = bytes.concat(message);
        index = 77 + bound(index, 0, body.length - 1);
        forged[index] = bytes1(uint8(forged[index]) ^ xor);
        vm.expectRevert();
        boxB.process(forged, sigs);
        boxB.process(message, sigs);
        vm.assertEq(recipient.calls(), 1, "original still delivers");
    }

    function _slice64(bytes memory sig) internal pure returns (bytes memory out) {
        out = new bytes(64);
        for (uint256 i; i < 64; ++i) {
            out[i] = sig[i];
        }
    }
}
