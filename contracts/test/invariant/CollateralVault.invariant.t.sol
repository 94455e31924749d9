// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {CollateralToken} from "../../src/CollateralToken.sol";
import {CollateralVault} from "../../src/CollateralVault.sol";
import {InvariantBase} from "./helpers/TestBase.sol";
import {CollateralVaultHandler} from "./handlers/CollateralVaultHandler.sol";

/**
 * @dev Invariants of {CollateralVault} under random sequences of deposits (several actors, tokens
 * with 6 and 18 decimals and a fee-on-transfer token), pause toggles and deposits of unlisted
 * tokens, driven by {CollateralVaultHandler}:
 * - per token, vault holdings == totalBalance == sum of per-account balances == ghost sum;
 * - deposit nonces are unique and strictly increasing, and lastDepositNonce == deposit count;
 * - deposits never succeed while paused or for unlisted tokens, and valid deposits never revert.
 */
contract CollateralVaultInvariantTest is InvariantBase {
    CollateralVault internal vault;
    CollateralVaultHandler internal handler;

    function setUp() public {
        address admin = makeAddr("admin");
        address guardian = makeAddr("guardian");
        vault = new CollateralVault(admin, guardian);
        CollateralToken usdc = new CollateralToken("USD Coin", "USDC", 6, admin, false);
        CollateralToken weth = new CollateralToken("Wrapped Ether", "WETH", 18, admin, false);
        handler = new CollateralVaultHandler(vault, guardian, usdc, weth);

        vm.startPrank(admin);
        usdc.grantRole(usdc.MINTER_ROLE(), address(handler));
        weth.grantRole(weth.MINTER_ROLE(), address(handler));
        vault.setTokenAllowed(address(usdc), true);
        vault.setTokenAllowed(address(weth), true);
        vault.setTokenAllowed(address(handler.fot()), true);
        vm.stopPrank();

        bytes4[] memory selectors = new bytes4[](4);
        selectors[0] = CollateralVaultHandler.deposit.selector;
        selectors[1] = CollateralVaultHandler.deposit.selector; // twice: deposits are the main traffic
        selectors[2] = CollateralVaultHandler.depositUnlisted.selector;
        selectors[3] = CollateralVaultHandler.togglePause.selector;
        targetContract(address(handler));
        targetSelector(FuzzSelector({addr: address(handler), selectors: selectors}));
    }

    /// @dev Holdings == totalBalance == Σ balanceOf(actor) == ghost credited sum, per token.
    function invariant_HoldingsEqualTotalEqualSumOfBalances() public view {
        address[] memory tokens = handler.tokens();
        address[] memory actors = handler.actors();
        for (uint256 t; t < tokens.length; ++t) {
            address token = tokens[t];
            uint256 total = vault.totalBalance(token);
            vm.assertEq(IERC20(token).balanceOf(address(vault)), total, "holdings != totalBalance");
            vm.assertEq(total, handler.ghost_creditedSum(token), "totalBalance != ghost sum");
            uint256 sum;
            for (uint256 a; a < actors.length; ++a) {
                uint256 balance = vault.balanceOf(actors[a], token);
                vm.assertEq(balance, handler.ghost_accountBalance(actors[a], token), "balance != ghost");
                sum += balance;
            }
            vm.assertEq(sum, total, "sum of balances != totalBalance");
        }
        vm.assertEq(handler.ghost_creditViolations(), 0, "credit != received");
    }

    /// @dev Nonces are unique and strictly increasing by one; their count is lastDepositNonce.
    function invariant_NoncesStrictlyIncreasingAndCounted() public view {
        vm.assertEq(handler.ghost_nonceViolations(), 0, "nonce not last + 1");
        vm.assertEq(vault.lastDepositNonce(), handler.ghost_depositCount(), "lastDepositNonce != deposit count");
        vm.assertEq(vault.lastDepositNonce(), handler.ghost_lastNonce(), "lastDepositNonce != ghost last nonce");
    }

    /// @dev Forbidden deposits never succeed; allowed ones never revert.
    function invariant_DepositsSucceedExactlyWhenAllowed() public view {
        vm.assertEq(handler.ghost_forbiddenSuccesses(), 0, "paused/unlisted deposit succeeded");
        vm.assertEq(handler.ghost_unexpectedReverts(), 0, "valid deposit reverted or wrong error");
    }
}
