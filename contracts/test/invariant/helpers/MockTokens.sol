// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";
import {ICollateralVault} from "../../../src/interfaces/ICollateralVault.sol";

/// @dev Plain mintable ERC-20 with configurable decimals.
contract MockERC20 is ERC20 {
    uint8 private immutable _decimals;

    constructor(string memory name_, uint8 decimals_) ERC20(name_, name_) {
        _decimals = decimals_;
    }

    function mint(address to, uint256 amount) external {
        _mint(to, amount);
    }

    function decimals() public view override returns (uint8) {
        return _decimals;
    }
}

/// @dev Takes `feeBps` of every transfer (burned), so the recipient gets less than `amount`.
contract FeeOnTransferToken is MockERC20 {
    uint256 public immutable feeBps;

    constructor(uint256 feeBps_) MockERC20("FeeToken", 18) {
        require(feeBps_ <= 10_000, "fee > 100%");
        feeBps = feeBps_;
    }

    function _update(address from, address to, uint256 value) internal override {
        if (from == address(0) || to == address(0)) return super._update(from, to, value);
        uint256 fee = value * feeBps / 10_000;
        super._update(from, address(0), fee);
        super._update(from, to, value - fee);
    }
}

/// @dev `transferFrom` re-enters `vault.deposit` before moving any tokens.
contract ReentrantToken is MockERC20 {
    ICollateralVault public vault;
    bool public attack;

    constructor() MockERC20("Reentrant", 18) {}

    function arm(ICollateralVault vault_) external {
        vault = vault_;
        attack = true;
    }

    function transferFrom(address from, address to, uint256 value) public override returns (bool) {
        if (attack) {
            attack = false;
            vault.deposit(address(this), value);
        }
        return super.transferFrom(from, to, value);
    }
}

/// @dev Reports a successful `transferFrom` without moving anything.
contract NoopTransferToken is MockERC20 {
    constructor() MockERC20("Noop", 18) {}

    function transferFrom(address, address, uint256) public pure override returns (bool) {
        return true;
    }
}
