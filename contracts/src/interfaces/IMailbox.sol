// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

/**
 * @title IMailbox
 * @notice Omniclear's cross-chain messaging endpoint (trust stage 1: an owner-managed M-of-N
 * validator set), modelled on Hyperlane's Mailbox. One per chain; `localDomain` is the chain id.
 *
 * Message format: see `libraries/Message.sol`; `id = keccak256(message)`.
 *
 * Paths and order: a path is `(origin, sender, destination)`. {dispatch} numbers each
 * sender's messages to one destination 0, 1, 2, ...; {process} accepts a path's messages only
 * in that order. Keying the path by sender as well as by origin is deliberate: with one
 * sequence per (origin, destination), a settlement message waiting for a bridge-in
 * (`BridgeInPending`) would block the very token-bridge mint message it waits for whenever
 * the hub chain itself is the bridge source (both dispatched on the hub chain to the same
 * destination), a deadlock. Each sender's stream is still strictly ordered.
 *
 * Validator signatures: each validator signs the EIP-712 digest of
 * `Delivery(bytes32 messageId)` in the domain `{name: "Omniclear Mailbox", version: "1",
 * chainId: <destination chain id>, verifyingContract: <destination Mailbox>}` ({deliveryDigest}),
 * 65-byte `r || s || v`, low s. Binding the digest to the destination Mailbox (not just the id)
 * makes a signature worthless on any other Mailbox that shares validators. Signatures are
 * passed in strictly ascending order of signer address, so a signer cannot count twice.
 */
interface IMailbox {
    // ---------------------------------------------------------------- errors

    /// @notice The message's version is not {Message.VERSION}.
    error WrongVersion(uint8 got);

    /// @notice The message is addressed to `got`, not to this Mailbox's domain `expected`.
    error WrongDestination(uint32 expected, uint32 got);

    /// @notice The message with this id was already delivered.
    error AlreadyDelivered(bytes32 id);

    /// @notice The path's next inbound nonce is `expected`; the message carries `got`.
    error MessageOutOfOrder(uint32 expected, uint32 got);

    /// @notice Fewer signatures (`got`) than the threshold (`need`).
    error ThresholdNotMet(uint256 got, uint256 need);

    /// @notice Signature number `index` is malformed or does not recover (OpenZeppelin ECDSA).
    error InvalidSignature(uint256 index);

    /// @notice `signer` recovered from a signature is not a validator.
    error UnknownValidator(address signer);

    /// @notice `signer` is not strictly greater than the previous signer `previous`.
    error DuplicateOrUnsortedSigner(address previous, address signer);

    /// @notice A validator set must be non-empty, without zero or repeated addresses, and the
    /// threshold within `1..validators.length`.
    error InvalidValidatorSet(uint256 validators, uint256 threshold);

    // ---------------------------------------------------------------- events

    /// @notice `sender` dispatched `message` (id `id`) to `destination` with path nonce `nonce`.
    event Dispatch(bytes32 indexed id, address indexed sender, uint32 indexed destination, uint32 nonce, bytes message);

    /// @notice Message `id` from `(origin, sender)` was delivered to `recipient`.
    event Process(bytes32 indexed id, uint32 indexed origin, bytes32 indexed sender, address recipient);

    /// @notice The validator set and threshold were replaced.
    event ValidatorSetChanged(address[] validators, uint256 threshold);

    // ---------------------------------------------------------------- sender / relayer

    /**
     * @notice Dispatch `body` to `recipient` on `destination` (which may be this chain).
     * @return id The message id, `keccak256(message)`.
     */
    function dispatch(uint32 destination, bytes32 recipient, bytes calldata body) external returns (bytes32 id);

    /**
     * @notice Verify and deliver `message`: CHECKS version, destination, not yet delivered,
     * path order, then M-of-N validator signatures over {deliveryDigest}; EFFECTS mark delivered,
     * bump the path's inbound nonce, emit {Process}; INTERACTIONS call the recipient's `handle`.
     * @param message The packed message (`libraries/Message.sol`).
     * @param signatures 65-byte signatures, strictly ascending by signer address, at least
     * `threshold()` of them, all from validators.
     */
    function process(bytes calldata message, bytes[] calldata signatures) external;

    // ---------------------------------------------------------------- owner

    /// @notice Replace the validator set and threshold. Owner only.
    function setValidators(address[] calldata validators, uint256 threshold) external;

    // ---------------------------------------------------------------- views

    /// @notice This chain's domain (its chain id).
    function localDomain() external view returns (uint32);

    /// @notice Whether message `id` was delivered here.
    function delivered(bytes32 id) external view returns (bool);

    /// @notice Nonce the next {dispatch} by `sender` to `destination` gets.
    function outboundNonce(address sender, uint32 destination) external view returns (uint32);

    /// @notice Nonce the next message from `(origin, sender)` must carry to be processed here.
    function inboundNonce(uint32 origin, bytes32 sender) external view returns (uint32);

    /// @notice The EIP-712 digest validators sign for message `id` delivered to this Mailbox.
    function deliveryDigest(bytes32 id) external view returns (bytes32);

    /// @notice The current validators, in the order they were set.
    function validators() external view returns (address[] memory);

    /// @notice Whether `account` is a current validator.
    function isValidator(address account) external view returns (bool);

    /// @notice Number of validator signatures {process} requires.
    function threshold() external view returns (uint256);
}
