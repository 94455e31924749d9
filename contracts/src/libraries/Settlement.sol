// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {SafeCast} from "@openzeppelin/contracts/utils/math/SafeCast.sol";

/**
 * @title Settlement
 * @notice Types and pure helpers of Omniclear's batch settlement, shared by the
 * {SettlementHub} (hub chain) and every {CollateralVault} (each chain).
 *
 * Units: every amount in these structs is in the CANONICAL unit, 1e-6 USD (the ledger's
 * internal unit, {CANONICAL_DECIMALS}). A vault or token bridge converts to its token's native
 * unit by an exact multiplication with `10**(decimals - 6)` ({scaleFor}); tokens with fewer
 * than 6 decimals are refused when configured, so no conversion ever rounds.
 *
 * Encodings (pinned by `test/vectors/settlement_messages.json` and `bridges/messages.py`):
 * - a settlement message body is `abi.encode(ChainSettlement)`;
 * - `settlementsHash = keccak256(abi.encode(ChainSettlement[]))` (the array as one argument);
 * - `batchHash = hashBatch(header)`, the EIP-712 struct hash of {BATCH_TYPEHASH}; the first
 *   batch (number 1) has `prevBatchHash == 0`.
 *
 * Balance rules ("deltas must net to zero"), checked by the hub before dispatch and by each
 * vault again on arrival:
 * - per chain: `Σ deltas == Σ bridgeIn − Σ bridgeOut`, so the vault's token holdings move
 *   exactly as the sum of settled balances (withdrawals leave both equally);
 * - across the batch: `Σ deltas == 0` and `Σ bridgeOut == Σ bridgeIn`, each transfer matched
 *   one-to-one by the counterpart chain's entry.
 */
library Settlement {
    /// @notice Decimals of the canonical unit (1e-6 USD).
    uint8 internal constant CANONICAL_DECIMALS = 6;

    /// @notice EIP-712 type hash of the batch header the sequencer signs.
    bytes32 internal constant BATCH_TYPEHASH = keccak256(
        "Batch(uint64 batchNumber,bytes32 prevBatchHash,bytes32 stateRoot,bytes32 journalHash,bytes32 settlementsHash)"
    );

    /// @notice Net change of one account's settled balance on one chain (canonical units).
    struct AccountDelta {
        address account;
        int256 amount;
    }

    /// @notice A withdrawal the vault pays from `account`'s balance to `recipient`.
    struct Withdrawal {
        bytes32 withdrawalId;
        address account;
        address recipient;
        uint256 amount;
    }

    /// @notice One token-bridge leg: `domain` is the destination of a bridge-out and the
    /// source of a bridge-in.
    struct BridgeTransfer {
        uint32 domain;
        uint256 amount;
    }

    /// @notice Everything one batch changes on one chain: the body of one settlement message.
    /// `bridgeOut[i].domain` is the destination chain (`toDomain`), `bridgeIn[i].domain` the
    /// source chain (`fromDomain`); both lists are strictly ascending by domain.
    struct ChainSettlement {
        uint32 domain;
        uint64 batchNumber;
        AccountDelta[] deltas;
        Withdrawal[] withdrawals;
        BridgeTransfer[] bridgeOut;
        BridgeTransfer[] bridgeIn;
    }

    /// @notice The batch header the sequencer signs (EIP-712 `Batch`).
    struct BatchHeader {
        uint64 batchNumber;
        bytes32 prevBatchHash;
        bytes32 stateRoot;
        bytes32 journalHash;
        bytes32 settlementsHash;
    }

    /// @notice A token with fewer decimals than the canonical unit (conversion would round).
    error UnsupportedDecimals(uint8 decimals);

    /// @notice On chain `domain`, `Σ deltas` differs from `Σ bridgeIn − Σ bridgeOut`.
    error DeltasDoNotBalance(uint32 domain, int256 deltaSum, int256 bridgeNet);

    /// @notice The bridge legs of chain `domain` are not strictly ascending by domain, name
    /// the chain itself, or carry a zero amount.
    error InvalidBridgeTransfers(uint32 domain);

    /// @notice The EIP-712 struct hash of `header` (its `batchHash`).
    function hashBatch(BatchHeader calldata header) internal pure returns (bytes32) {
        return keccak256(
            abi.encode(
                BATCH_TYPEHASH,
                header.batchNumber,
                header.prevBatchHash,
                header.stateRoot,
                header.journalHash,
                header.settlementsHash
            )
        );
    }

    /// @notice `keccak256(abi.encode(settlements))`.
    function hashSettlements(ChainSettlement[] calldata settlements) internal pure returns (bytes32) {
        return keccak256(abi.encode(settlements));
    }

    /// @notice The native-unit multiplier of a token with `decimals` decimals.
    function scaleFor(uint8 decimals) internal pure returns (uint256) {
        if (decimals < CANONICAL_DECIMALS) revert UnsupportedDecimals(decimals);
        return 10 ** (decimals - CANONICAL_DECIMALS);
    }

    /**
     * @notice Check a chain's bridge legs and its balance rule; return `(Σ deltas, Σ bridgeIn,
     * Σ bridgeOut)` in canonical units. Memory version (the vault decodes the body to memory).
     * @dev Reverts {InvalidBridgeTransfers} or {DeltasDoNotBalance}; sums overflow-checked.
     */
    function checkBalanced(ChainSettlement memory s)
        internal
        pure
        returns (int256 deltaSum, uint256 bridgedIn, uint256 bridgedOut)
    {
        for (uint256 i; i < s.deltas.length; ++i) {
            deltaSum += s.deltas[i].amount;
        }
        bridgedIn = _sumLegs(s.domain, s.bridgeIn);
        bridgedOut = _sumLegs(s.domain, s.bridgeOut);
        _checkNet(s.domain, deltaSum, bridgedIn, bridgedOut);
    }

    /// @notice {checkBalanced} over calldata (the hub reads the batch straight from calldata).
    function checkBalancedCalldata(ChainSettlement calldata s)
        internal
        pure
        returns (int256 deltaSum, uint256 bridgedIn, uint256 bridgedOut)
    {
        AccountDelta[] calldata deltas = s.deltas;
        for (uint256 i; i < deltas.length; ++i) {
            deltaSum += deltas[i].amount;
        }
        bridgedIn = _sumLegsCalldata(s.domain, s.bridgeIn);
        bridgedOut = _sumLegsCalldata(s.domain, s.bridgeOut);
        _checkNet(s.domain, deltaSum, bridgedIn, bridgedOut);
    }

    function _checkNet(uint32 domain, int256 deltaSum, uint256 bridgedIn, uint256 bridgedOut) private pure {
        int256 bridgeNet = SafeCast.toInt256(bridgedIn) - SafeCast.toInt256(bridgedOut);
        if (deltaSum != bridgeNet) revert DeltasDoNotBalance(domain, deltaSum, bridgeNet);
    }

    /// @dev Σ amounts of strictly ascending, non-zero-domain, non-self, non-zero-amount legs.
    function _sumLegs(uint32 self, BridgeTransfer[] memory legs) private pure returns (uint256 sum) {
        uint32 prev;
        for (uint256 i; i < legs.length; ++i) {
            uint32 domain = legs[i].domain;
            uint256 amount = legs[i].amount;
            // domain 0 is never a chain, so `domain <= prev` also refuses it for the first leg.
            if (domain <= prev || domain == self || amount == 0) revert InvalidBridgeTransfers(self);
            prev = domain;
            sum += amount;
        }
    }

    function _sumLegsCalldata(uint32 self, BridgeTransfer[] calldata legs) private pure returns (uint256 sum) {
        uint32 prev;
        for (uint256 i; i < legs.length; ++i) {
            uint32 domain = legs[i].domain;
            uint256 amount = legs[i].amount;
            if (domain <= prev || domain == self || amount == 0) revert InvalidBridgeTransfers(self);
            prev = domain;
            sum += amount;
        }
    }
}
