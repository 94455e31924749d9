// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {IAccessControl} from "@openzeppelin/contracts/access/IAccessControl.sol";
import {IERC20Errors} from "@openzeppelin/contracts/interfaces/draft-IERC6093.sol";
import {CollateralToken} from "../src/CollateralToken.sol";
import {ICollateralToken} from "../src/interfaces/ICollateralToken.sol";
import {TestBase} from "./invariant/helpers/TestBase.sol";

contract CollateralTokenTest is TestBase {
    CollateralToken internal usdc6;
    CollateralToken internal usd18;
    CollateralToken internal mainnet;

    address internal admin;
    address internal bridge;
    address internal alice;

    uint256 internal constant CAP6 = 1_000_000 * 1e6;
    uint256 internal constant CAP18 = 1_000_000 * 1e18;

    function setUp() public {
        admin = makeAddr("admin");
        bridge = makeAddr("bridge");
        alice = makeAddr("alice");
        usdc6 = new CollateralToken("USD Coin", "USDC", 6, admin, true);
        usd18 = new CollateralToken("USD Stable", "USDS", 18, admin, true);
        mainnet = new CollateralToken("USD Coin", "USDC", 6, admin, false);

        bytes32 minterRole = usdc6.MINTER_ROLE();
        vm.startPrank(admin);
        usdc6.grantRole(minterRole, bridge);
        usd18.grantRole(minterRole, bridge);
        vm.stopPrank();
    }

    // ------------------------------------------------------------ metadata and roles

    function test_Constructor_SetsMetadataAndAdmin() public view {
        vm.assertEq(usdc6.decimals(), 6, "decimals 6");
        vm.assertEq(usd18.decimals(), 18, "decimals 18");
        vm.assertEq(keccak256(bytes(usdc6.name())), keccak256("USD Coin"), "name");
        vm.assertEq(keccak256(bytes(usdc6.symbol())), keccak256("USDC"), "symbol");
        vm.assertTrue(usdc6.hasRole(usdc6.DEFAULT_ADMIN_ROLE(), admin), "admin role");
        vm.assertEq(usdc6.MINTER_ROLE(), keccak256("MINTER_ROLE"), "minter role id");
        vm.assertTrue(usdc6.faucetEnabled(), "faucet on");
        vm.assertFalse(mainnet.faucetEnabled(), "faucet off");
        vm.assertEq(usdc6.faucetCap(), CAP6, "cap 6");
        vm.assertEq(usd18.faucetCap(), CAP18, "cap 18");
        vm.assertEq(usdc6.FAUCET_CAP_WHOLE_TOKENS(), 1_000_000, "cap whole tokens");
    }

    function test_RevertWhen_ConstructorAdminIsZero() public {
        vm.expectRevert(ICollateralToken.ZeroAddress.selector);
        new CollateralToken("X", "X", 6, address(0), true);
    }

    function test_RevertWhen_ConstructorDecimalsTooLarge() public {
        vm.expectRevert(abi.encodeWithSelector(ICollateralToken.InvalidDecimals.selector, uint8(37)));
        new CollateralToken("X", "X", 37, admin, true);
    }

    // ------------------------------------------------------------ mint and burn

    function test_Mint_ByMinter() public {
        vm.prank(bridge);
        usdc6.mint(alice, 123e6);
        vm.assertEq(usdc6.balanceOf(alice), 123e6, "balance");
        vm.assertEq(usdc6.totalSupply(), 123e6, "supply");
    }

    function test_Burn_BurnsCallersOwnTokens() public {
        vm.startPrank(bridge);
        usdc6.mint(bridge, 100e6);
        usdc6.mint(alice, 7e6);
        usdc6.burn(40e6);
        vm.stopPrank();
        vm.assertEq(usdc6.balanceOf(bridge), 60e6, "bridge balance");
        vm.assertEq(usdc6.balanceOf(alice), 7e6, "alice untouched");
        vm.assertEq(usdc6.totalSupply(), 67e6, "supply");
    }

    function test_RevertWhen_MintByNonMinter() public {
        vm.expectRevert(
            abi.encodeWithSelector(
                IAccessControl.AccessControlUnauthorizedAccount.selector, alice, usdc6.MINTER_ROLE()
            )
        );
        vm.prank(alice);
        usdc6.mint(alice, 1);
    }

    function test_RevertWhen_MintByAdminWithoutMinterRole() public {
        vm.expectRevert(
            abi.encodeWithSelector(
                IAccessControl.AccessControlUnauthorizedAccount.selector, admin, usdc6.MINTER_ROLE()
            )
        );
        vm.prank(admin);
        usdc6.mint(admin, 1);
    }

    function test_RevertWhen_BurnByNonMinter() public {
        vm.prank(bridge);
        usdc6.mint(alice, 10);
        vm.expectRevert(
            abi.encodeWithSelector(
                IAccessControl.AccessControlUnauthorizedAccount.selector, alice, usdc6.MINTER_ROLE()
            )
        );
        vm.prank(alice);
        usdc6.burn(10);
    }

    function test_RevertWhen_BurnExceedsBalance() public {
        vm.startPrank(bridge);
        usdc6.mint(bridge, 5);
        vm.expectRevert(abi.encodeWithSelector(IERC20Errors.ERC20InsufficientBalance.selector, bridge, 5, 6));
        usdc6.burn(6);
        vm.stopPrank();
    }

    // ------------------------------------------------------------ faucet

    function test_Faucet_MintsUpToCap() public {
        vm.prank(alice);
        usdc6.faucet(alice, CAP6);
        vm.assertEq(usdc6.balanceOf(alice), CAP6, "6-dec cap minted");

        usd18.faucet(alice, CAP18);
        vm.assertEq(usd18.balanceOf(alice), CAP18, "18-dec cap minted");
    }

    function test_RevertWhen_FaucetAboveCap() public {
        vm.expectRevert(abi.encodeWithSelector(ICollateralToken.FaucetCapExceeded.selector, CAP6 + 1, CAP6));
        usdc6.faucet(alice, CAP6 + 1);

        vm.expectRevert(abi.encodeWithSelector(ICollateralToken.FaucetCapExceeded.selector, CAP18 + 1, CAP18));
        usd18.faucet(alice, CAP18 + 1);
    }

    function test_RevertWhen_FaucetDisabled() public {
        vm.expectRevert(ICollateralToken.FaucetDisabled.selector);
        vm.prank(alice);
        mainnet.faucet(alice, 1);
    }

    function test_RevertWhen_FaucetToZeroAddress() public {
        vm.expectRevert(abi.encodeWithSelector(IERC20Errors.ERC20InvalidReceiver.selector, address(0)));
        usdc6.faucet(address(0), 1);
    }

    function testFuzz_Faucet_WithinCapMints(address caller, address to, uint256 amount) public {
        vm.assume(to != address(0));
        amount = bound(amount, 0, CAP18);
        vm.prank(caller);
        usd18.faucet(to, amount);
        vm.assertEq(usd18.balanceOf(to), amount, "balance");
        vm.assertEq(usd18.totalSupply(), amount, "supply");
    }

    function testFuzz_RevertWhen_FaucetAboveCap(uint256 amount) public {
        amount = bound(amount, CAP6 + 1, type(uint256).max);
        vm.expectRevert(abi.encodeWithSelector(ICollateralToken.FaucetCapExceeded.selector, amount, CAP6));
        usdc6.faucet(alice, amount);
    }

    function testFuzz_MintThenBurn_ConservesSupply(uint256 minted, uint256 burned) public {
        minted = bound(minted, 0, type(uint128).max);
        burned = bound(burned, 0, minted);
        vm.startPrank(bridge);
        usd18.mint(bridge, minted);
        usd18.burn(burned);
        vm.stopPrank();
        vm.assertEq(usd18.balanceOf(bridge), minted - burned, "balance");
        vm.assertEq(usd18.totalSupply(), minted - burned, "supply");
    }
}
