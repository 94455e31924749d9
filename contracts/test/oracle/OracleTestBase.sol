// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

/**
 * @dev The Foundry cheatcodes the oracle tests use (forge-std is not installed in this project,
 * so the tests call the cheatcode address directly; assertions are cheatcodes that revert).
 */
interface OracleVm {
    function warp(uint256 newTimestamp) external;
    function chainId(uint256 newChainId) external;
    function prank(address sender) external;
    function startPrank(address sender) external;
    function stopPrank() external;
    function expectRevert(bytes calldata revertData) external;
    function expectRevert(bytes4 revertSelector) external;
    function expectRevert() external;
    function expectEmit(bool checkTopic1, bool checkTopic2, bool checkTopic3, bool checkData, address emitter)
        external;
    function getNonce(address account) external view returns (uint64);
    function addr(uint256 privateKey) external pure returns (address);
    function sign(uint256 privateKey, bytes32 digest) external pure returns (uint8 v, bytes32 r, bytes32 s);
    function readFile(string calldata path) external view returns (string memory);
    function projectRoot() external view returns (string memory);
    function parseJsonBytes32(string calldata json, string calldata key) external pure returns (bytes32);
    function parseJsonUint(string calldata json, string calldata key) external pure returns (uint256);
    function parseJsonInt(string calldata json, string calldata key) external pure returns (int256);
    function parseJsonAddress(string calldata json, string calldata key) external pure returns (address);
    function parseJsonString(string calldata json, string calldata key) external pure returns (string memory);
    function parseJsonAddressArray(string calldata json, string calldata key) external pure returns (address[] memory);
    function parseJsonBytesArray(string calldata json, string calldata key) external pure returns (bytes[] memory);
    function toString(uint256 value) external pure returns (string memory);
    function label(address account, string calldata newLabel) external;

    function assertEq(uint256 left, uint256 right, string calldata err) external pure;
    function assertEq(int256 left, int256 right, string calldata err) external pure;
    function assertEq(address left, address right, string calldata err) external pure;
    function assertEq(bytes32 left, bytes32 right, string calldata err) external pure;
    function assertEq(string calldata left, string calldata right, string calldata err) external pure;
    function assertTrue(bool condition, string calldata err) external pure;
}

/// @dev Shared helpers for the oracle tests: cheatcodes, signer keys, report signing.
abstract contract OracleTestBase {
    OracleVm internal constant vm = OracleVm(address(uint160(uint256(keccak256("hevm cheat code")))));

    bool public constant IS_TEST = true;

    /// @dev anvil dev accounts 1..5, the oracle signers of the shared vectors.
    function signerKeys() internal pure returns (uint256[] memory keys) {
        keys = new uint256[](5);
        keys[0] = 0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d;
        keys[1] = 0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a;
        keys[2] = 0x7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6;
        keys[3] = 0x47e179ec197488593b187f80a00eb0da91f1b9d0b13f8733639f19c30a34926a;
        keys[4] = 0x8b3a350cf5c34c9194ca85829a2df0ec3153be0318b5e2d3348e872092edffba;
    }

    function addresses(uint256[] memory keys) internal pure returns (address[] memory out) {
        out = new address[](keys.length);
        for (uint256 i; i < keys.length; ++i) {
            out[i] = vm.addr(keys[i]);
        }
    }

    function signDigest(uint256 key, bytes32 digest) internal pure returns (bytes memory) {
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(key, digest);
        return abi.encodePacked(r, s, v);
    }

    /// @dev Sign `digest` with `keys[idx[i]]` for each i.
    function signWith(uint256[] memory keys, uint256[] memory idx, bytes32 digest)
        internal
        pure
        returns (bytes[] memory sigs)
    {
        sigs = new bytes[](idx.length);
        for (uint256 i; i < idx.length; ++i) {
            sigs[i] = signDigest(keys[idx[i]], digest);
        }
    }

    function range(uint256 n) internal pure returns (uint256[] memory out) {
        out = new uint256[](n);
        for (uint256 i; i < n; ++i) {
            out[i] = i;
        }
    }
}
