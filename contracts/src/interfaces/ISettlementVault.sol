// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {IMessageRecipient} from "./IMessageRecipient.sol";

/**
 * @title ISettlementVault
 * @notice The settlement side of {CollateralVault}: it applies the hub's batch messages.
 *
 * {handle} accepts only the configured Mailbox as caller and only messages from the
 * SettlementHub on the hub domain; the body is `abi.encode(Settlement.ChainSettlement)` for
 * this chain, with amounts in the canonical unit (1e-6 USD) that the vault multiplies by
 * `settlementScale()` (exact). Batches apply strictly in order ({BatchOutOfOrder}), and in this
 * order within a batch:
 * 1. debits (negative deltas; {InsufficientBalance});
 * 2. bridge-outs: tokens go to the TokenBridge, which burns them and dispatches a mint message;
 * 3. every expected bridge-in has arrived at the TokenBridge for this batch ({BridgeInPending}:
 *    the relayer retries later);
 * 4. credits (positive deltas);
 * 5. withdrawals (debit, mark paid, transfer; a withdrawal id is paid at most once).
 * `Σ deltas == Σ bridgeIn − Σ bridgeOut` is checked first (`Settlement.DeltasDoNotBalance`), so
 * holdings move exactly as the sum of settled balances: `token.balanceOf(vault) ==
 * totalBalance(token)` between batches (it exceeds it while a bridge-in waits to be applied).
 * Events carry native token units.
 */
interface ISettlementVault is IMessageRecipient {
    // ---------------------------------------------------------------- errors

    error NotMailbox(address caller);
    error UnauthorizedSender(uint32 origin, bytes32 sender);
    error SettlementNotConfigured();
    /// @notice The settlement token cannot change once a batch has been applied.
    error SettlementTokenLocked();
    error WrongSettlementDomain(uint32 expected, uint32 got);
    error BatchOutOfOrder(uint64 expected, uint64 got);
    /// @notice `account` holds `have` (native units) but the batch debits `need`.
    error InsufficientBalance(address account, uint256 have, uint256 need);
    /// @notice The bridge-in from `fromDomain` for `batchNumber` has `received` of `expected`
    /// (canonical units) so far: retry after the mint message is delivered.
    error BridgeInPending(uint64 batchNumber, uint32 fromDomain, uint256 expected, uint256 received);
    /// @notice More arrived from `fromDomain` for `batchNumber` than the batch expects.
    error BridgeInExceeded(uint64 batchNumber, uint32 fromDomain, uint256 expected, uint256 received);
    error WithdrawalAlreadyPaid(bytes32 withdrawalId);

    // ---------------------------------------------------------------- events

    event SettlementConfigured(
        address mailbox, uint32 hubDomain, bytes32 settlementHub, address token, address tokenBridge, uint256 scale
    );

    /// @notice Batch `batchNumber` was applied; totals in native token units.
    event BatchApplied(
        uint64 indexed batchNumber,
        uint256 debited,
        uint256 credited,
        uint256 bridgedOut,
        uint256 bridgedIn,
        uint256 withdrawn
    );

    /// @notice Withdrawal `withdrawalId` paid `amount` (native units) of `account`'s balance to `recipient`.
    event WithdrawalPaid(bytes32 indexed withdrawalId, address indexed account, address indexed recipient, uint256 amount);

    // ---------------------------------------------------------------- admin

    /**
     * @notice Configure settlement. Admin only. The token must have at least 6 decimals
     * (`Settlement.UnsupportedDecimals`) and cannot change after the first applied batch.
     * @param mailbox The local Mailbox (the only caller of {handle}).
     * @param hubDomain Domain of the hub chain.
     * @param settlementHub The SettlementHub on the hub chain, left-padded.
     * @param token The settlement (collateral) token of this chain.
     * @param tokenBridge The local TokenBridge.
     */
    function setSettlement(address mailbox, uint32 hubDomain, bytes32 settlementHub, address token, address tokenBridge)
        external;

    // ---------------------------------------------------------------- views

    /// @notice Number of the last batch applied on this chain (0 before the first).
    function lastSettledBatch() external view returns (uint64);

    /// @notice Whether withdrawal `withdrawalId` was paid.
    function withdrawalPaid(bytes32 withdrawalId) external view returns (bool);

    function settlementMailbox() external view returns (address);
    function hubDomain() external view returns (uint32);
    function settlementHub() external view returns (bytes32);
    function settlementToken() external view returns (address);
    function tokenBridge() external view returns (address);
    function localDomain() external view returns (uint32);
    /// @notice Native units per canonical unit (`10**(decimals - 6)`); 0 before configuration.
    function settlementScale() external view returns (uint256);
}
