// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {Settlement} from "../libraries/Settlement.sol";

/**
 * @title ISettlementHub
 * @notice Hub-chain contract that takes the sequencer's signed batches, checks their order and
 * balance, stores their hashes and dispatches one settlement message per chain through the
 * hub's Mailbox to that chain's vault.
 *
 * Sequencer signature: EIP-712 over `Batch(uint64 batchNumber,bytes32 prevBatchHash,bytes32
 * stateRoot,bytes32 journalHash,bytes32 settlementsHash)` in the domain `{name: "Omniclear",
 * version: "1", chainId: <hub chain id>, verifyingContract: <SettlementHub>}` (the same domain
 * as the traders' orders and withdrawals, `aggregator/eip712.py`). 65-byte `r || s || v`.
 * Anyone may submit a batch the sequencer signed.
 *
 * Batch rules (each one reverts with the named error):
 * - `batchNumber == lastBatchNumber + 1` ({BatchOutOfOrder}), `prevBatchHash == lastBatchHash`
 *   ({BadPrevHash}; zero before batch 1);
 * - `settlementsHash == keccak256(abi.encode(settlements))` ({SettlementsHashMismatch});
 * - the signer is the registered sequencer ({BadSequencerSignature});
 * - settlements are strictly ascending by domain and name exactly the registered domains, each
 *   once ({DomainSetMismatch}, {UnknownDomain}); each carries the header's batch number
 *   ({BatchNumberMismatch}); every chain gets a message every batch, because each vault applies
 *   batches strictly in order;
 * - Σ deltas over all chains == 0 and Σ bridgeOut == Σ bridgeIn ({Unbalanced}); per chain
 *   Σ deltas == Σ bridgeIn − Σ bridgeOut (`Settlement.DeltasDoNotBalance`); every bridge-out
 *   `X→Y: a` is matched by Y's bridge-in `from X: a` and vice versa ({BridgeMismatch}); no chain
 *   both sends and receives in one batch ({BridgeCycle}: a cycle could deadlock two vaults
 *   each waiting for the other's bridge-in);
 * - withdrawals have a non-zero id, account, recipient and amount ({InvalidWithdrawal}).
 */
interface ISettlementHub {
    // ---------------------------------------------------------------- errors

    error ZeroAddress();
    error BatchOutOfOrder(uint64 expected, uint64 got);
    error BadPrevHash(bytes32 expected, bytes32 got);
    error SettlementsHashMismatch(bytes32 expected, bytes32 got);
    /// @notice The signature recovered `recovered` (zero if malformed), not the sequencer.
    error BadSequencerSignature(address recovered);
    /// @notice The batch names `got` chains in ascending order; the hub expects its `expected` registered ones.
    error DomainSetMismatch(uint256 expected, uint256 got);
    error UnknownDomain(uint32 domain);
    error BatchNumberMismatch(uint32 domain, uint64 got);
    /// @notice Σ deltas over all chains (or Σ bridgeOut − Σ bridgeIn) is `imbalance`, not zero.
    error Unbalanced(int256 imbalance);
    error BridgeMismatch(uint32 fromDomain, uint32 toDomain);
    error BridgeCycle(uint32 domain);
    error InvalidWithdrawal(uint32 domain, bytes32 withdrawalId);

    // ---------------------------------------------------------------- events

    /// @notice Batch `batchNumber` (hash `batchHash`, committing to `stateRoot`) was accepted
    /// and its settlement messages dispatched.
    event BatchCommitted(uint64 indexed batchNumber, bytes32 indexed batchHash, bytes32 stateRoot);

    /// @notice The settlement message for `domain` of `batchNumber` was dispatched as `messageId`.
    event SettlementDispatched(uint64 indexed batchNumber, uint32 indexed domain, bytes32 messageId);

    event SequencerSet(address sequencer);

    /// @notice The vault of `domain` was registered (`vault == 0`: removed).
    event VaultSet(uint32 indexed domain, address vault);

    // ---------------------------------------------------------------- sequencer / anyone

    /**
     * @notice Check, record and dispatch a batch signed by the sequencer.
     * @param header The signed header.
     * @param settlements One entry per registered chain, ascending by domain.
     * @param sequencerSignature 65-byte signature of the header's EIP-712 digest.
     */
    function submitBatch(
        Settlement.BatchHeader calldata header,
        Settlement.ChainSettlement[] calldata settlements,
        bytes calldata sequencerSignature
    ) external;

    // ---------------------------------------------------------------- owner

    function setSequencer(address sequencer) external;

    /// @notice Register (or with `vault == 0` remove) the vault of `domain`. Owner only.
    function setVault(uint32 domain, address vault) external;

    // ---------------------------------------------------------------- views

    function mailbox() external view returns (address);
    function sequencer() external view returns (address);
    function vaultOf(uint32 domain) external view returns (address);
    /// @notice Registered domains, ascending.
    function domains() external view returns (uint32[] memory);
    function lastBatchNumber() external view returns (uint64);
    function lastBatchHash() external view returns (bytes32);
    function batchHash(uint64 batchNumber) external view returns (bytes32);
    /// @notice The EIP-712 struct hash of `header` (what `prevBatchHash` chains).
    function hashBatch(Settlement.BatchHeader calldata header) external pure returns (bytes32);
    /// @notice The EIP-712 digest the sequencer signs.
    function batchDigest(Settlement.BatchHeader calldata header) external view returns (bytes32);
    function hashSettlements(Settlement.ChainSettlement[] calldata settlements) external pure returns (bytes32);
}
