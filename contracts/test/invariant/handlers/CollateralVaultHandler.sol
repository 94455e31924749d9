// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {Pausable} from "@openzeppelin/contracts/utils/Pausable.sol";
import {CollateralToken} from "../../../src/CollateralToken.sol";
import {CollateralVault} from "../../../src/CollateralVault.sol";
import {ICollateralVault} from "../../../src/interfaces/ICollateralVault.sol";
import {TestBase} from "../helpers/TestBase.sol";
import {FeeOnTransferToken} from "../helpers/MockTokens.sol";

/**
 * @dev Drives {CollateralVault} for the invariant campaign with bounded inputs: deposits by a
 * fixed set of actors in a 6-decimal token, an 18-decimal token and a fee-on-transfer token;
 * pause toggles by the guardian; deposits of a token that is not allow-listed. Ghost variables
 * record what the vault should hold, so the invariants compare the vault against them.
 */
contract CollateralVaultHandler is TestBase {
    CollateralVault public immutable vault;
    address public immutable guardian;
    CollateralToken public immutable usdc; // 6 decimals
    CollateralToken public immutable weth; // 18 decimals
    FeeOnTransferToken public immutable fot; // 18 decimals, 0.5% fee
    CollateralToken public immutable unlisted;

    address[] internal _actors;
    address[] internal _tokens;

    // ---------------------------------------------------------------- ghosts
    mapping(address token => uint256) public ghost_creditedSum;
    mapping(address account => mapping(address token => uint256)) public ghost_accountBalance;
    uint64 public ghost_lastNonce;
    uint256 public ghost_depositCount;
    /// @dev Deposits whose nonce was not exactly `ghost_lastNonce + 1`.
    uint256 public ghost_nonceViolations;
    /// @dev Deposits whose credit differed from the vault's balance delta (or exceeded the request).
    uint256 public ghost_creditViolations;
    /// @dev Calls that succeeded although they had to revert (paused vault, unlisted token).
    uint256 public ghost_forbiddenSuccesses;
    /// @dev Calls that reverted although they had to succeed, or reverted with the wrong error.
    uint256 public ghost_unexpectedReverts;

    // ---------------------------------------------------------------- call counters
    uint256 public calls_deposit;
    uint256 public calls_depositWhilePaused;
    uint256 public calls_depositUnlisted;
    uint256 public calls_togglePause;

    constructor(CollateralVault vault_, address guardian_, CollateralToken usdc_, CollateralToken weth_) {
        vault = vault_;
        guardian = guardian_;
        usdc = usdc_;
        weth = weth_;
        fot = new FeeOnTransferToken(50);
        unlisted = new CollateralToken("Unlisted", "UNL", 18, address(this), false);
        unlisted.grantRole(unlisted.MINTER_ROLE(), address(this));

        _tokens.push(address(usdc_));
        _tokens.push(address(weth_));
        _tokens.push(address(fot));
        for (uint256 i; i < 4; ++i) {
            _actors.push(makeAddr(string.concat("actor", _digit(i))));
        }
    }

    // ---------------------------------------------------------------- actions

    /// @dev Mint `amount` to a chosen actor and deposit it; must succeed unless paused.
    function deposit(uint256 actorSeed, uint256 tokenSeed, uint256 amount) external {
        address actor = _actors[actorSeed % _actors.length];
        address token = _tokens[tokenSeed % _tokens.length];
        amount = bound(amount, 1, 1e9 * 10 ** _decimalsOf(token));
        _mint(token, actor, amount);
        vm.prank(actor);
        IERC20(token).approve(address(vault), amount);

        bool paused = vault.paused();
        uint256 holdingsBefore = IERC20(token).balanceOf(address(vault));
        vm.prank(actor);
        try vault.deposit(token, amount) returns (uint64 nonce) {
            if (paused) {
                ++ghost_forbiddenSuccesses;
                return;
            }
            ++calls_deposit;
            uint256 credited = IERC20(token).balanceOf(address(vault)) - holdingsBefore;
            if (credited > amount || vault.totalBalance(token) != ghost_creditedSum[token] + credited) {
                ++ghost_creditViolations;
            }
            if (nonce != ghost_lastNonce + 1) ++ghost_nonceViolations;
            ghost_lastNonce = nonce;
            ++ghost_depositCount;
            ghost_creditedSum[token] += credited;
            ghost_accountBalance[actor][token] += credited;
        } catch (bytes memory reason) {
            if (paused) {
                ++calls_depositWhilePaused;
                if (bytes4(reason) != Pausable.EnforcedPause.selector) ++ghost_unexpectedReverts;
            } else {
                ++ghost_unexpectedReverts;
            }
            // Leave the actor holding no stray allowance.
            vm.prank(actor);
            IERC20(token).approve(address(vault), 0);
        }
    }

    /// @dev A deposit of a token that is not allow-listed: must always revert.
    function depositUnlisted(uint256 actorSeed, uint256 amount) external {
        ++calls_depositUnlisted;
        address actor = _actors[actorSeed % _actors.length];
        amount = bound(amount, 1, 1e27);
        unlisted.mint(actor, amount);
        vm.startPrank(actor);
        unlisted.approve(address(vault), amount);
        try vault.deposit(address(unlisted), amount) {
            ++ghost_forbiddenSuccesses;
        } catch (bytes memory reason) {
            bool expected = vault.paused()
                ? bytes4(reason) == Pausable.EnforcedPause.selector
                : keccak256(reason)
                    == keccak256(abi.encodeWithSelector(ICollateralVault.TokenNotAllowed.selector, address(unlisted)));
            if (!expected) ++ghost_unexpectedReverts;
        }
        vm.stopPrank();
    }

    /// @dev The guardian unpauses a paused vault, or pauses a running one one time in four.
    function togglePause(uint256 seed) external {
        ++calls_togglePause;
        if (vault.paused()) {
            vm.prank(guardian);
            vault.unpause();
        } else if (seed % 4 == 0) {
            vm.prank(guardian);
            vault.pause();
        }
    }

    // ---------------------------------------------------------------- views for the invariants

    function actors() external view returns (address[] memory) {
        return _actors;
    }

    function tokens() external view returns (address[] memory) {
        return _tokens;
    }

    // ---------------------------------------------------------------- internal

    function _mint(address token, address to, uint256 amount) internal {
        if (token == address(fot)) fot.mint(to, amount);
        else CollateralToken(token).mint(to, amount);
    }

    function _decimalsOf(address token) internal view returns (uint256) {
        return CollateralToken(token).decimals();
    }

    function _digit(uint256 i) internal pure returns (string memory) {
        return string(abi.encodePacked(bytes1(uint8(48 + i))));
    }
}
