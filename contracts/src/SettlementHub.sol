// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {IMailbox} from "./interfaces/IMailbox.sol";
import {ISettlementHub} from "./interfaces/ISettlementHub.sol";
import {Message} from "./libraries/Message.sol";
import {Settlement} from "./libraries/Settlement.sol";

/**
 * @title SettlementHub
 * @notice Commits the sequencer's batches on the hub chain and dispatches one settlement message
 * per chain to that chain's vault through the hub's Mailbox. See {ISettlementHub} for the
 * signing digest and every batch rule.
 *
 * Invariants: batch numbers are 1, 2, 3, ... without gaps; each stored batch hash chains to the
 * previous one; every committed batch nets to zero across chains and per chain (with its bridge
 * legs); every registered chain receives exactly one message per committed batch.
 */
contract SettlementHub is ISettlementHub, Ownable, EIP712 {
    /// @inheritdoc ISettlementHub
    address public immutable mailbox;
    /// @inheritdoc ISettlementHub
    address public sequencer;

    uint64 private _lastBatchNumber;
    bytes32 private _lastBatchHash;
    mapping(uint64 batchNumber => bytes32) private _batchHashes;

    uint32[] private _domains; // ascending
    mapping(uint32 domain => address) private _vaults;

    /**
     * @param owner_ Sets the sequencer and the vault registry.
     * @param mailbox_ The hub chain's Mailbox.
     * @param sequencer_ The sequencer's signing address.
     */
    constructor(address owner_, address mailbox_, address sequencer_) Ownable(owner_) EIP712("Omniclear", "1") {
        if (mailbox_ == address(0) || sequencer_ == address(0)) revert ZeroAddress();
        mailbox = mailbox_;
        sequencer = sequencer_;
        emit SequencerSet(sequencer_);
    }

    // ================================================================ sequencer / anyone

    /// @inheritdoc ISettlementHub
    function submitBatch(
        Settlement.BatchHeader calldata header,
        Settlement.ChainSettlement[] calldata settlements,
        bytes calldata sequencerSignature
    ) external {
        // CHECKS: order and chaining
        uint64 number = header.batchNumber;
        if (number != _lastBatchNumber + 1) revert BatchOutOfOrder(_lastBatchNumber + 1, number);
        if (header.prevBatchHash != _lastBatchHash) revert BadPrevHash(_lastBatchHash, header.prevBatchHash);
        bytes32 settlementsHash = Settlement.hashSettlements(settlements);
        if (header.settlementsHash != settlementsHash) {
            revert SettlementsHashMismatch(settlementsHash, header.settlementsHash);
        }
        // CHECKS: signature
        bytes32 batchHash_ = Settlement.hashBatch(header);
        (address signer, ECDSA.RecoverError err,) = ECDSA.tryRecover(_hashTypedDataV4(batchHash_), sequencerSignature);
        if (err != ECDSA.RecoverError.NoError || signer != sequencer) revert BadSequencerSignature(signer);
        // CHECKS: coverage and balance
        _checkSettlements(number, settlements);

        // EFFECTS
        _lastBatchNumber = number;
        _lastBatchHash = batchHash_;
        _batchHashes[number] = batchHash_;
        emit BatchCommitted(number, batchHash_, header.stateRoot);

        // INTERACTIONS: the Mailbox only numbers and emits (trusted, no callback)
        for (uint256 i; i < settlements.length; ++i) {
            uint32 domain = settlements[i].domain;
            bytes32 id = IMailbox(mailbox).dispatch(
                domain, Message.addressToBytes32(_vaults[domain]), abi.encode(settlements[i])
            );
            emit SettlementDispatched(number, domain, id);
        }
    }

    // ================================================================ owner

    /// @inheritdoc ISettlementHub
    function setSequencer(address sequencer_) external onlyOwner {
        if (sequencer_ == address(0)) revert ZeroAddress();
        sequencer = sequencer_;
        emit SequencerSet(sequencer_);
    }

    /// @inheritdoc ISettlementHub
    function setVault(uint32 domain, address vault) external onlyOwner {
        if (domain == 0) revert UnknownDomain(domain);
        bool known = _vaults[domain] != address(0);
        _vaults[domain] = vault;
        if (vault != address(0) && !known) {
            // insert keeping `_domains` ascending
            _domains.push(domain);
            uint256 i = _domains.length - 1;
            while (i > 0 && _domains[i - 1] > domain) {
                _domains[i] = _domains[i - 1];
                --i;
            }
            _domains[i] = domain;
        } else if (vault == address(0) && known) {
            uint256 n = _domains.length;
            uint256 i;
            while (_domains[i] != domain) ++i;
            for (; i + 1 < n; ++i) {
                _domains[i] = _domains[i + 1];
            }
            _domains.pop();
        }
        emit VaultSet(domain, vault);
    }

    // ================================================================ views

    /// @inheritdoc ISettlementHub
    function vaultOf(uint32 domain) external view returns (address) {
        return _vaults[domain];
    }

    /// @inheritdoc ISettlementHub
    function domains() external view returns (uint32[] memory) {
        return _domains;
    }

    /// @inheritdoc ISettlementHub
    function lastBatchNumber() external view returns (uint64) {
        return _lastBatchNumber;
    }

    /// @inheritdoc ISettlementHub
    function lastBatchHash() external view returns (bytes32) {
        return _lastBatchHash;
    }

    /// @inheritdoc ISettlementHub
    function batchHash(uint64 batchNumber) external view returns (bytes32) {
        return _batchHashes[batchNumber];
    }

    /// @inheritdoc ISettlementHub
    function hashBatch(Settlement.BatchHeader calldata header) external pure returns (bytes32) {
        return Settlement.hashBatch(header);
    }

    /// @inheritdoc ISettlementHub
    function batchDigest(Settlement.BatchHeader calldata header) external view returns (bytes32) {
        return _hashTypedDataV4(Settlement.hashBatch(header));
    }

    /// @inheritdoc ISettlementHub
    function hashSettlements(Settlement.ChainSettlement[] calldata settlements) external pure returns (bytes32) {
        return Settlement.hashSettlements(settlements);
    }

    // ================================================================ internal

    /// @dev Coverage (registered domains, ascending, once each), batch numbers, withdrawals,
    /// per-chain and global balance, one-to-one bridge legs and no chain both sending and receiving.
    function _checkSettlements(uint64 number, Settlement.ChainSettlement[] calldata settlements) private view {
        uint32[] memory registered = _domains;
        if (settlements.length != registered.length) {
            revert DomainSetMismatch(registered.length, settlements.length);
        }
        int256 deltaTotal;
        uint256 outTotal;
        uint256 inTotal;
        for (uint256 i; i < settlements.length; ++i) {
            Settlement.ChainSettlement calldata s = settlements[i];
            if (s.domain != registered[i]) revert UnknownDomain(s.domain);
            if (s.batchNumber != number) revert BatchNumberMismatch(s.domain, s.batchNumber);
            Settlement.Withdrawal[] calldata ws = s.withdrawals;
            for (uint256 j; j < ws.length; ++j) {
                if (ws[j].withdrawalId == 0 || ws[j].account == address(0) || ws[j].recipient == address(0) || ws[j].amount == 0) {
                    revert InvalidWithdrawal(s.domain, ws[j].withdrawalId);
                }
            }
            (int256 deltaSum, uint256 bridgedIn, uint256 bridgedOut) = Settlement.checkBalancedCalldata(s);
            if (bridgedIn != 0 && bridgedOut != 0) revert BridgeCycle(s.domain);
            deltaTotal += deltaSum;
            inTotal += bridgedIn;
            outTotal += bridgedOut;
        }
        // Implied by the per-chain rule plus one-to-one legs; checked on its own so the error
        // names the imbalance the way the sequencer's netting reports it.
        if (deltaTotal != 0) revert Unbalanced(deltaTotal);
        // Both totals fit in int256: each chain's per-chain check converted them with SafeCast.
        if (outTotal != inTotal) revert Unbalanced(int256(outTotal) - int256(inTotal));
        _checkLegsMatch(settlements);
    }

    /// @dev Every bridge-out X→Y:a has Y's bridge-in from X:a; with equal leg counts the map is
    /// one-to-one (legs per chain are unique by domain).
    function _checkLegsMatch(Settlement.ChainSettlement[] calldata settlements) private pure {
        uint256 outs;
        uint256 ins;
        for (uint256 i; i < settlements.length; ++i) {
            Settlement.ChainSettlement calldata s = settlements[i];
            ins += s.bridgeIn.length;
            for (uint256 j; j < s.bridgeOut.length; ++j) {
                uint32 to = s.bridgeOut[j].domain;
                if (!_hasLeg(settlements, to, s.domain, s.bridgeOut[j].amount)) revert BridgeMismatch(s.domain, to);
                ++outs;
            }
        }
        if (outs != ins) revert BridgeMismatch(0, 0);
    }

    function _hasLeg(Settlement.ChainSettlement[] calldata settlements, uint32 to, uint32 from, uint256 amount)
        private
        pure
        returns (bool)
    {
        for (uint256 i; i < settlements.length; ++i) {
            if (settlements[i].domain != to) continue;
            Settlement.BridgeTransfer[] calldata legs = settlements[i].bridgeIn;
            for (uint256 j; j < legs.length; ++j) {
                if (legs[j].domain == from) return legs[j].amount == amount;
            }
            return false;
        }
        return false;
    }
}
