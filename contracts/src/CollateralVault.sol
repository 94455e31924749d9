// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {Pausable} from "@openzeppelin/contracts/utils/Pausable.sol";
import {ReentrancyGuard} from "@openzeppelin/contracts/utils/ReentrancyGuard.sol";
import {ICollateralVault} from "./interfaces/ICollateralVault.sol";

/**
 * @title CollateralVault
 * @notice Holds the collateral of one Omniclear chain and tracks each account's settled balance
 * per token. Deposits are open to anyone for allow-listed tokens; each one gets a vault-wide,
 * strictly increasing nonce that the sequencer uses to credit it exactly once.
 *
 * Roles: `DEFAULT_ADMIN_ROLE` manages the allow-list and roles; `GUARDIAN_ROLE` pauses deposits.
 * A settler role (batch deltas, withdrawals) is added by a later issue through {_credit} and a
 * matching debit; until then balances only grow, so holdings equal {totalBalance} for tokens
 * without transfer hooks.
 */
contract CollateralVault is ICollateralVault, AccessControl, Pausable, ReentrancyGuard {
    using SafeERC20 for IERC20;

    /// @notice Role allowed to {pause} and {unpause}.
    bytes32 public constant GUARDIAN_ROLE = keccak256("GUARDIAN_ROLE");

    mapping(address token => bool) private _allowedTokens;
    mapping(address account => mapping(address token => uint256)) private _balances;
    mapping(address token => uint256) private _totalBalances;
    uint64 private _lastDepositNonce;

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

    // ================================================================ internal

    /**
     * @dev Add `amount` to the settled balance of `account` in `token` and to the token total.
     * Shared by deposits now and by settlement credits later.
     */
    function _credit(address account, address token, uint256 amount) internal {
        _totalBalances[token] += amount;
        // Cannot overflow: an account's balance is one term of the total, which the checked
        // addition above just proved fits in a uint256.
        unchecked {
            _balances[account][token] += amount;
        }
    }
}
