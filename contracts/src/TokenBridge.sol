// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {IERC20Metadata} from "@openzeppelin/contracts/token/ERC20/extensions/IERC20Metadata.sol";
import {ICollateralToken} from "./interfaces/ICollateralToken.sol";
import {IMailbox} from "./interfaces/IMailbox.sol";
import {ITokenBridge} from "./interfaces/ITokenBridge.sol";
import {Settlement} from "./libraries/Settlement.sol";

/**
 * @title TokenBridge
 * @notice CCTP-style burn/mint bridge of the local CollateralToken between Omniclear vaults.
 * See {ITokenBridge}. Amounts travel in the canonical unit; each side converts exactly with its
 * own token's {scale}, so a 6-decimal chain and an 18-decimal chain move the same value.
 *
 * Replay protection is the Mailbox's (delivered-by-id, per-path order); the bridge only trusts
 * `(origin, remoteBridge[origin])`. Invariant: Σ canonical minted here from a domain ==
 * Σ canonical burned for this domain by that domain's bridge, once every message is delivered.
 */
contract TokenBridge is ITokenBridge, Ownable {
    /// @inheritdoc ITokenBridge
    address public immutable mailbox;
    /// @inheritdoc ITokenBridge
    address public immutable token;
    /// @inheritdoc ITokenBridge
    uint256 public immutable scale;

    /// @inheritdoc ITokenBridge
    address public vault;

    mapping(uint32 domain => bytes32) private _remoteBridges;
    mapping(uint64 batchNumber => mapping(uint32 fromDomain => uint256)) private _received;

    /**
     * @param owner_ Registers remote bridges and the vault.
     * @param mailbox_ The local Mailbox.
     * @param token_ The local CollateralToken (≥ 6 decimals); grant this bridge `MINTER_ROLE`.
     * @param vault_ The local vault (may be zero and set later with {setVault}).
     */
    constructor(address owner_, address mailbox_, address token_, address vault_) Ownable(owner_) {
        if (mailbox_ == address(0) || token_ == address(0)) revert ZeroAddress();
        mailbox = mailbox_;
        token = token_;
        scale = Settlement.scaleFor(IERC20Metadata(token_).decimals());
        vault = vault_;
        emit VaultSet(vault_);
    }

    // ================================================================ vault

    /// @inheritdoc ITokenBridge
    function bridgeOut(uint32 toDomain, uint256 canonicalAmount, uint64 batchNumber)
        external
        returns (bytes32 messageId)
    {
        if (msg.sender != vault) revert NotVault(msg.sender);
        if (canonicalAmount == 0) revert ZeroAmount();
        bytes32 remote = _remoteBridges[toDomain];
        if (remote == bytes32(0)) revert UnknownRemote(toDomain);
        uint256 nativeAmount = canonicalAmount * scale;
        ICollateralToken(token).burn(nativeAmount);
        messageId = IMailbox(mailbox).dispatch(toDomain, remote, abi.encode(batchNumber, canonicalAmount));
        emit BridgedOut(toDomain, batchNumber, canonicalAmount, nativeAmount, messageId);
    }

    // ================================================================ mailbox

    /// @notice Mint a bridged amount to the local vault. Local Mailbox only, from the remote bridge of `origin`.
    function handle(uint32 origin, bytes32 sender, bytes calldata body) external {
        if (msg.sender != mailbox) revert NotMailbox(msg.sender);
        bytes32 remote = _remoteBridges[origin];
        if (remote == bytes32(0) || sender != remote) revert UnauthorizedSender(origin, sender);
        (uint64 batchNumber, uint256 canonicalAmount) = abi.decode(body, (uint64, uint256));
        uint256 nativeAmount = canonicalAmount * scale;
        _received[batchNumber][origin] += canonicalAmount;
        emit BridgedIn(origin, batchNumber, canonicalAmount, nativeAmount);
        ICollateralToken(token).mint(vault, nativeAmount);
    }

    // ================================================================ owner

    /// @inheritdoc ITokenBridge
    function setRemoteBridge(uint32 domain, bytes32 bridge) external onlyOwner {
        _remoteBridges[domain] = bridge;
        emit RemoteBridgeSet(domain, bridge);
    }

    /// @inheritdoc ITokenBridge
    function setVault(address vault_) external onlyOwner {
        if (vault_ == address(0)) revert ZeroAddress();
        vault = vault_;
        emit VaultSet(vault_);
    }

    // ================================================================ views

    /// @inheritdoc ITokenBridge
    function received(uint64 batchNumber, uint32 fromDomain) external view returns (uint256) {
        return _received[batchNumber][fromDomain];
    }

    /// @inheritdoc ITokenBridge
    function remoteBridge(uint32 domain) external view returns (bytes32) {
        return _remoteBridges[domain];
    }
}
