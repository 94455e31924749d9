// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {IMessageRecipient} from "./IMessageRecipient.sol";

/**
 * @title ITokenBridge
 * @notice CCTP-style burn/mint bridge of the collateral token between Omniclear vaults. One per
 * chain; holds `MINTER_ROLE` on the local CollateralToken. {bridgeOut} (local vault only) burns
 * the native amount it was sent and dispatches a mint message to the remote bridge; {handle}
 * (from a known remote bridge, through the local Mailbox) mints the native amount to the
 * local vault and records it per (batch, source domain) for the vault's bridge-in check.
 * Message body: `abi.encode(uint64 batchNumber, uint256 canonicalAmount)`.
 */
interface ITokenBridge is IMessageRecipient {
    // ---------------------------------------------------------------- errors

    /// @notice A required address was zero.
    error ZeroAddress();

    /// @notice `caller` is not the local vault.
    error NotVault(address caller);

    /// @notice `caller` is not the local Mailbox.
    error NotMailbox(address caller);

    /// @notice No remote bridge is registered for `domain`.
    error UnknownRemote(uint32 domain);

    /// @notice The message came from `(origin, sender)`, which is not the registered remote bridge.
    error UnauthorizedSender(uint32 origin, bytes32 sender);

    /// @notice A zero amount was bridged.
    error ZeroAmount();

    // ---------------------------------------------------------------- events

    /// @notice `canonicalAmount` (`nativeAmount` burned here) left for `toDomain` for `batchNumber`.
    event BridgedOut(
        uint32 indexed toDomain, uint64 indexed batchNumber, uint256 canonicalAmount, uint256 nativeAmount, bytes32 messageId
    );

    /// @notice `canonicalAmount` (`nativeAmount` minted to the vault) arrived from `fromDomain`.
    event BridgedIn(uint32 indexed fromDomain, uint64 indexed batchNumber, uint256 canonicalAmount, uint256 nativeAmount);

    /// @notice The bridge on `domain` was registered (`bridge == 0`: removed).
    event RemoteBridgeSet(uint32 indexed domain, bytes32 bridge);

    /// @notice The local vault was set.
    event VaultSet(address vault);

    // ---------------------------------------------------------------- vault

    /**
     * @notice Burn `canonicalAmount` (converted to native units) that the vault has just
     * transferred here and dispatch a mint message to the bridge on `toDomain`. Vault only.
     * @return messageId The id of the dispatched message.
     */
    function bridgeOut(uint32 toDomain, uint256 canonicalAmount, uint64 batchNumber)
        external
        returns (bytes32 messageId);

    // ---------------------------------------------------------------- owner

    /// @notice Register the bridge on `domain` (left-padded address; zero removes). Owner only.
    function setRemoteBridge(uint32 domain, bytes32 bridge) external;

    /// @notice Set the local vault (the only caller of {bridgeOut} and the mint recipient). Owner only.
    function setVault(address vault) external;

    // ---------------------------------------------------------------- views

    /// @notice Canonical amount received from `fromDomain` for `batchNumber` so far.
    function received(uint64 batchNumber, uint32 fromDomain) external view returns (uint256);

    function remoteBridge(uint32 domain) external view returns (bytes32);

    function vault() external view returns (address);

    function token() external view returns (address);

    function mailbox() external view returns (address);

    /// @notice Native units per canonical unit (`10**(decimals - 6)`).
    function scale() external view returns (uint256);
}
