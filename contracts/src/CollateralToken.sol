// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";
import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {ICollateralToken} from "./interfaces/ICollateralToken.sol";

/**
 * @title CollateralToken
 * @notice The collateral ERC-20 of one Omniclear chain (decimals differ per chain, e.g. 6 or 18).
 * The token bridge holds `MINTER_ROLE` to mint on arrival and burn on departure. On devnets a
 * capped faucet lets anyone mint test funds; it is fixed off at deployment elsewhere.
 */
contract CollateralToken is ICollateralToken, ERC20, AccessControl {
    /// @notice Role allowed to {mint} and {burn} (the token bridge).
    bytes32 public constant MINTER_ROLE = keccak256("MINTER_ROLE");

    /// @notice Per-call faucet cap in whole tokens; {faucetCap} scales it by `10**decimals()`.
    uint256 public constant FAUCET_CAP_WHOLE_TOKENS = 1_000_000;

    /// @notice Highest supported `decimals` (keeps `FAUCET_CAP_WHOLE_TOKENS * 10**decimals` in range).
    uint8 public constant MAX_DECIMALS = 36;

    /// @inheritdoc ICollateralToken
    bool public immutable faucetEnabled;

    uint8 private immutable _decimals;
    uint256 private immutable _faucetCap;

    /**
     * @param name_ ERC-20 name.
     * @param symbol_ ERC-20 symbol.
     * @param decimals_ ERC-20 decimals, at most {MAX_DECIMALS}.
     * @param admin Receives `DEFAULT_ADMIN_ROLE` (grants `MINTER_ROLE` to the bridge).
     * @param faucetEnabled_ Whether {faucet} works on this deployment.
     */
    constructor(string memory name_, string memory symbol_, uint8 decimals_, address admin, bool faucetEnabled_)
        ERC20(name_, symbol_)
    {
        if (admin == address(0)) revert ZeroAddress();
        if (decimals_ > MAX_DECIMALS) revert InvalidDecimals(decimals_);
        _decimals = decimals_;
        _faucetCap = FAUCET_CAP_WHOLE_TOKENS * 10 ** decimals_;
        faucetEnabled = faucetEnabled_;
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
    }

    /// @inheritdoc ICollateralToken
    function mint(address to, uint256 amount) external onlyRole(MINTER_ROLE) {
        _mint(to, amount);
    }

    /// @inheritdoc ICollateralToken
    function burn(uint256 amount) external onlyRole(MINTER_ROLE) {
        _burn(_msgSender(), amount);
    }

    /// @inheritdoc ICollateralToken
    function faucet(address to, uint256 amount) external {
        if (!faucetEnabled) revert FaucetDisabled();
        uint256 cap = _faucetCap;
        if (amount > cap) revert FaucetCapExceeded(amount, cap);
        _mint(to, amount);
    }

    /// @inheritdoc ICollateralToken
    function faucetCap() external view returns (uint256) {
        return _faucetCap;
    }

    /// @notice Number of decimals of the token's unit, as set at deployment.
    function decimals() public view override returns (uint8) {
        return _decimals;
    }
}
