// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {IAccessControl} from "@openzeppelin/contracts/access/IAccessControl.sol";
import {Pausable} from "@openzeppelin/contracts/utils/Pausable.sol";
import {ReentrancyGuard} from "@openzeppelin/contracts/utils/ReentrancyGuard.sol";
import {IERC20Errors} from "@openzeppelin/contracts/interfaces/draft-IERC6093.sol";
import {CollateralToken} from "../src/CollateralToken.sol";
import {CollateralVault} from "../src/CollateralVault.sol";
import {ICollateralVault} from "../src/interfaces/ICollateralVault.sol";
import {TestBase, Vm} from "./invariant/helpers/TestBase.sol";
import {FeeOnTransferToken, NoopTransferToken, ReentrantToken} from "./invariant/helpers/MockTokens.sol";

contract CollateralVaultTest is TestBase {
    CollateralVault internal vault;
    CollateralToken internal usdc; // 6 decimals
    CollateralToken internal weth; // 18 decimals

    address internal admin;
    address internal guardian;
    address internal alice;
    address internal bob;

    event Deposit(address indexed account, address indexed token, uint256 amount, uint64 indexed depositNonce);
    event TokenAllowed(address indexed token, bool allowed);

    function setUp() public {
        admin = makeAddr("admin");
        guardian = makeAddr("guardian");
        alice = makeAddr("alice");
        bob = makeAddr("bob");

        vault = new CollateralVault(admin, guardian);
        usdc = new CollateralToken("USD Coin", "USDC", 6, admin, true);
        weth = new CollateralToken("Wrapped Ether", "WETH", 18, admin, true);

        vm.startPrank(admin);
        vault.setTokenAllowed(address(usdc), true);
        vault.setTokenAllowed(address(weth), true);
        vm.stopPrank();

        _fund(alice);
        _fund(bob);
    }

    function _fund(address account) internal {
        usdc.faucet(account, usdc.faucetCap());
        weth.faucet(account, weth.faucetCap());
        vm.startPrank(account);
        usdc.approve(address(vault), type(uint256).max);
        weth.approve(address(vault), type(uint256).max);
        vm.stopPrank();
    }

    function _deposit(address account, address token, uint256 amount) internal returns (uint64 nonce) {
        vm.prank(account);
        nonce = vault.deposit(token, amount);
    }

    function _unauthorized(address account, bytes32 role) internal pure returns (bytes memory) {
        return abi.encodeWithSelector(IAccessControl.AccessControlUnauthorizedAccount.selector, account, role);
    }

    // ------------------------------------------------------------ constructor and roles

    function test_Constructor_GrantsRoles() public view {
        vm.assertTrue(vault.hasRole(vault.DEFAULT_ADMIN_ROLE(), admin), "admin");
        vm.assertTrue(vault.hasRole(vault.GUARDIAN_ROLE(), guardian), "guardian");
        vm.assertFalse(vault.hasRole(vault.GUARDIAN_ROLE(), admin), "admin is not guardian");
        vm.assertEq(vault.GUARDIAN_ROLE(), keccak256("GUARDIAN_ROLE"), "guardian role id");
        vm.assertEq(vault.lastDepositNonce(), 0, "no deposits yet");
        vm.assertFalse(vault.paused(), "not paused");
    }

    function test_RevertWhen_ConstructorAdminIsZero() public {
        vm.expectRevert(ICollateralVault.ZeroAddress.selector);
        new CollateralVault(address(0), guardian);
    }

    function test_RevertWhen_ConstructorGuardianIsZero() public {
        vm.expectRevert(ICollateralVault.ZeroAddress.selector);
        new CollateralVault(admin, address(0));
    }

    // ------------------------------------------------------------ deposit

    function test_Deposit_CreditsBalanceAndTotal() public {
        _deposit(alice, address(usdc), 250e6);
        _deposit(bob, address(usdc), 50e6);
        _deposit(alice, address(weth), 3 ether);

        vm.assertEq(vault.balanceOf(alice, address(usdc)), 250e6, "alice usdc");
        vm.assertEq(vault.balanceOf(bob, address(usdc)), 50e6, "bob usdc");
        vm.assertEq(vault.balanceOf(alice, address(weth)), 3 ether, "alice weth");
        vm.assertEq(vault.balanceOf(bob, address(weth)), 0, "bob weth");
        vm.assertEq(vault.totalBalance(address(usdc)), 300e6, "total usdc");
        vm.assertEq(vault.totalBalance(address(weth)), 3 ether, "total weth");
        vm.assertEq(usdc.balanceOf(address(vault)), 300e6, "vault holds usdc");
        vm.assertEq(weth.balanceOf(address(vault)), 3 ether, "vault holds weth");
        vm.assertEq(usdc.balanceOf(alice), usdc.faucetCap() - 250e6, "pulled from alice");
    }

    function test_Deposit_NonceIncrementsAcrossTokensAndAccounts() public {
        vm.assertEq(_deposit(alice, address(usdc), 1), 1, "first");
        vm.assertEq(_deposit(bob, address(weth), 1), 2, "other account, other token");
        vm.assertEq(_deposit(alice, address(weth), 1), 3, "same account, other token");
        vm.assertEq(_deposit(bob, address(usdc), 1), 4, "other account, first token");
        vm.assertEq(vault.lastDepositNonce(), 4, "last nonce");
    }

    function test_Deposit_EmitsEventWithExactArgs() public {
        vm.expectEmit(true, true, true, true, address(vault));
        emit Deposit(alice, address(usdc), 42e6, 1);
        _deposit(alice, address(usdc), 42e6);

        vm.expectEmit(true, true, true, true, address(vault));
        emit Deposit(bob, address(weth), 7, 2);
        _deposit(bob, address(weth), 7);
    }

    function test_Deposit_EventIsLastLogAndDecodes() public {
        vm.recordLogs();
        _deposit(alice, address(weth), 5 ether);
        Vm.Log[] memory logs = vm.getRecordedLogs();
        // Transfer (token) then Deposit (vault): the Deposit is emitted after the pull.
        vm.assertEq(logs.length, 2, "two logs");
        Vm.Log memory log = logs[1];
        vm.assertEq(log.emitter, address(vault), "emitter");
        vm.assertEq(log.topics.length, 4, "three indexed args");
        vm.assertEq(log.topics[0], Deposit.selector, "topic0");
        vm.assertEq(log.topics[1], bytes32(uint256(uint160(alice))), "account");
        vm.assertEq(log.topics[2], bytes32(uint256(uint160(address(weth)))), "token");
        vm.assertEq(log.topics[3], bytes32(uint256(1)), "nonce");
        vm.assertEq(abi.decode(log.data, (uint256)), 5 ether, "amount");
    }

    function test_RevertWhen_DepositTokenNotAllowed() public {
        CollateralToken other = new CollateralToken("Other", "OTH", 18, admin, true);
        vm.expectRevert(abi.encodeWithSelector(ICollateralVault.TokenNotAllowed.selector, address(other)));
        _deposit(alice, address(other), 1);
    }

    function test_RevertWhen_DepositTokenWasDisallowed() public {
        _deposit(alice, address(usdc), 10);
        vm.prank(admin);
        vault.setTokenAllowed(address(usdc), false);
        vm.expectRevert(abi.encodeWithSelector(ICollateralVault.TokenNotAllowed.selector, address(usdc)));
        _deposit(alice, address(usdc), 10);
        vm.assertEq(vault.balanceOf(alice, address(usdc)), 10, "existing balance kept");
    }

    function test_RevertWhen_DepositZeroAmount() public {
        vm.expectRevert(ICollateralVault.ZeroAmount.selector);
        _deposit(alice, address(usdc), 0);
    }

    function test_RevertWhen_DepositReceivesNothing() public {
        NoopTransferToken noop = new NoopTransferToken();
        vm.prank(admin);
        vault.setTokenAllowed(address(noop), true);
        vm.expectRevert(ICollateralVault.ZeroAmount.selector);
        _deposit(alice, address(noop), 1 ether);
    }

    function test_RevertWhen_DepositPaused() public {
        vm.prank(guardian);
        vault.pause();
        vm.expectRevert(Pausable.EnforcedPause.selector);
        _deposit(alice, address(usdc), 1);
    }

    function test_RevertWhen_DepositWithoutAllowance() public {
        address carol = makeAddr("carol");
        usdc.faucet(carol, 10);
        vm.expectRevert(
            abi.encodeWithSelector(IERC20Errors.ERC20InsufficientAllowance.selector, address(vault), 0, 10)
        );
        _deposit(carol, address(usdc), 10);
    }

    function test_RevertWhen_DepositExceedsBalance() public {
        uint256 held = usdc.balanceOf(alice);
        vm.expectRevert(
            abi.encodeWithSelector(IERC20Errors.ERC20InsufficientBalance.selector, alice, held, held + 1)
        );
        _deposit(alice, address(usdc), held + 1);
    }

    function test_RevertWhen_DepositReentersViaTransferFrom() public {
        ReentrantToken evil = new ReentrantToken();
        vm.prank(admin);
        vault.setTokenAllowed(address(evil), true);
        evil.mint(alice, 10 ether);
        vm.prank(alice);
        evil.approve(address(vault), type(uint256).max);
        evil.arm(vault);

        vm.expectRevert(ReentrancyGuard.ReentrancyGuardReentrantCall.selector);
        _deposit(alice, address(evil), 1 ether);

        vm.assertEq(vault.lastDepositNonce(), 0, "no nonce used");
        vm.assertEq(vault.totalBalance(address(evil)), 0, "nothing credited");
        vm.assertEq(evil.balanceOf(address(vault)), 0, "nothing pulled");
    }

    function test_Deposit_FeeOnTransferCreditsReceivedAmount() public {
        FeeOnTransferToken fot = new FeeOnTransferToken(100); // 1%
        vm.prank(admin);
        vault.setTokenAllowed(address(fot), true);
        fot.mint(alice, 1000 ether);
        vm.prank(alice);
        fot.approve(address(vault), type(uint256).max);

        vm.expectEmit(true, true, true, true, address(vault));
        emit Deposit(alice, address(fot), 99 ether, 1);
        _deposit(alice, address(fot), 100 ether);

        vm.assertEq(vault.balanceOf(alice, address(fot)), 99 ether, "credited received");
        vm.assertEq(vault.totalBalance(address(fot)), 99 ether, "total");
        vm.assertEq(fot.balanceOf(address(vault)), 99 ether, "holdings");
    }

    function test_RevertWhen_FeeOnTransferTakesEverything() public {
        FeeOnTransferToken fot = new FeeOnTransferToken(10_000); // 100%
        vm.prank(admin);
        vault.setTokenAllowed(address(fot), true);
        fot.mint(alice, 1 ether);
        vm.prank(alice);
        fot.approve(address(vault), type(uint256).max);
        vm.expectRevert(ICollateralVault.ZeroAmount.selector);
        _deposit(alice, address(fot), 1 ether);
    }

    // ------------------------------------------------------------ allow-list

    function test_SetTokenAllowed_AdminTogglesAndEmits() public {
        address token = makeAddr("token");
        vm.assertFalse(vault.isTokenAllowed(token), "initially off");

        vm.expectEmit(true, true, true, true, address(vault));
        emit TokenAllowed(token, true);
        vm.prank(admin);
        vault.setTokenAllowed(token, true);
        vm.assertTrue(vault.isTokenAllowed(token), "on");

        vm.expectEmit(true, true, true, true, address(vault));
        emit TokenAllowed(token, false);
        vm.prank(admin);
        vault.setTokenAllowed(token, false);
        vm.assertFalse(vault.isTokenAllowed(token), "off");
    }

    function test_RevertWhen_NonAdminSetsTokenAllowed() public {
        bytes32 adminRole = vault.DEFAULT_ADMIN_ROLE();
        vm.expectRevert(_unauthorized(alice, adminRole));
        vm.prank(alice);
        vault.setTokenAllowed(address(usdc), false);

        vm.expectRevert(_unauthorized(guardian, adminRole));
        vm.prank(guardian);
        vault.setTokenAllowed(address(usdc), false);
        vm.assertTrue(vault.isTokenAllowed(address(usdc)), "unchanged");
    }

    function test_RevertWhen_SetTokenAllowedZeroAddress() public {
        vm.expectRevert(ICollateralVault.ZeroAddress.selector);
        vm.prank(admin);
        vault.setTokenAllowed(address(0), true);
    }

    // ------------------------------------------------------------ pause

    function test_Pause_GuardianPausesAndUnpauses() public {
        vm.prank(guardian);
        vault.pause();
        vm.assertTrue(vault.paused(), "paused");

        vm.prank(guardian);
        vault.unpause();
        vm.assertFalse(vault.paused(), "unpaused");
        vm.assertEq(_deposit(alice, address(usdc), 1), 1, "deposits resume");
    }

    function test_RevertWhen_NonGuardianPauses() public {
        bytes32 guardianRole = vault.GUARDIAN_ROLE();
        vm.expectRevert(_unauthorized(alice, guardianRole));
        vm.prank(alice);
        vault.pause();

        vm.expectRevert(_unauthorized(admin, guardianRole));
        vm.prank(admin);
        vault.pause();
    }

    function test_RevertWhen_NonGuardianUnpauses() public {
        vm.prank(guardian);
        vault.pause();
        vm.expectRevert(_unauthorized(admin, vault.GUARDIAN_ROLE()));
        vm.prank(admin);
        vault.unpause();
        vm.assertTrue(vault.paused(), "still paused");
    }

    function test_RevertWhen_UnpauseNotPaused() public {
        vm.expectRevert(Pausable.ExpectedPause.selector);
        vm.prank(guardian);
        vault.unpause();
    }

    // ------------------------------------------------------------ fuzz

    function testFuzz_Deposit_CreditsExactAmount(address account, uint256 amount, bool eighteen) public {
        vm.assume(account != address(0) && account != address(vault));
        CollateralToken token = eighteen ? weth : usdc;
        amount = bound(amount, 1, token.faucetCap());
        token.faucet(account, amount);
        vm.prank(account);
        token.approve(address(vault), amount);

        uint256 totalBefore = vault.totalBalance(address(token));
        uint256 accountBefore = vault.balanceOf(account, address(token));
        uint64 nonce = _deposit(account, address(token), amount);

        vm.assertEq(nonce, 1, "nonce");
        vm.assertEq(vault.balanceOf(account, address(token)), accountBefore + amount, "account credited");
        vm.assertEq(vault.totalBalance(address(token)), totalBefore + amount, "total credited");
        vm.assertEq(token.balanceOf(address(vault)), vault.totalBalance(address(token)), "holdings == total");
    }

    function testFuzz_Deposit_SequenceKeepsTotalsAndNonces(uint256[8] memory amounts, uint256 seed) public {
        uint256 sumUsdc;
        uint256 sumWeth;
        for (uint256 i; i < amounts.length; ++i) {
            address account = (seed >> i) & 1 == 0 ? alice : bob;
            bool eighteen = (seed >> (i + 8)) & 1 == 1;
            // Each account holds one faucet cap (1e6 whole tokens): 8 deposits of at most cap / 8 fit.
            uint256 amount = bound(amounts[i], 1, eighteen ? 125_000e18 : 125_000e6);
            uint64 nonce = _deposit(account, eighteen ? address(weth) : address(usdc), amount);
            vm.assertEq(nonce, i + 1, "nonce strictly increasing by one");
            if (eighteen) sumWeth += amount;
            else sumUsdc += amount;
        }
        vm.assertEq(vault.lastDepositNonce(), amounts.length, "deposit count");
        vm.assertEq(vault.totalBalance(address(usdc)), sumUsdc, "usdc total");
        vm.assertEq(vault.totalBalance(address(weth)), sumWeth, "weth total");
        vm.assertEq(
            vault.balanceOf(alice, address(usdc)) + vault.balanceOf(bob, address(usdc)), sumUsdc, "usdc accounts sum"
        );
        vm.assertEq(
            vault.balanceOf(alice, address(weth)) + vault.balanceOf(bob, address(weth)), sumWeth, "weth accounts sum"
        );
        vm.assertEq(usdc.balanceOf(address(vault)), sumUsdc, "usdc holdings");
        vm.assertEq(weth.balanceOf(address(vault)), sumWeth, "weth holdings");
    }

    function testFuzz_Deposit_FeeOnTransferNeverOvercredits(uint256 feeBps, uint256 amount) public {
        feeBps = bound(feeBps, 0, 9_999);
        amount = bound(amount, 10_000, 1e30);
        FeeOnTransferToken fot = new FeeOnTransferToken(feeBps);
        vm.prank(admin);
        vault.setTokenAllowed(address(fot), true);
        fot.mint(alice, amount);
        vm.prank(alice);
        fot.approve(address(vault), amount);

        _deposit(alice, address(fot), amount);
        uint256 expected = amount - amount * feeBps / 10_000;
        vm.assertEq(vault.balanceOf(alice, address(fot)), expected, "credited received");
        vm.assertEq(fot.balanceOf(address(vault)), vault.totalBalance(address(fot)), "holdings == total");
    }

    function testFuzz_RevertWhen_NonAdminSetsTokenAllowed(address caller) public {
        vm.assume(caller != admin);
        vm.expectRevert(_unauthorized(caller, vault.DEFAULT_ADMIN_ROLE()));
        vm.prank(caller);
        vault.setTokenAllowed(address(usdc), false);
    }

    function testFuzz_RevertWhen_NonGuardianPauses(address caller) public {
        vm.assume(caller != guardian);
        vm.expectRevert(_unauthorized(caller, vault.GUARDIAN_ROLE()));
        vm.prank(caller);
        vault.pause();
    }
}
