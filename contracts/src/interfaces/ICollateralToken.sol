// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

/**
 * @title ICollateralToken
 * @notice Errors and the non-ERC-20 surface of Omniclear's collateral token: minted and burned
 * by the token bridge (`MINTER_ROLE`), with an optional capped faucet on devnets.
 */
interface ICollateralToken {
    /// @notice The faucet is switched off on this deployment.
    error FaucetDisabled();

    /// @notice A faucet request of `amount` exceeds the per-call `cap` (token units).
    error FaucetCapExceeded(uint256 amount, uint256 cap);

    /// @notice `decimals` is above the supported maximum (the faucet cap would overflow).
    error InvalidDecimals(uint8 decimals);

    /// @notice The admin address was zero.
    error ZeroAddress();

    /// @notice Mint `amount` to `to`. `MINTER_ROLE` only.
    function mint(address to, uint256 amount) external;

    /// @notice Burn `amount` of the caller's own tokens. `MINTER_ROLE` only.
    function burn(uint256 amount) external;

    /// @notice Mint up to {faucetCap} to `to`; anyone may call, only if the faucet is enabled.
    function faucet(address to, uint256 amount) external;

    /// @notice Whether {faucet} is enabled (fixed at deployment).
    function faucetEnabled() external view returns (bool);

    /// @notice Largest amount one {faucet} call may mint, in token units.
    function faucetCap() external view returns (uint256);
}
