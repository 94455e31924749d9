// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {OracleFeed} from "../../src/oracle/OracleFeed.sol";
import {PriceReportVerifier} from "../../src/oracle/PriceReportVerifier.sol";
import {IPriceReportVerifier} from "../../src/oracle/IPriceReportVerifier.sol";
import {OracleTestBase} from "./OracleTestBase.sol";

contract OracleFeedTest is OracleTestBase {
    PriceReportVerifier internal verifier;
    OracleFeed internal feed;
    uint256[] internal keys;
    address internal owner = address(0xA11CE);
    address internal updater = address(0xB0B);
    uint64 internal constant NOW = 1_750_000_100;
    bytes32 internal constant ETH = bytes32("ETH-USD");

    event AnswerUpdated(int256 indexed current, uint256 indexed roundId, uint256 updatedAt);

    function setUp() public {
        vm.warp(NOW);
        keys = signerKeys();
        verifier = new PriceReportVerifier(owner, addresses(keys), 3, 3600);
        feed = new OracleFeed(owner, updater, verifier, ETH, "ETH / USD");
    }

    function signedReport(int256 price, uint64 ts)
        internal
        view
        returns (IPriceReportVerifier.PriceReport memory r, bytes[] memory sigs)
    {
        r = IPriceReportVerifier.PriceReport(ETH, price, 1e8, ts, 1);
        sigs = signWith(keys, range(3), verifier.hashReport(r));
    }

    function test_Metadata_ChainlinkStyle() public view {
        vm.assertEq(uint256(feed.decimals()), 8, "decimals");
        vm.assertEq(feed.description(), "ETH / USD", "description");
        vm.assertEq(feed.version(), 1, "version");
    }

    function test_UpdateAnswer_ByUpdaterWritesRound() public {
        vm.expectEmit(true, true, false, true, address(feed));
        emit AnswerUpdated(3000e8, 1, NOW - 2);
        vm.prank(updater);
        feed.updateAnswer(3000e8, NOW - 2, 1);
        (uint80 id, int256 answer,, uint256 updatedAt, uint80 answeredIn) = feed.latestRoundData();
        vm.assertEq(uint256(id), 1, "round");
        vm.assertEq(answer, int256(3000e8), "answer");
        vm.assertEq(updatedAt, NOW - 2, "updatedAt");
        vm.assertEq(uint256(answeredIn), 1, "answeredInRound");
        vm.prank(updater);
        feed.updateAnswer(3001e8, NOW, 2);
        (id, answer,,,) = feed.latestRoundData();
        vm.assertEq(uint256(id), 2, "round 2");
        vm.assertEq(uint256(feed.latestMarketStatus()), 2, "status");
        (, answer,,,) = feed.getRoundData(1);
        vm.assertEq(answer, int256(3000e8), "history");
    }

    function test_UpdateAnswer_RevertWhen_NotUpdater() public {
        vm.expectRevert(abi.encodeWithSelector(OracleFeed.NotUpdater.selector, address(this)));
        feed.updateAnswer(3000e8, NOW, 1);
    }

    function test_UpdateAnswer_RevertWhen_StaleOrFutureOrNonPositive() public {
        vm.startPrank(updater);
        feed.updateAnswer(3000e8, NOW - 1, 1);
        vm.expectRevert(abi.encodeWithSelector(OracleFeed.StaleUpdate.selector, NOW - 1, NOW - 1));
        feed.updateAnswer(3000e8, NOW - 1, 1);
        vm.expectRevert(abi.encodeWithSelector(OracleFeed.UpdateFromFuture.selector, NOW + 1, NOW));
        feed.updateAnswer(3000e8, NOW + 1, 1);
        vm.expectRevert(abi.encodeWithSelector(OracleFeed.NonPositiveAnswer.selector, int256(0)));
        feed.updateAnswer(0, NOW, 1);
        vm.stopPrank();
    }

    function test_LatestRoundData_RevertWhen_NoData() public {
        vm.expectRevert(abi.encodeWithSelector(OracleFeed.NoDataPresent.selector, uint80(0)));
        feed.latestRoundData();
    }

    function test_UpdateFromReport_VerifiesAndWritesRound() public {
        (IPriceReportVerifier.PriceReport memory r, bytes[] memory sigs) = signedReport(3100e8, NOW - 3);
        feed.updateFromReport(r, sigs);
        (, int256 answer,, uint256 updatedAt,) = feed.latestRoundData();
        vm.assertEq(answer, int256(3100e8), "answer");
        vm.assertEq(updatedAt, NOW - 3, "updatedAt");
        vm.assertEq(verifier.latestReport(ETH).price, int256(3100e8), "verifier stored");
    }

    function test_UpdateFromReport_RevertWhen_TooFewSignatures() public {
        (IPriceReportVerifier.PriceReport memory r,) = signedReport(3100e8, NOW);
        bytes[] memory two = signWith(keys, range(2), verifier.hashReport(r));
        vm.expectRevert(abi.encodeWithSelector(IPriceReportVerifier.InsufficientSignatures.selector, 2, 3));
        feed.updateFromReport(r, two);
    }

    function test_UpdateFromReport_RevertWhen_OtherFeed() public {
        IPriceReportVerifier.PriceReport memory r = IPriceReportVerifier.PriceReport(bytes32("BTC-USD"), 1e8, 0, NOW, 1);
        bytes[] memory sigs = signWith(keys, range(3), verifier.hashReport(r));
        vm.expectRevert(abi.encodeWithSelector(OracleFeed.FeedMismatch.selector, ETH, bytes32("BTC-USD")));
        feed.updateFromReport(r, sigs);
    }

    function test_SyncFromVerifier_PicksUpDirectSubmission() public {
        (IPriceReportVerifier.PriceReport memory r, bytes[] memory sigs) = signedReport(3200e8, NOW - 1);
        verifier.submitReport(r, sigs);
        feed.syncFromVerifier();
        (, int256 answer,,,) = feed.latestRoundData();
        vm.assertEq(answer, int256(3200e8), "answer");
        vm.expectRevert(abi.encodeWithSelector(OracleFeed.NothingNewer.selector, NOW - 1, NOW - 1));
        feed.syncFromVerifier();
    }

    function test_SetUpdater_OnlyOwner() public {
        vm.expectRevert(abi.encodeWithSelector(Ownable.OwnableUnauthorizedAccount.selector, address(this)));
        feed.setUpdater(address(this));
        vm.prank(owner);
        feed.setUpdater(address(this));
        feed.updateAnswer(1e8, NOW, 1);
        vm.assertEq(feed.updater(), address(this), "updater");
    }
}
