// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {IPriceReportVerifier} from "./IPriceReportVerifier.sol";

/**
 * @title PriceReportVerifier
 * @notice Checks that an Omniclear `PriceReport` carries at least `threshold` signatures of distinct
 * known oracle signers, is fresh (not older than the feed's max age, not from the future) and is
 * newer than the feed's latest, then stores it. See {IPriceReportVerifier} for the format.
 * @dev Duplicate signers are found with a bitmap over signer indices, so signatures need no
 * particular order and the set is capped at 256 signers. Signatures are checked with OpenZeppelin
 * `ECDSA.tryRecover`, which rejects malleable (high-s) signatures.
 */
contract PriceReportVerifier is IPriceReportVerifier, EIP712, Ownable {
    /// @notice EIP-712 type hash of `PriceReport`.
    bytes32 public constant PRICE_REPORT_TYPEHASH = keccak256(
        "PriceReport(bytes32 feedId,int256 price,uint256 confidence,uint64 timestamp,uint8 marketStatus)"
    );

    /// @notice Highest defined market status (1 open, 2 closed, 3 pre, 4 post, 5 halted).
    uint8 public constant MAX_MARKET_STATUS = 5;

    address[] private _signers;
    mapping(address signer => uint256 indexPlusOne) private _signerIndex;
    uint256 private _threshold;
    uint64 private _defaultMaxAge;
    mapping(bytes32 feedId => uint64) private _maxAge;
    mapping(bytes32 feedId => PriceReport) private _latest;

    /**
     * @param initialOwner Manages the signer set and freshness windows.
     * @param initialSigners Oracle signer addresses (distinct, non-zero, at most 256).
     * @param initialThreshold Distinct signatures required (1..signers).
     * @param defaultMaxAge Freshness window in seconds for feeds without their own.
     */
    constructor(address initialOwner, address[] memory initialSigners, uint256 initialThreshold, uint64 defaultMaxAge)
        EIP712("Omniclear Oracle", "1")
        Ownable(initialOwner)
    {
        _setSigners(initialSigners, initialThreshold);
        _setMaxAge(bytes32(0), defaultMaxAge);
    }

    // ================================================================ anyone

    /// @inheritdoc IPriceReportVerifier
    function submitReport(PriceReport calldata report, bytes[] calldata signatures) external {
        // CHECKS
        _verify(report, signatures);
        uint64 latest = _latest[report.feedId].timestamp;
        if (report.timestamp <= latest) revert ReportNotNewer(report.feedId, report.timestamp, latest);
        // EFFECTS
        _latest[report.feedId] = report;
        emit PriceReported(report.feedId, report.price, report.confidence, report.timestamp, report.marketStatus);
    }

    /// @inheritdoc IPriceReportVerifier
    function verifyReport(PriceReport calldata report, bytes[] calldata signatures)
        external
        view
        returns (uint256 validSignatures)
    {
        return _verify(report, signatures);
    }

    /// @inheritdoc IPriceReportVerifier
    function hashReport(PriceReport calldata report) public view returns (bytes32) {
        return _hashTypedDataV4(
            keccak256(
                abi.encode(
                    PRICE_REPORT_TYPEHASH,
                    report.feedId,
                    report.price,
                    report.confidence,
                    report.timestamp,
                    report.marketStatus
                )
            )
        );
    }

    /// @notice The EIP-712 domain separator of this contract.
    function domainSeparator() external view returns (bytes32) {
        return _domainSeparatorV4();
    }

    /// @inheritdoc IPriceReportVerifier
    function latestReport(bytes32 feedId) external view returns (PriceReport memory report) {
        report = _latest[feedId];
        if (report.timestamp == 0) revert NoReport(feedId);
    }

    /// @inheritdoc IPriceReportVerifier
    function latestTimestamp(bytes32 feedId) external view returns (uint64) {
        return _latest[feedId].timestamp;
    }

    /// @inheritdoc IPriceReportVerifier
    function signers() external view returns (address[] memory) {
        return _signers;
    }

    /// @inheritdoc IPriceReportVerifier
    function isSigner(address account) external view returns (bool) {
        return _signerIndex[account] != 0;
    }

    /// @inheritdoc IPriceReportVerifier
    function threshold() external view returns (uint256) {
        return _threshold;
    }

    /// @inheritdoc IPriceReportVerifier
    function maxAge(bytes32 feedId) public view returns (uint64) {
        uint64 age = _maxAge[feedId];
        return age == 0 ? _defaultMaxAge : age;
    }

    // ================================================================ owner

    /// @inheritdoc IPriceReportVerifier
    function setSigners(address[] calldata newSigners, uint256 newThreshold) external onlyOwner {
        _setSigners(newSigners, newThreshold);
    }

    /// @inheritdoc IPriceReportVerifier
    function setMaxAge(bytes32 feedId, uint64 maxAgeSeconds) external onlyOwner {
        _setMaxAge(feedId, maxAgeSeconds);
    }

    // ================================================================ internal

    function _verify(PriceReport calldata report, bytes[] calldata signatures) private view returns (uint256) {
        uint256 required = _threshold;
        if (signatures.length < required) revert InsufficientSignatures(signatures.length, required);
        if (report.price <= 0) revert NonPositivePrice(report.feedId, report.price);
        if (report.marketStatus == 0 || report.marketStatus > MAX_MARKET_STATUS) {
            revert InvalidMarketStatus(report.marketStatus);
        }
        // forge-lint: disable-next-line(block-timestamp)
        if (report.timestamp > block.timestamp) {
            revert ReportFromFuture(report.feedId, report.timestamp, block.timestamp);
        }
        uint64 age = maxAge(report.feedId);
        // cannot underflow: report.timestamp <= block.timestamp was checked above
        // forge-lint: disable-next-line(block-timestamp)
        if (block.timestamp - report.timestamp > age) {
            revert ReportStale(report.feedId, report.timestamp, block.timestamp, age);
        }

        bytes32 digest = hashReport(report);
        uint256 seen; // bit i set: signer at index i has signed
        for (uint256 i; i < signatures.length; ++i) {
            (address signer, ECDSA.RecoverError err,) = ECDSA.tryRecover(digest, signatures[i]);
            if (err != ECDSA.RecoverError.NoError) revert InvalidSignature(i);
            uint256 idx = _signerIndex[signer];
            if (idx == 0) revert UnknownSigner(signer);
            // forge-lint: disable-next-line(incorrect-shift)
            uint256 bit = 1 << (idx - 1); // idx - 1 < 256: the set is capped at 256 signers
            if (seen & bit != 0) revert DuplicateSigner(signer);
            seen |= bit;
        }
        return signatures.length;
    }

    function _setSigners(address[] memory newSigners, uint256 newThreshold) private {
        if (newSigners.length > 256) revert TooManySigners(newSigners.length);
        if (newThreshold == 0 || newThreshold > newSigners.length) {
            revert InvalidThreshold(newThreshold, newSigners.length);
        }
        for (uint256 i; i < _signers.length; ++i) {
            delete _signerIndex[_signers[i]];
        }
        delete _signers;
        for (uint256 i; i < newSigners.length; ++i) {
            address s = newSigners[i];
            if (s == address(0) || _signerIndex[s] != 0) revert InvalidSignerSet(s);
            _signers.push(s);
            _signerIndex[s] = i + 1;
        }
        _threshold = newThreshold;
        emit SignersUpdated(newSigners, newThreshold);
    }

    function _setMaxAge(bytes32 feedId, uint64 maxAgeSeconds) private {
        if (feedId == bytes32(0)) {
            if (maxAgeSeconds == 0) revert InvalidMaxAge(feedId, maxAgeSeconds);
            _defaultMaxAge = maxAgeSeconds;
        } else {
            _maxAge[feedId] = maxAgeSeconds; // 0 falls back to the default
        }
        emit MaxAgeUpdated(feedId, maxAgeSeconds);
    }
}
