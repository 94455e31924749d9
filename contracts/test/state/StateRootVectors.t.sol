// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {MerkleProof} from "@openzeppelin/contracts/utils/cryptography/MerkleProof.sol";
import {TestBase} from "../invariant/helpers/TestBase.sol";

/// @notice The sequencer's state root (aggregator/core/merkle.py) is provable on-chain with
/// OpenZeppelin's MerkleProof: vectors written by `python -m tests.core.merkle_vectors`.
contract StateRootVectorsTest is TestBase {
    string internal json;
    bytes32 internal root;

    function setUp() public {
        json = vm.readFile(string.concat(vm.projectRoot(), "/test/vectors/state_root.json"));
        root = vm.parseJsonBytes32(json, ".root");
    }

    function _leaf(address account, int256 balance) internal pure returns (bytes32) {
        return keccak256(bytes.concat(keccak256(abi.encode(account, balance))));
    }

    function _at(uint256 i) internal view returns (address account, int256 balance, bytes32[] memory proof) {
        string memory p = string.concat(".leaves[", vm.toString(i), "]");
        account = vm.parseJsonAddress(json, string.concat(p, ".account"));
        balance = vm.parseJsonInt(json, string.concat(p, ".balance"));
        proof = vm.parseJsonBytes32Array(json, string.concat(p, ".proof"));
        vm.assertEq(_leaf(account, balance), vm.parseJsonBytes32(json, string.concat(p, ".leaf")), "leaf encoding");
    }

    function test_EveryBalanceProvesUnderTheRoot() public view {
        for (uint256 i = 0; i < 7; i++) {
            (address account, int256 balance, bytes32[] memory proof) = _at(i);
            vm.assertTrue(MerkleProof.verify(proof, root, _leaf(account, balance)), "proof");
        }
    }

    function test_RevertWhen_BalanceOrAccountIsWrong() public view {
        (address account, int256 balance, bytes32[] memory proof) = _at(2);
        vm.assertFalse(MerkleProof.verify(proof, root, _leaf(account, balance + 1)), "balance + 1");
        vm.assertFalse(MerkleProof.verify(proof, root, _leaf(address(uint160(account) ^ 1), balance)), "other account");
        (,, bytes32[] memory other) = _at(3);
        vm.assertFalse(MerkleProof.verify(other, root, _leaf(account, balance)), "another account's proof");
    }
}
