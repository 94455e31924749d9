// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {IMailbox} from "./interfaces/IMailbox.sol";
import {IMessageRecipient} from "./interfaces/IMessageRecipient.sol";
import {Message} from "./libraries/Message.sol";

/**
 * @title Mailbox
 * @notice Dispatches and delivers Omniclear's cross-chain messages; delivery needs M-of-N
 * signatures of an owner-managed validator set (trust stage 1). See {IMailbox} for the path
 * order, the signing digest and the signature order.
 *
 * Invariants: a message id is delivered at most once; a path's messages are delivered in
 * dispatch order, without gaps; a delivered message carried at least `threshold` signatures of
 * distinct current validators over its {deliveryDigest}.
 */
contract Mailbox is IMailbox, Ownable, EIP712 {
    using Message for bytes;

    /// @notice EIP-712 type hash of what validators sign.
    bytes32 public constant DELIVERY_TYPEHASH = keccak256("Delivery(bytes32 messageId)");

    /// @inheritdoc IMailbox
    uint32 public immutable localDomain;

    mapping(address sender => mapping(uint32 destination => uint32)) private _outboundNonce;
    mapping(uint32 origin => mapping(bytes32 sender => uint32)) private _inboundNonce;
    mapping(bytes32 id => bool) private _delivered;

    address[] private _validators;
    mapping(address => bool) private _isValidator;
    uint256 private _threshold;

    /**
     * @param owner_ Manages the validator set.
     * @param localDomain_ This chain's domain: its chain id (tests put several in one EVM).
     * @param validators_ Initial validators (non-empty, no zero or repeated address).
     * @param threshold_ Signatures required, `1..validators_.length`.
     */
    constructor(address owner_, uint32 localDomain_, address[] memory validators_, uint256 threshold_)
        Ownable(owner_)
        EIP712("Omniclear Mailbox", "1")
    {
        localDomain = localDomain_;
        _setValidators(validators_, threshold_);
    }

    // ================================================================ sender

    /// @inheritdoc IMailbox
    function dispatch(uint32 destination, bytes32 recipient, bytes calldata body) external returns (bytes32 id) {
        uint32 nonce = _outboundNonce[msg.sender][destination]++;
        bytes memory message = Message.formatMessage(
            Message.VERSION, nonce, localDomain, Message.addressToBytes32(msg.sender), destination, recipient, body
        );
        id = keccak256(message);
        emit Dispatch(id, msg.sender, destination, nonce, message);
    }

    // ================================================================ relayer

    /// @inheritdoc IMailbox
    function process(bytes calldata message, bytes[] calldata signatures) external {
        // CHECKS
        message.checkLength();
        if (message.version() != Message.VERSION) revert WrongVersion(message.version());
        uint32 destination = message.destination();
        if (destination != localDomain) revert WrongDestination(localDomain, destination);
        bytes32 id = keccak256(message);
        if (_delivered[id]) revert AlreadyDelivered(id);
        uint32 origin = message.origin();
        bytes32 sender = message.sender();
        uint32 expected = _inboundNonce[origin][sender];
        if (message.nonce() != expected) revert MessageOutOfOrder(expected, message.nonce());
        _checkSignatures(id, signatures);

        // EFFECTS
        _delivered[id] = true;
        // Cannot overflow in practice: the origin's outbound nonce (checked) bounds it.
        unchecked {
            _inboundNonce[origin][sender] = expected + 1;
        }
        address recipient = message.recipientAddress();
        emit Process(id, origin, sender, recipient);

        // INTERACTIONS
        IMessageRecipient(recipient).handle(origin, sender, message.body());
    }

    // ================================================================ owner

    /// @inheritdoc IMailbox
    function setValidators(address[] calldata validators_, uint256 threshold_) external onlyOwner {
        _setValidators(validators_, threshold_);
    }

    // ================================================================ views

    /// @inheritdoc IMailbox
    function delivered(bytes32 id) external view returns (bool) {
        return _delivered[id];
    }

    /// @inheritdoc IMailbox
    function outboundNonce(address sender, uint32 destination) external view returns (uint32) {
        return _outboundNonce[sender][destination];
    }

    /// @inheritdoc IMailbox
    function inboundNonce(uint32 origin, bytes32 sender) external view returns (uint32) {
        return _inboundNonce[origin][sender];
    }

    /// @inheritdoc IMailbox
    function deliveryDigest(bytes32 id) public view returns (bytes32) {
        return _hashTypedDataV4(keccak256(abi.encode(DELIVERY_TYPEHASH, id)));
    }

    /// @inheritdoc IMailbox
    function validators() external view returns (address[] memory) {
        return _validators;
    }

    /// @inheritdoc IMailbox
    function isValidator(address account) external view returns (bool) {
        return _isValidator[account];
    }

    /// @inheritdoc IMailbox
    function threshold() external view returns (uint256) {
        return _threshold;
    }

    // ================================================================ internal

    /// @dev Every signature must recover a validator, signers strictly ascending, count ≥ threshold.
    function _checkSignatures(bytes32 id, bytes[] calldata signatures) private view {
        uint256 need = _threshold;
        if (signatures.length < need) revert ThresholdNotMet(signatures.length, need);
        bytes32 digest = deliveryDigest(id);
        address previous;
        for (uint256 i; i < signatures.length; ++i) {
            (address signer, ECDSA.RecoverError err,) = ECDSA.tryRecover(digest, signatures[i]);
            if (err != ECDSA.RecoverError.NoError) revert InvalidSignature(i);
            if (signer <= previous) revert DuplicateOrUnsortedSigner(previous, signer);
            if (!_isValidator[signer]) revert UnknownValidator(signer);
            previous = signer;
        }
    }

    function _setValidators(address[] memory validators_, uint256 threshold_) private {
        uint256 n = validators_.length;
        if (n == 0 || threshold_ == 0 || threshold_ > n) revert InvalidValidatorSet(n, threshold_);
        address[] storage old = _validators;
        for (uint256 i; i < old.length; ++i) {
            _isValidator[old[i]] = false;
        }
        delete _validators;
        for (uint256 i; i < n; ++i) {
            address v = validators_[i];
            if (v == address(0) || _isValidator[v]) revert InvalidValidatorSet(n, threshold_);
            _isValidator[v] = true;
            _validators.push(v);
        }
        _threshold = threshold_;
        emit ValidatorSetChanged(validators_, threshold_);
    }
}
