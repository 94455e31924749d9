// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

/**
 * @title IPriceReportVerifier
 * @notice Verifies EIP-712 `PriceReport`s signed by m-of-n Omniclear oracle signers and keeps the
 * latest verified report per feed.
 *
 * The signed struct (shared with `oracles/report.py`, pinned by `test/vectors/price_report.json`):
 * `PriceReport(bytes32 feedId,int256 price,uint256 confidence,uint64 timestamp,uint8 marketStatus)`
 * - `feedId`: the feed's ASCII name left-aligned in 32 bytes, e.g. `bytes32("ETH-USD")`;
 * - `price`: int256 with 8 decimals (Chainlink-style answer), always > 0;
 * - `confidence`: uint256 with 8 decimals;
 * - `timestamp`: observation time, seconds;
 * - `marketStatus`: 1 open, 2 closed, 3 pre-market, 4 post-market, 5 halted (0 is never valid).
 * Domain: name "Omniclear Oracle", version "1", this chain's id and this contract's address.
 *
 * Invariants:
 * - a stored report was signed by at least `threshold()` distinct current signers;
 * - per feed, stored timestamps strictly increase;
 * - a stored report was no older than the feed's max age, and not from the future, when stored.
 */
interface IPriceReportVerifier {
    struct PriceReport {
        bytes32 feedId;
        int256 price;
        uint256 confidence;
        uint64 timestamp;
        uint8 marketStatus;
    }

    // ---------------------------------------------------------------- errors

    /// @notice Fewer signatures than the threshold were supplied.
    error InsufficientSignatures(uint256 provided, uint256 threshold);

    /// @notice Signature number `index` is malformed or does not recover (incl. high-s).
    error InvalidSignature(uint256 index);

    /// @notice A signature recovered to `signer`, which is not in the signer set.
    error UnknownSigner(address signer);

    /// @notice `signer` signed the same report more than once.
    error DuplicateSigner(address signer);

    /// @notice The report is older than the feed's freshness window.
    error ReportStale(bytes32 feedId, uint64 timestamp, uint256 blockTimestamp, uint64 maxAge);

    /// @notice The report's timestamp is after the current block's.
    error ReportFromFuture(bytes32 feedId, uint64 timestamp, uint256 blockTimestamp);

    /// @notice The report is not newer than the feed's latest stored report.
    error ReportNotNewer(bytes32 feedId, uint64 timestamp, uint64 latestTimestamp);

    /// @notice The report's price is zero or negative.
    error NonPositivePrice(bytes32 feedId, int256 price);

    /// @notice The report's market status is not one of the defined values (1..5).
    error InvalidMarketStatus(uint8 marketStatus);

    /// @notice The threshold is zero or larger than the number of signers.
    error InvalidThreshold(uint256 threshold, uint256 signerCount);

    /// @notice A signer in a new set is the zero address or repeated.
    error InvalidSignerSet(address signer);

    /// @notice The signer set is larger than the 256 the duplicate bitmap supports.
    error TooManySigners(uint256 count);

    /// @notice A freshness window of zero was configured.
    error InvalidMaxAge(bytes32 feedId, uint64 maxAge);

    /// @notice No report was ever stored for `feedId`.
    error NoReport(bytes32 feedId);

    // ---------------------------------------------------------------- events

    /// @notice The signer set and threshold were replaced.
    event SignersUpdated(address[] signers, uint256 threshold);

    /// @notice The freshness window of `feedId` (`bytes32(0)`: the default) was set.
    event MaxAgeUpdated(bytes32 indexed feedId, uint64 maxAge);

    /// @notice A verified report became the latest of its feed.
    event PriceReported(
        bytes32 indexed feedId, int256 price, uint256 confidence, uint64 timestamp, uint8 marketStatus
    );

    // ---------------------------------------------------------------- anyone

    /**
     * @notice Verify `report` and store it as its feed's latest.
     * @dev Reverts with the first failed check: signature count, price, market status, future,
     * staleness, monotonic timestamp, then each signature (valid, known, not repeated).
     * @param report The report.
     * @param signatures 65-byte `r || s || v` signatures over {hashReport}, in any order.
     */
    function submitReport(PriceReport calldata report, bytes[] calldata signatures) external;

    /**
     * @notice Check `report` as {submitReport} does, except the monotonic-timestamp rule, and
     * return the number of valid signatures; reverts if the report would not be accepted.
     */
    function verifyReport(PriceReport calldata report, bytes[] calldata signatures)
        external
        view
        returns (uint256 validSignatures);

    /// @notice The EIP-712 digest of `report` under this contract's domain.
    function hashReport(PriceReport calldata report) external view returns (bytes32);

    /// @notice The latest stored report of `feedId`; reverts with {NoReport} if there is none.
    function latestReport(bytes32 feedId) external view returns (PriceReport memory);

    /// @notice The latest stored timestamp of `feedId` (0 if none).
    function latestTimestamp(bytes32 feedId) external view returns (uint64);

    /// @notice The current signer set.
    function signers() external view returns (address[] memory);

    /// @notice Whether `account` is in the signer set.
    function isSigner(address account) external view returns (bool);

    /// @notice Distinct signatures required.
    function threshold() external view returns (uint256);

    /// @notice Freshness window of `feedId` in seconds (the default if none was set for it).
    function maxAge(bytes32 feedId) external view returns (uint64);

    // ---------------------------------------------------------------- owner

    /// @notice Replace the signer set and threshold. Owner only.
    function setSigners(address[] calldata newSigners, uint256 newThreshold) external;

    /// @notice Set the freshness window of `feedId` (`bytes32(0)`: the default). Owner only.
    function setMaxAge(bytes32 feedId, uint64 maxAgeSeconds) external;
}
