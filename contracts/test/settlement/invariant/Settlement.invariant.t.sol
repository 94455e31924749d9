// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {CollateralVault} from "../../../src/CollateralVault.sol";
import {IMailbox} from "../../../src/interfaces/IMailbox.sol";
import {ISettlementHub} from "../../../src/interfaces/ISettlementHub.sol";
import {InvariantBase} from "../../invariant/helpers/TestBase.sol";
import {SettlementHandler} from "./SettlementHandler.sol";

/**
 * @dev Handler-driven invariants of the whole settlement system (hub + three chains, one of
 * them 18 decimals), under random deposits, zero-sum batches with withdrawals and bridge legs,
 * deliveries in random order, replays and forgeries ({SettlementHandler}):
 * - solvency: every vault holds at least the sum of its settled balances, exactly that once
 *   every message is delivered, and its `totalBalance` is the sum over accounts;
 * - conservation: Σ over chains of vault holdings (canonical) + value in flight in the token
 *   bridge == Σ deposited − Σ withdrawn, and what the payees received is exactly the withdrawals
 *   the vaults marked paid;
 * - exactly once: every message is delivered at most once, in its path's order; no replay or
 *   forgery is ever accepted; the Mailboxes' delivered flags agree with the relay's record;
 * - the ledger agrees with the chains: a vault that applied every committed batch holds, per
 *   account, exactly the balance the batches imply;
 * - liveness (after each run): relaying everything leaves nothing stuck.
 */
contract SettlementInvariantTest is InvariantBase {
    SettlementHandler internal handler;

    function setUp() public {
        handler = new SettlementHandler();
        targetContract(address(handler));
        bytes4[] memory selectors = new bytes4[](7);
        selectors[0] = SettlementHandler.deposit.selector;
        selectors[1] = SettlementHandler.deposit.selector; // deposits twice as likely
        selectors[2] = SettlementHandler.submitBatch.selector;
        selectors[3] = SettlementHandler.deliver.selector;
        selectors[4] = SettlementHandler.replay.selector;
        selectors[5] = SettlementHandler.forge.selector;
        selectors[6] = SettlementHandler.relayAll.selector;
        targetSelector(FuzzSelector(address(handler), selectors));
    }

    // ------------------------------------------------------------------ invariants

    /// forge-config: default.invariant.runs = 32
    /// forge-config: ci.invariant.runs = 32
    function invariant_VaultsAreSolvent() public view {
        bool idle = handler.undelivered() == 0;
        for (uint256 c; c < handler.chainCount(); ++c) {
            (address token, address vault,,) = handler.chainAt(c);
            uint256 total = CollateralVault(vault).totalBalance(token);
            uint256 holdings = IERC20(token).balanceOf(vault);
            vm.assertGe(holdings, total, "holdings >= settled balances");
            if (idle) vm.assertEq(holdings, total, "holdings == settled balances when all delivered");
            uint256 sum;
            for (uint256 a; a < handler.actorCount(); ++a) {
                sum += CollateralVault(vault).balanceOf(handler.actors(a), token);
            }
            vm.assertEq(sum, total, "totalBalance == sum of account balances");
        }
    }

    /// forge-config: default.invariant.runs = 32
    /// forge-config: ci.invariant.runs = 32
    function invariant_ValueIsConserved() public view {
        uint256 holdings;
        uint256 withdrawn;
        for (uint256 c; c < handler.chainCount(); ++c) {
            (address token, address vault,, uint256 scale) = handler.chainAt(c);
            holdings += IERC20(token).balanceOf(vault) / scale;
            withdrawn += IERC20(token).balanceOf(handler.payees(c)) / scale;
            vm.assertEq(IERC20(token).balanceOf(vault) % scale, 0, "no dust below the canonical unit");
        }
        vm.assertEq(holdings + handler.ghostInFlight(), handler.ghostDeposited() - withdrawn, "conservation");
        vm.assertLe(withdrawn, handler.ghostWithdrawalsCommitted(), "never more than committed");
        if (handler.undelivered() == 0) vm.assertEq(holdings, handler.ghostDeposited() - withdrawn, "exact when idle");
    }

    /// forge-config: default.invariant.runs = 32
    /// forge-config: ci.invariant.runs = 32
    function invariant_WithdrawalsPaidExactlyAsMarked() public view {
        uint256 n = handler.chainCount();
        uint256[] memory paid = new uint256[](n);
        for (uint256 k; k < handler.withdrawalCount(); ++k) {
            uint256 c = handler.withdrawalChain(k);
            (, address vault,,) = handler.chainAt(c);
            if (CollateralVault(vault).withdrawalPaid(handler.withdrawalIds(k))) paid[c] += handler.withdrawalAmount(k);
        }
        for (uint256 c; c < n; ++c) {
            (address token,,, uint256 scale) = handler.chainAt(c);
            vm.assertEq(IERC20(token).balanceOf(handler.payees(c)), paid[c] * scale, "payee got the paid withdrawals");
        }
    }

    /// forge-config: default.invariant.runs = 32
    /// forge-config: ci.invariant.runs = 32
    function invariant_MessagesDeliveredAtMostOnceInOrder() public view {
        vm.assertEq(handler.ghostDoubleDeliveries(), 0, "a message delivered twice");
        vm.assertEq(handler.ghostReplaysAccepted(), 0, "a replay was accepted");
        vm.assertEq(handler.ghostForgeriesAccepted(), 0, "a forgery was accepted");
        vm.assertEq(handler.ghostOutOfOrderAccepted(), 0, "delivered out of path order");
        uint256 count = handler.pendingCount();
        uint256 delivered;
        for (uint256 i; i < count; ++i) {
            (bytes32 id, uint32 destination, bool isDelivered) = handler.pendingAt(i);
            (,, address mailbox,) = handler.chainAt(_chainIndex(destination));
            vm.assertEq(IMailbox(mailbox).delivered(id), isDelivered, "mailbox agrees with the relay");
            if (isDelivered) {
                vm.assertEq(handler.deliveries(id), 1, "delivered exactly once");
                ++delivered;
            }
        }
        vm.assertEq(handler.ghostDeliveries(), delivered, "deliveries counted");
    }

    /// forge-config: default.invariant.runs = 32
    /// forge-config: ci.invariant.runs = 32
    function invariant_SettledBalancesMatchTheBatches() public view {
        uint64 committed = ISettlementHub(handler.hubAddress()).lastBatchNumber();
        for (uint256 c; c < handler.chainCount(); ++c) {
            (address token, address vault,, uint256 scale) = handler.chainAt(c);
            if (CollateralVault(vault).lastSettledBatch() != committed) continue;
            for (uint256 a; a < handler.actorCount(); ++a) {
                vm.assertEq(
                    CollateralVault(vault).balanceOf(handler.actors(a), token),
                    handler.projected(c, a) * scale,
                    "vault balance == balance implied by the committed batches"
                );
            }
        }
    }

    /// @dev After each run: everything committed can be delivered, and then the system is exact.
    function afterInvariant() public {
        vm.assertEq(handler.relayAll(0), 0, "a message is stuck");
        invariant_VaultsAreSolvent();
        invariant_ValueIsConserved();
        invariant_WithdrawalsPaidExactlyAsMarked();
        invariant_MessagesDeliveredAtMostOnceInOrder();
        invariant_SettledBalancesMatchTheBatches();
        vm.assertEq(handler.ghostInFlight(), 0, "nothing in flight");
    }

    function _chainIndex(uint32 domain) internal view returns (uint256 c) {
        for (; c < handler.chainCount(); ++c) {
            (,, address mailbox,) = handler.chainAt(c);
            if (IMailbox(mailbox).localDomain() == domain) return c;
        }
        revert("unknown domain");
    }
}
