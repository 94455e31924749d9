// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

/**
 * @title Message
 * @notice Pure codec of the Omniclear cross-chain message, packed as Hyperlane packs its own:
 *
 * | offset | size | field                                   |
 * |--------|------|-----------------------------------------|
 * | 0      | 1    | version (uint8, {VERSION})              |
 * | 1      | 4    | nonce (uint32, per (origin, sender, destination) path) |
 * | 5      | 4    | origin (uint32 domain = chain id)       |
 * | 9      | 32   | sender (bytes32, left-padded address)   |
 * | 41     | 4    | destination (uint32 domain)             |
 * | 45     | 32   | recipient (bytes32, left-padded address)|
 * | 77     | ...  | body (bytes)                            |
 *
 * The message id is `keccak256(message)`. `bridges/messages.py` implements the same codec; the
 * shared vectors in `test/vectors/settlement_messages.json` pin both.
 */
library Message {
    /// @notice The only message version this codec writes and the Mailbox accepts.
    uint8 internal constant VERSION = 1;

    uint256 private constant NONCE_OFFSET = 1;
    uint256 private constant ORIGIN_OFFSET = 5;
    uint256 private constant SENDER_OFFSET = 9;
    uint256 private constant DESTINATION_OFFSET = 41;
    uint256 private constant RECIPIENT_OFFSET = 45;
    uint256 internal constant BODY_OFFSET = 77;

    /// @notice A message shorter than its 77-byte header.
    error MessageTooShort(uint256 length);

    /// @notice Pack a message.
    function formatMessage(
        uint8 version_,
        uint32 nonce_,
        uint32 origin_,
        bytes32 sender_,
        uint32 destination_,
        bytes32 recipient_,
        bytes memory body_
    ) internal pure returns (bytes memory) {
        return abi.encodePacked(version_, nonce_, origin_, sender_, destination_, recipient_, body_);
    }

    /// @notice `keccak256(message)`.
    function id(bytes memory message) internal pure returns (bytes32) {
        return keccak256(message);
    }

    /// @notice Revert unless `message` holds at least the fixed header.
    function checkLength(bytes calldata message) internal pure {
        if (message.length < BODY_OFFSET) revert MessageTooShort(message.length);
    }

    function version(bytes calldata message) internal pure returns (uint8) {
        return uint8(bytes1(message[0:NONCE_OFFSET]));
    }

    function nonce(bytes calldata message) internal pure returns (uint32) {
        return uint32(bytes4(message[NONCE_OFFSET:ORIGIN_OFFSET]));
    }

    function origin(bytes calldata message) internal pure returns (uint32) {
        return uint32(bytes4(message[ORIGIN_OFFSET:SENDER_OFFSET]));
    }

    function sender(bytes calldata message) internal pure returns (bytes32) {
        return bytes32(message[SENDER_OFFSET:DESTINATION_OFFSET]);
    }

    function destination(bytes calldata message) internal pure returns (uint32) {
        return uint32(bytes4(message[DESTINATION_OFFSET:RECIPIENT_OFFSET]));
    }

    function recipient(bytes calldata message) internal pure returns (bytes32) {
        return bytes32(message[RECIPIENT_OFFSET:BODY_OFFSET]);
    }

    /// @notice The recipient as an EVM address (the low 20 bytes).
    function recipientAddress(bytes calldata message) internal pure returns (address) {
        return bytes32ToAddress(recipient(message));
    }

    function body(bytes calldata message) internal pure returns (bytes calldata) {
        return message[BODY_OFFSET:];
    }

    /// @notice Left-pad an address to 32 bytes.
    function addressToBytes32(address a) internal pure returns (bytes32) {
        return bytes32(uint256(uint160(a)));
    }

    /// @notice The low 20 bytes of `b` as an address.
    function bytes32ToAddress(bytes32 b) internal pure returns (address) {
        // forge-lint: disable-next-line(unsafe-typecast)
        return address(uint160(uint256(b)));
    }
}
