// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {IPriceReportVerifier} from "./IPriceReportVerifier.sol";

/// @notice Chainlink's AggregatorV3Interface, the read API every consumer already knows.
interface AggregatorV3Interface {
    function decimals() external view returns (uint8);
    function description() external view returns (string memory);
    function version() external view returns (uint256);
    function getRoundData(uint80 roundId)
        external
        view
        returns (uint80 roundId_, int256 answer, uint256 startedAt, uint256 updatedAt, uint80 answeredInRound);
    function latestRoundData()
        external
        view
        returns (uint80 roundId, int256 answer, uint256 startedAt, uint256 updatedAt, uint80 answeredInRound);
}

/**
 * @title OracleFeed
 * @notice A Chainlink-style price feed (8 decimals) for one Omniclear feed id. A new round comes
 * either from the authorised updater ({updateAnswer}) or, from anyone, out of a report that the
 * {PriceReportVerifier} accepted ({updateFromReport}, {syncFromVerifier}).
 * @dev Invariants: round ids start at 1 and increase by one; `updatedAt` strictly increases; every
 * answer is > 0 and `updatedAt` is never after the block it was written in.
 */
contract OracleFeed is AggregatorV3Interface, Ownable {
    struct Round {
        int256 answer;
        uint64 updatedAt;
        uint8 marketStatus;
    }

    /// @notice The caller is not the authorised updater.
    error NotUpdater(address caller);
    /// @notice The answer is zero or negative.
    error NonPositiveAnswer(int256 answer);
    /// @notice `updatedAt` is not after the latest round's.
    error StaleUpdate(uint64 updatedAt, uint64 latestUpdatedAt);
    /// @notice `updatedAt` is after the current block.
    error UpdateFromFuture(uint64 updatedAt, uint256 blockTimestamp);
    /// @notice The report belongs to another feed.
    error FeedMismatch(bytes32 expected, bytes32 got);
    /// @notice The market status is not one of 1..5.
    error InvalidMarketStatus(uint8 marketStatus);
    /// @notice No round exists (yet) with this id.
    error NoDataPresent(uint80 roundId);
    /// @notice The verifier holds nothing newer than the latest round.
    error NothingNewer(uint64 verifierTimestamp, uint64 latestUpdatedAt);

    /// @notice Chainlink's round event.
    event AnswerUpdated(int256 indexed current, uint256 indexed roundId, uint256 updatedAt);
    /// @notice Chainlink's new-round event.
    event NewRound(uint256 indexed roundId, address indexed startedBy, uint256 startedAt);
    /// @notice The authorised updater changed.
    event UpdaterChanged(address indexed previous, address indexed current);

    /// @notice The verifier whose reports this feed accepts.
    IPriceReportVerifier public immutable verifier;
    /// @notice The feed id (e.g. `bytes32("ETH-USD")`) this feed follows.
    bytes32 public immutable feedId;

    string private _description;
    address private _updater;
    uint80 private _latestRound;
    mapping(uint80 roundId => Round) private _rounds;

    /**
     * @param initialOwner May change the updater.
     * @param initialUpdater May write answers directly (the oracle process key).
     * @param verifier_ The {PriceReportVerifier} of this chain.
     * @param feedId_ The feed id followed.
     * @param description_ Human-readable name, e.g. "ETH / USD".
     */
    constructor(
        address initialOwner,
        address initialUpdater,
        IPriceReportVerifier verifier_,
        bytes32 feedId_,
        string memory description_
    ) Ownable(initialOwner) {
        verifier = verifier_;
        feedId = feedId_;
        _description = description_;
        _updater = initialUpdater;
        emit UpdaterChanged(address(0), initialUpdater);
    }

    // ================================================================ updater

    /**
     * @notice Write a new round. Updater only.
     * @param answer Price with 8 decimals, > 0.
     * @param updatedAt Observation time in seconds, after the latest round's, not in the future.
     * @param marketStatus 1 open, 2 closed, 3 pre-market, 4 post-market, 5 halted.
     */
    function updateAnswer(int256 answer, uint64 updatedAt, uint8 marketStatus) external {
        if (msg.sender != _updater) revert NotUpdater(msg.sender);
        // forge-lint: disable-next-line(block-timestamp)
        if (updatedAt > block.timestamp) revert UpdateFromFuture(updatedAt, block.timestamp);
        _record(answer, updatedAt, marketStatus);
    }

    // ================================================================ anyone

    /**
     * @notice Submit `report` to the verifier (which checks signatures, freshness and order) and
     * record it as a new round.
     */
    function updateFromReport(IPriceReportVerifier.PriceReport calldata report, bytes[] calldata signatures)
        external
    {
        if (report.feedId != feedId) revert FeedMismatch(feedId, report.feedId);
        verifier.submitReport(report, signatures);
        _record(report.price, report.timestamp, report.marketStatus);
    }

    /// @notice Record the verifier's latest report of this feed if it is newer than the latest round.
    function syncFromVerifier() external {
        IPriceReportVerifier.PriceReport memory report = verifier.latestReport(feedId);
        uint64 latest = _rounds[_latestRound].updatedAt;
        if (report.timestamp <= latest) revert NothingNewer(report.timestamp, latest);
        _record(report.price, report.timestamp, report.marketStatus);
    }

    // ================================================================ owner

    /// @notice Change the authorised updater. Owner only.
    function setUpdater(address newUpdater) external onlyOwner {
        emit UpdaterChanged(_updater, newUpdater);
        _updater = newUpdater;
    }

    // ================================================================ views

    /// @notice The authorised updater.
    function updater() external view returns (address) {
        return _updater;
    }

    /// @inheritdoc AggregatorV3Interface
    function decimals() external pure returns (uint8) {
        return 8;
    }

    /// @inheritdoc AggregatorV3Interface
    function description() external view returns (string memory) {
        return _description;
    }

    /// @inheritdoc AggregatorV3Interface
    function version() external pure returns (uint256) {
        return 1;
    }

    /// @notice The market status of the latest round (0 if there is none).
    function latestMarketStatus() external view returns (uint8) {
        return _rounds[_latestRound].marketStatus;
    }

    /// @notice The latest round id (0 if there is none).
    function latestRound() external view returns (uint80) {
        return _latestRound;
    }

    /// @inheritdoc AggregatorV3Interface
    function getRoundData(uint80 roundId)
        public
        view
        returns (uint80 roundId_, int256 answer, uint256 startedAt, uint256 updatedAt, uint80 answeredInRound)
    {
        Round memory r = _rounds[roundId];
        if (r.updatedAt == 0) revert NoDataPresent(roundId);
        // startedAt == updatedAt: a round is one observation, not a multi-block aggregation
        return (roundId, r.answer, r.updatedAt, r.updatedAt, roundId);
    }

    /// @inheritdoc AggregatorV3Interface
    function latestRoundData()
        external
        view
        returns (uint80 roundId, int256 answer, uint256 startedAt, uint256 updatedAt, uint80 answeredInRound)
    {
        return getRoundData(_latestRound);
    }

    // ================================================================ internal

    function _record(int256 answer, uint64 updatedAt, uint8 marketStatus) private {
        if (answer <= 0) revert NonPositiveAnswer(answer);
        if (marketStatus == 0 || marketStatus > 5) revert InvalidMarketStatus(marketStatus);
        uint64 latest = _rounds[_latestRound].updatedAt;
        if (updatedAt <= latest) revert StaleUpdate(updatedAt, latest);
        uint80 id = _latestRound + 1;
        _latestRound = id;
        _rounds[id] = Round(answer, updatedAt, marketStatus);
        emit NewRound(id, msg.sender, block.timestamp);
        emit AnswerUpdated(answer, id, updatedAt);
    }
}
