// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {Mailbox} from "../../src/Mailbox.sol";
import {SettlementHub} from "../../src/SettlementHub.sol";
import {IMailbox} from "../../src/interfaces/IMailbox.sol";
import {Message} from "../../src/libraries/Message.sol";
import {Settlement} from "../../src/libraries/Settlement.sol";
import {TestBase, Vm} from "../invariant/helpers/TestBase.sol";
import {MessageHarness, MockRecipient} from "./Mailbox.t.sol";

/**
 * @dev The vectors of `test/vectors/settlement_messages.json`, written by `python -m
 * tests.settlement.vectors` from `bridges/messages.py` and checked by pytest too. Solidity must
 * compute the same message bytes and ids, settlement bodies and settlements hash, batch hashes
 * and digests, and accept the Python-made sequencer and validator signatures: the hub, committing
 * the vector batches, dispatches exactly the vector messages, and the destination Mailbox
 * delivers them with the vector signatures. The deployment is the vectors' own (anvil account 0
 * deploys the hub Mailbox, the hub and the destination Mailbox at nonces 0, 1, 2).
 */
contract SettlementVectorsTest is TestBase {
    string internal json;
    Mailbox internal hubMailbox;
    SettlementHub internal hub;
    Mailbox internal destMailbox;
    MessageHarness internal harness;

    function setUp() public {
        json = vm.readFile(string.concat(vm.projectRoot(), "/test/vectors/settlement_messages.json"));
        vm.chainId(vm.parseJsonUint(json, ".hub.chainId"));
        address deployer = vm.parseJsonAddress(json, ".deployer");
        address[] memory validators = vm.parseJsonAddressArray(json, ".delivery.validators");
        uint256 threshold = vm.parseJsonUint(json, ".delivery.threshold");
        vm.startPrank(deployer);
        hubMailbox = new Mailbox(deployer, uint32(vm.parseJsonUint(json, ".hub.chainId")), validators, threshold);
        hub = new SettlementHub(deployer, address(hubMailbox), vm.parseJsonAddress(json, ".hub.sequencer"));
        destMailbox = new Mailbox(deployer, uint32(vm.parseJsonUint(json, ".delivery.chainId")), validators, threshold);
        uint256[] memory domains = vm.parseJsonUintArray(json, ".hub.domains");
        address[] memory vaults = vm.parseJsonAddressArray(json, ".hub.vaults");
        for (uint256 i; i < domains.length; ++i) {
            hub.setVault(uint32(domains[i]), vaults[i]);
        }
        vm.stopPrank();
        harness = new MessageHarness();
    }

    // ------------------------------------------------------------------ constants and domains

    function test_Vectors_DeploymentMatches() public view {
        vm.assertEq(address(hubMailbox), vm.parseJsonAddress(json, ".hub.mailbox"), "hub mailbox address");
        vm.assertEq(address(hub), vm.parseJsonAddress(json, ".hub.address"), "hub address");
        vm.assertEq(address(destMailbox), vm.parseJsonAddress(json, ".delivery.mailbox"), "destination mailbox");
    }

    function test_Vectors_TypehashesAndDomainSeparators() public {
        vm.assertEq(Settlement.BATCH_TYPEHASH, vm.parseJsonBytes32(json, ".batchTypehash"), "batch typehash");
        vm.assertEq(
            keccak256(bytes(vm.parseJsonString(json, ".batchType"))), Settlement.BATCH_TYPEHASH, "batch type string"
        );
        vm.assertEq(destMailbox.DELIVERY_TYPEHASH(), vm.parseJsonBytes32(json, ".deliveryTypehash"), "delivery typehash");
        vm.assertEq(
            keccak256(bytes(vm.parseJsonString(json, ".deliveryType"))), destMailbox.DELIVERY_TYPEHASH(), "type string"
        );
        vm.assertEq(_separator(address(hub)), vm.parseJsonBytes32(json, ".hub.domainSeparator"), "hub separator");
        vm.chainId(vm.parseJsonUint(json, ".delivery.chainId"));
        vm.assertEq(
            _separator(address(destMailbox)), vm.parseJsonBytes32(json, ".delivery.domainSeparator"), "mailbox separator"
        );
    }

    // ------------------------------------------------------------------ messages

    function test_Vectors_MessagesEncodeAndParse() public view {
        // forge's JSON paths must name one value, so counts are fixed here (and pinned by pytest)
        for (uint256 i; i < 3; ++i) {
            _checkMessage(string.concat(".messages[", vm.toString(i), "]"));
        }
    }

    /// @dev Every message the vectors say the hub dispatches also encodes and parses field by field.
    function test_Vectors_BatchMessagesEncodeAndParse() public view {
        for (uint256 b; b < 2; ++b) {
            for (uint256 i; i < 3; ++i) {
                _checkMessage(string.concat(".batches[", vm.toString(b), "].messages[", vm.toString(i), "]"));
            }
        }
    }

    // ------------------------------------------------------------------ settlements and headers

    function test_Vectors_SettlementBodiesAndHashes() public view {
        for (uint256 b; b < 2; ++b) {
            string memory p = string.concat(".batches[", vm.toString(b), "]");
            Settlement.ChainSettlement[] memory s = _settlements(p);
            for (uint256 i; i < s.length; ++i) {
                bytes memory body = vm.parseJsonBytes(json, string.concat(p, ".settlements[", vm.toString(i), "].body"));
                vm.assertEq(abi.encode(s[i]), body, "body == abi.encode(ChainSettlement)");
                vm.assertEq(abi.encode(abi.decode(body, (Settlement.ChainSettlement))), body, "decodes back");
            }
            vm.assertEq(hub.hashSettlements(s), vm.parseJsonBytes32(json, string.concat(p, ".settlementsHash")), "hash");
        }
    }

    function test_Vectors_BatchHashDigestAndSequencerSignature() public view {
        for (uint256 b; b < 2; ++b) {
            string memory p = string.concat(".batches[", vm.toString(b), "]");
            Settlement.BatchHeader memory h = _header(p);
            bytes32 digest = hub.batchDigest(h);
            vm.assertEq(hub.hashBatch(h), vm.parseJsonBytes32(json, string.concat(p, ".batchHash")), "batch hash");
            vm.assertEq(digest, vm.parseJsonBytes32(json, string.concat(p, ".digest")), "digest");
            bytes memory sig = vm.parseJsonBytes(json, string.concat(p, ".signature"));
            vm.assertEq(ECDSA.recover(digest, sig), hub.sequencer(), "signed by the sequencer");
            vm.assertEq(vm.parseJsonAddress(json, string.concat(p, ".signer")), hub.sequencer(), "signer field");
        }
        vm.assertEq(
            vm.parseJsonBytes32(json, ".batches[1].prevBatchHash"),
            vm.parseJsonBytes32(json, ".batches[0].batchHash"),
            "batch 2 chains to batch 1"
        );
    }

    /// @dev The hub accepts both vector batches with the Python signature and dispatches exactly
    /// the vector messages, in domain order, with the vector ids.
    function test_Vectors_HubCommitsBatchesAndDispatchesVectorMessages() public {
        for (uint256 b; b < 2; ++b) {
            string memory p = string.concat(".batches[", vm.toString(b), "]");
            Settlement.ChainSettlement[] memory s = _settlements(p);
            vm.recordLogs();
            hub.submitBatch(_header(p), s, vm.parseJsonBytes(json, string.concat(p, ".signature")));
            Vm.Log[] memory logs = vm.getRecordedLogs();
            uint256 k;
            for (uint256 j; j < logs.length; ++j) {
                if (logs[j].topics[0] != IMailbox.Dispatch.selector) continue;
                string memory mp = string.concat(p, ".messages[", vm.toString(k), "]");
                (, bytes memory message) = abi.decode(logs[j].data, (uint32, bytes));
                vm.assertEq(message, vm.parseJsonBytes(json, string.concat(mp, ".encoded")), "dispatched bytes");
                vm.assertEq(logs[j].topics[1], vm.parseJsonBytes32(json, string.concat(mp, ".id")), "dispatched id");
                ++k;
            }
            vm.assertEq(k, s.length, "one message per domain");
            vm.assertEq(hub.lastBatchHash(), vm.parseJsonBytes32(json, string.concat(p, ".batchHash")), "committed");
        }
    }

    // ------------------------------------------------------------------ delivery

    function test_Vectors_DeliveryDigestsAndValidatorSignatures() public {
        vm.chainId(vm.parseJsonUint(json, ".delivery.chainId"));
        for (uint256 i; i < 2; ++i) {
            string memory p = string.concat(".delivery.items[", vm.toString(i), "]");
            bytes32 id = vm.parseJsonBytes32(json, string.concat(p, ".id"));
            bytes32 digest = destMailbox.deliveryDigest(id);
            vm.assertEq(digest, vm.parseJsonBytes32(json, string.concat(p, ".digest")), "delivery digest");
            bytes[] memory sigs = vm.parseJsonBytesArray(json, string.concat(p, ".signatures"));
            address[] memory signers = vm.parseJsonAddressArray(json, string.concat(p, ".signers"));
            vm.assertEq(sigs.length, signers.length, "one signer per signature");
            for (uint256 j; j < sigs.length; ++j) {
                vm.assertEq(ECDSA.recover(digest, sigs[j]), signers[j], "recovers the listed signer");
                vm.assertTrue(destMailbox.isValidator(signers[j]), "a validator");
                if (j > 0) vm.assertGt(uint160(signers[j]), uint160(signers[j - 1]), "ascending");
            }
        }
    }

    /// @dev The destination Mailbox delivers the hub's vector messages with the Python signatures
    /// (a recording recipient stands in for the vault at the vector's address).
    function test_Vectors_DestinationMailboxDeliversWithVectorSignatures() public {
        address vault = vm.parseJsonAddressArray(json, ".hub.vaults")[2];
        vm.etch(vault, type(MockRecipient).runtimeCode);
        vm.chainId(vm.parseJsonUint(json, ".delivery.chainId"));
        for (uint256 b; b < 2; ++b) {
            string memory mp = string.concat(".batches[", vm.toString(b), "].messages[2]");
            string memory dp = string.concat(".delivery.items[", vm.toString(b), "]");
            bytes memory message = vm.parseJsonBytes(json, string.concat(mp, ".encoded"));
            vm.assertEq(keccak256(message), vm.parseJsonBytes32(json, string.concat(dp, ".id")), "item is the message");
            destMailbox.process(message, vm.parseJsonBytesArray(json, string.concat(dp, ".signatures")));
            vm.assertTrue(destMailbox.delivered(keccak256(message)), "delivered");
            vm.assertEq(MockRecipient(vault).lastBody(), vm.parseJsonBytes(json, string.concat(mp, ".body")), "body");
            vm.assertEq(uint256(MockRecipient(vault).lastOrigin()), vm.parseJsonUint(json, ".hub.chainId"), "origin");
            vm.assertEq(
                MockRecipient(vault).lastSender(), Message.addressToBytes32(address(hub)), "sender is the hub"
            );
        }
        vm.assertEq(MockRecipient(vault).calls(), 2, "both batches");
    }

    // ------------------------------------------------------------------ json -> structs

    function _checkMessage(string memory p) internal view {
        bytes memory encoded = vm.parseJsonBytes(json, string.concat(p, ".encoded"));
        bytes memory body = vm.parseJsonBytes(json, string.concat(p, ".body"));
        bytes memory fields = abi.encode(
            uint8(vm.parseJsonUint(json, string.concat(p, ".version"))),
            uint32(vm.parseJsonUint(json, string.concat(p, ".nonce"))),
            uint32(vm.parseJsonUint(json, string.concat(p, ".origin"))),
            vm.parseJsonBytes32(json, string.concat(p, ".sender")),
            uint32(vm.parseJsonUint(json, string.concat(p, ".destination"))),
            vm.parseJsonBytes32(json, string.concat(p, ".recipient")),
            body
        );
        vm.assertEq(harness.parseEncoded(encoded), fields, "Message accessors read the vector fields");
        vm.assertEq(_format(fields), encoded, "Message.formatMessage == vector bytes");
        vm.assertEq(keccak256(encoded), vm.parseJsonBytes32(json, string.concat(p, ".id")), "id = keccak(message)");
    }

    function _format(bytes memory fields) internal pure returns (bytes memory) {
        (uint8 v, uint32 nonce, uint32 origin, bytes32 sender, uint32 destination, bytes32 recipient, bytes memory body)
        = abi.decode(fields, (uint8, uint32, uint32, bytes32, uint32, bytes32, bytes));
        return Message.formatMessage(v, nonce, origin, sender, destination, recipient, body);
    }

    function _header(string memory p) internal view returns (Settlement.BatchHeader memory h) {
        h.batchNumber = uint64(vm.parseJsonUint(json, string.concat(p, ".batchNumber")));
        h.prevBatchHash = vm.parseJsonBytes32(json, string.concat(p, ".prevBatchHash"));
        h.stateRoot = vm.parseJsonBytes32(json, string.concat(p, ".stateRoot"));
        h.journalHash = vm.parseJsonBytes32(json, string.concat(p, ".journalHash"));
        h.settlementsHash = vm.parseJsonBytes32(json, string.concat(p, ".settlementsHash"));
    }

    function _settlements(string memory p) internal view returns (Settlement.ChainSettlement[] memory s) {
        uint256 n = vm.parseJsonUintArray(json, ".hub.domains").length;
        s = new Settlement.ChainSettlement[](n);
        for (uint256 i; i < n; ++i) {
            s[i] = _settlement(string.concat(p, ".settlements[", vm.toString(i), "]"));
        }
    }

    function _settlement(string memory p) internal view returns (Settlement.ChainSettlement memory s) {
        s.domain = uint32(vm.parseJsonUint(json, string.concat(p, ".domain")));
        s.batchNumber = uint64(vm.parseJsonUint(json, string.concat(p, ".batchNumber")));
        s.deltas = _deltas(p);
        s.withdrawals = _withdrawals(p);
        s.bridgeOut = _legs(p, ".bridgeOut");
        s.bridgeIn = _legs(p, ".bridgeIn");
    }

    function _deltas(string memory p) internal view returns (Settlement.AccountDelta[] memory d) {
        address[] memory accounts = vm.parseJsonAddressArray(json, string.concat(p, ".deltaAccounts"));
        int256[] memory amounts = vm.parseJsonIntArray(json, string.concat(p, ".deltaAmounts"));
        d = new Settlement.AccountDelta[](accounts.length);
        for (uint256 i; i < d.length; ++i) {
            d[i] = Settlement.AccountDelta(accounts[i], amounts[i]);
        }
    }

    function _withdrawals(string memory p) internal view returns (Settlement.Withdrawal[] memory w) {
        bytes32[] memory ids = vm.parseJsonBytes32Array(json, string.concat(p, ".withdrawalIds"));
        address[] memory accounts = vm.parseJsonAddressArray(json, string.concat(p, ".withdrawalAccounts"));
        address[] memory recipients = vm.parseJsonAddressArray(json, string.concat(p, ".withdrawalRecipients"));
        uint256[] memory amounts = vm.parseJsonUintArray(json, string.concat(p, ".withdrawalAmounts"));
        w = new Settlement.Withdrawal[](ids.length);
        for (uint256 i; i < w.length; ++i) {
            w[i] = Settlement.Withdrawal(ids[i], accounts[i], recipients[i], amounts[i]);
        }
    }

    function _legs(string memory p, string memory side) internal view returns (Settlement.BridgeTransfer[] memory l) {
        uint256[] memory domains = vm.parseJsonUintArray(json, string.concat(p, side, "Domains"));
        uint256[] memory amounts = vm.parseJsonUintArray(json, string.concat(p, side, "Amounts"));
        l = new Settlement.BridgeTransfer[](domains.length);
        for (uint256 i; i < l.length; ++i) {
            l[i] = Settlement.BridgeTransfer(uint32(domains[i]), amounts[i]);
        }
    }

    /// @dev OpenZeppelin EIP712's separator for `verifying` on the current chain.
    function _separator(address verifying) internal view returns (bytes32) {
        (, string memory name, string memory version, uint256 chainId,,,) = Mailbox(verifying).eip712Domain();
        return keccak256(
            abi.encode(
                keccak256("EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"),
                keccak256(bytes(name)),
                keccak256(bytes(version)),
                chainId,
                verifying
            )
        );
    }
}
