// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

/**
 * @title ICollateralVault
 * @notice Per-chain collateral vault of Omniclear: traders deposit allow-listed tokens and the
 * vault tracks each account's settled balance per token. Off-chain watchers credit the unified
 * account from the {Deposit} event, keyed by the vault-wide `depositNonce`.
 *
 * Invariants (each one is a forge invariant test):
 * - for every token, `token.balanceOf(vault) >= totalBalance(token)` (per-chain solvency), and
 *   `totalBalance(token)` equals the sum of `balanceOf(account, token)` over all accounts;
 * - deposit nonces start at 1, are unique and strictly increasing across all tokens and accounts,
 *   and `lastDepositNonce()` equals the number of successful deposits.
 *
 * Settlement (batch deltas and withdrawals applied by a settler contract) is a later addition.
 */
interface ICollateralVault {
    // ---------------------------------------------------------------- errors

    /// @notice A required address argument (admin, guardian, token) was the zero address.
    error ZeroAddress();

    /// @notice `token` is not on the vault's allow-list.
    error TokenNotAllowed(address token);

    /// @notice The requested amount, or the amount the vault actually received, was zero.
    error ZeroAmount();

    // ---------------------------------------------------------------- events

    /// @notice `token` was added to (`allowed == true`) or removed from the allow-list.
    event TokenAllowed(address indexed token, bool allowed);

    /**
     * @notice `account` deposited `amount` of `token`; `amount` is what the vault actually
     * received and credited (never more than requested). `depositNonce` is unique per vault.
     */
    event Deposit(address indexed account, address indexed token, uint256 amount, uint64 indexed depositNonce);

    // ---------------------------------------------------------------- depositor

    /**
     * @notice Pull `amount` of `token` from the caller and credit the caller's settled balance.
     * @dev The caller must have approved the vault for `amount`. The credit is the vault's
     * balance delta, capped at `amount`, so fee-on-transfer tokens cannot inflate it.
     * @param token An allow-listed ERC-20 token.
     * @param amount The amount to pull, in token units; must be non-zero.
     * @return depositNonce The vault-wide nonce of this deposit (first deposit is 1).
     */
    function deposit(address token, uint256 amount) external returns (uint64 depositNonce);

    // ---------------------------------------------------------------- admin / guardian

    /**
     * @notice Add `token` to, or remove it from, the deposit allow-list. Admin only.
     * @dev Removing a token stops new deposits only; existing balances stay.
     */
    function setTokenAllowed(address token, bool allowed) external;

    /// @notice Stop deposits. Guardian only.
    function pause() external;

    /// @notice Resume deposits. Guardian only.
    function unpause() external;

    // ---------------------------------------------------------------- views

    /// @notice Whether `token` may be deposited.
    function isTokenAllowed(address token) external view returns (bool);

    /// @notice Settled balance of `account` in `token`, in token units.
    function balanceOf(address account, address token) external view returns (uint256);

    /// @notice Sum of all accounts' settled balances in `token`, in token units.
    function totalBalance(address token) external view returns (uint256);

    /// @notice Nonce of the latest deposit; 0 before the first deposit.
    function lastDepositNonce() external view returns (uint64);
}
