// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {Pausable} from "@openzeppelin/contracts/utils/Pausable.sol";
import {ReentrancyGuard} from "@openzeppelin/contracts/utils/ReentrancyGuard.sol";
import {IERC20Metadata} from "@openzeppelin/contracts/token/ERC20/extensions/IERC20Metadata.sol";
import {ICollateralVault} from "./interfaces/ICollateralVault.sol";
import {IMailbox} from "./interfaces/IMailbox.sol";
import {ISettlementVault} from "./interfaces/ISettlementVault.sol";
import {ITokenBridge} from "./interfaces/ITokenBridge.sol";
import {Settlement} from "./libraries/Settlement.sol";

/**
 * @title CollateralVault
 * @notice Holds the collateral of one Omniclear chain and tracks each account's settled balance
 * per token. Deposits are open to anyone for allow-listed tokens; each one gets a vault-wide,
 * strictly increasing nonce that the sequencer uses to credit it exactly once.
 *
 * Settlement ({ISettlementVault}): the SettlementHub's batch messages, delivered by the local
 * Mailbox, move settled balances of the settlement token: debits, bridge-outs through the
 * TokenBridge, a check that the batch's bridge-ins have arrived, credits, then withdrawals.
 * Batches apply strictly in order and each nets to its bridge legs, so for the settlement token
 * holdings == {totalBalance} between batches (holdings exceed it only while a bridge-in waits).
 *
 * Roles: `DEFAULT_ADMIN_ROLE` manages the allow-list, the settlement configuration and roles;
 * `GUARDIAN_ROLE` pauses deposits (settlement keeps running while paused, so withdrawals and
 * bridge legs already committed on the hub are never stuck behind a pause).
 */
contract CollateralVault is ICollateralVault, ISettlementVault, AccessControl, Pausable, ReentrancyGuard {
    using SafeERC20 for IERC20;

    /// @notice Role allowed to {pause} and {unpause}.
    bytes32 public constant GUARDIAN_ROLE = keccak256("GUARDIAN_ROLE");

    mapping(address token => bool) private _allowedTokens;
    mapping(address account => mapping(address token => uint256)) private _balances;
    mapping(address token => uint256) private _totalBalances;
    uint64 private _lastDepositNonce;

    // settlement
    address private _mailbox;
    uint32 private _hubDomain;
    uint32 private _localDomain;
    uint64 private _lastSettledBatch;
    bytes32 private _settlementHub;
    address private _settlementToken;
    address private _tokenBridge;
    uint256 private _scale;
    mapping(bytes32 withdrawalId => bool) private _withdrawalPaid;

    /**
     * @param admin Receives `DEFAULT_ADMIN_ROLE`.
     * @param guardian Receives `GUARDIAN_ROLE`.
     */
    constructor(address admin, address guardian) {
        if (admin == address(0) || guardian == address(0)) revert ZeroAddress();
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        _grantRole(GUARDIAN_ROLE, guardian);
    }

    // ================================================================ depositor

    /// @inheritdoc ICollateralVault
    function deposit(address token, uint256 amount) external nonReentrant whenNotPaused returns (uint64 depositNonce) {
        // CHECKS
        if (!_allowedTokens[token]) revert TokenNotAllowed(token);
        if (amount == 0) revert ZeroAmount();

        // INTERACTIONS (pull first: the credit is what actually arrived; nonReentrant guards it)
        IERC20 asset = IERC20(token);
        uint256 holdingsBefore = asset.balanceOf(address(this));
        asset.safeTransferFrom(_msgSender(), address(this), amount);
        uint256 holdingsAfter = asset.balanceOf(address(this));
        if (holdingsAfter <= holdingsBefore) revert ZeroAmount();
        uint256 received = holdingsAfter - holdingsBefore;
        // Never credit more than was asked for (in the vault's favour): a token with hooks could
        // otherwise attribute someone else's transfer to this deposit.
        uint256 credited = received < amount ? received : amount;

        // EFFECTS
        depositNonce = ++_lastDepositNonce;
        _credit(_msgSender(), token, credited);
        emit Deposit(_msgSender(), token, credited, depositNonce);
    }

    // ================================================================ admin / guardian

    /// @inheritdoc ICollateralVault
    function setTokenAllowed(address token, bool allowed) external onlyRole(DEFAULT_ADMIN_ROLE) {
        if (token == address(0)) revert ZeroAddress();
        _allowedTokens[token] = allowed;
        emit TokenAllowed(token, allowed);
    }

    /// @inheritdoc ICollateralVault
    function pause() external onlyRole(GUARDIAN_ROLE) {
        _pause();
    }

    /// @inheritdoc ICollateralVault
    function unpause() external onlyRole(GUARDIAN_ROLE) {
        _unpause();
    }

    /// @inheritdoc ISettlementVault
    function setSettlement(address mailbox, uint32 hubDomain_, bytes32 settlementHub_, address token, address tokenBridge_)
        external
        onlyRole(DEFAULT_ADMIN_ROLE)
    {
        if (mailbox == address(0) || settlementHub_ == bytes32(0) || token == address(0) || tokenBridge_ == address(0)) {
            revert ZeroAddress();
        }
        if (_lastSettledBatch != 0 && token != _settlementToken) revert SettlementTokenLocked();
        uint256 scale = Settlement.scaleFor(IERC20Metadata(token).decimals());
        _mailbox = mailbox;
        _localDomain = IMailbox(mailbox).localDomain();
        _hubDomain = hubDomain_;
        _settlementHub = settlementHub_;
        _settlementToken = token;
        _tokenBridge = tokenBridge_;
        _scale = scale;
        emit SettlementConfigured(mailbox, hubDomain_, settlementHub_, token, tokenBridge_, scale);
    }

    // ================================================================ mailbox (settlement)

    /**
     * @notice Apply one batch's settlement for this chain (see {ISettlementVault} for the order).
     * @dev Local Mailbox only, from the SettlementHub on the hub domain. Any failure reverts the
     * whole batch, so the Mailbox keeps the message undelivered for a retry.
     */
    function handle(uint32 origin, bytes32 sender, bytes calldata body) external nonReentrant {
        // CHECKS
        if (_scale == 0) revert SettlementNotConfigured();
        if (msg.sender != _mailbox) revert NotMailbox(msg.sender);
        if (origin != _hubDomain || sender != _settlementHub) revert UnauthorizedSender(origin, sender);
        Settlement.ChainSettlement memory s = abi.decode(body, (Settlement.ChainSettlement));
        if (s.domain != _localDomain) revert WrongSettlementDomain(_localDomain, s.domain);
        uint64 batchNumber = s.batchNumber;
        if (batchNumber != _lastSettledBatch + 1) revert BatchOutOfOrder(_lastSettledBatch + 1, batchNumber);
        Settlement.checkBalanced(s);

        // EFFECTS then INTERACTIONS, step by step in the order that keeps the vault solvent
        _lastSettledBatch = batchNumber;
        address token = _settlementToken;
        uint256 scale = _scale;
        Totals memory t;
        // 1. debits
        for (uint256 i; i < s.deltas.length; ++i) {
            int256 amount = s.deltas[i].amount;
            if (amount < 0) {
                // Checked negation: type(int256).min reverts (Panic 0x11) rather than wrapping.
                uint256 native = uint256(-amount) * scale;
                _debit(s.deltas[i].account, token, native);
                t.debited += native;
            }
        }
        // 2. bridge-outs: hand the tokens to the bridge, which burns them and dispatches the mint
        address bridge = _tokenBridge;
        for (uint256 i; i < s.bridgeOut.length; ++i) {
            uint256 native = s.bridgeOut[i].amount * scale;
            IERC20(token).safeTransfer(bridge, native);
            ITokenBridge(bridge).bridgeOut(s.bridgeOut[i].domain, s.bridgeOut[i].amount, batchNumber);
            t.bridgedOut += native;
        }
        // 3. every bridge-in expected for this batch has been minted here
        for (uint256 i; i < s.bridgeIn.length; ++i) {
            uint32 from = s.bridgeIn[i].domain;
            uint256 expected = s.bridgeIn[i].amount;
            uint256 got = ITokenBridge(bridge).received(batchNumber, from);
            if (got < expected) revert BridgeInPending(batchNumber, from, expected, got);
            if (got > expected) revert BridgeInExceeded(batchNumber, from, expected, got);
            t.bridgedIn += expected * scale;
        }
        // 4. credits
        for (uint256 i; i < s.deltas.length; ++i) {
            int256 amount = s.deltas[i].amount;
            if (amount > 0) {
                uint256 native = uint256(amount) * scale;
                _credit(s.deltas[i].account, token, native);
                t.credited += native;
            }
        }
        // 5. withdrawals
        for (uint256 i; i < s.withdrawals.length; ++i) {
            Settlement.Withdrawal memory w = s.withdrawals[i];
            if (_withdrawalPaid[w.withdrawalId]) revert WithdrawalAlreadyPaid(w.withdrawalId);
            uint256 native = w.amount * scale;
            _withdrawalPaid[w.withdrawalId] = true;
            _debit(w.account, token, native);
            IERC20(token).safeTransfer(w.recipient, native);
            emit WithdrawalPaid(w.withdrawalId, w.account, w.recipient, native);
            t.withdrawn += native;
        }
        emit BatchApplied(batchNumber, t.debited, t.credited, t.bridgedOut, t.bridgedIn, t.withdrawn);
    }

    // ================================================================ views

    /// @inheritdoc ICollateralVault
    function isTokenAllowed(address token) external view returns (bool) {
        return _allowedTokens[token];
    }

    /// @inheritdoc ICollateralVault
    function balanceOf(address account, address token) external view returns (uint256) {
        return _balances[account][token];
    }

    /// @inheritdoc ICollateralVault
    function totalBalance(address token) external view returns (uint256) {
        return _totalBalances[token];
    }

    /// @inheritdoc ICollateralVault
    function lastDepositNonce() external view returns (uint64) {
        return _lastDepositNonce;
    }

    /// @inheritdoc ISettlementVault
    function lastSettledBatch() external view returns (uint64) {
        return _lastSettledBatch;
    }

    /// @inheritdoc ISettlementVault
    function withdrawalPaid(bytes32 withdrawalId) external view returns (bool) {
        return _withdrawalPaid[withdrawalId];
    }

    /// @inheritdoc ISettlementVault
    function settlementMailbox() external view returns (address) {
        return _mailbox;
    }

    /// @inheritdoc ISettlementVault
    function hubDomain() external view returns (uint32) {
        return _hubDomain;
    }

    /// @inheritdoc ISettlementVault
    function settlementHub() external view returns (bytes32) {
        return _settlementHub;
    }

    /// @inheritdoc ISettlementVault
    function settlementToken() external view returns (address) {
        return _settlementToken;
    }

    /// @inheritdoc ISettlementVault
    function tokenBridge() external view returns (address) {
        return _tokenBridge;
    }

    /// @inheritdoc ISettlementVault
    function localDomain() external view returns (uint32) {
        return _localDomain;
    }

    /// @inheritdoc ISettlementVault
    function settlementScale() external view returns (uint256) {
        return _scale;
    }

    // ================================================================ internal

    /// @dev Native-unit totals of one applied batch, for {BatchApplied}.
    struct Totals {
        uint256 debited;
        uint256 credited;
        uint256 bridgedOut;
        uint256 bridgedIn;
        uint256 withdrawn;
    }

    /**
     * @dev Add `amount` to the settled balance of `account` in `token` and to the token total.
     * Shared by deposits and settlement credits.
     */
    function _credit(address account, address token, uint256 amount) internal {
        _totalBalances[token] += amount;
        // Cannot overflow: an account's balance is one term of the total, which the checked
        // addition above just proved fits in a uint256.
        unchecked {
            _balances[account][token] += amount;
        }
    }

    /// @dev Subtract `amount` from `account`'s balance in `token` and from the token total.
    function _debit(address account, address token, uint256 amount) internal {
        uint256 have = _balances[account][token];
        if (have < amount) revert InsufficientBalance(account, have, amount);
        // Cannot underflow: checked just above, and the total is at least any one balance.
        unchecked {
            _balances[account][token] = have - amount;
            _totalBalances[token] -= amount;
        }
    }
}
