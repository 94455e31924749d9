// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {PriceReportVerifier} from "../../src/oracle/PriceReportVerifier.sol";
import {IPriceReportVerifier} from "../../src/oracle/IPriceReportVerifier.sol";
import {OracleTestBase} from "./OracleTestBase.sol";

contract PriceReportVerifierTest is OracleTestBase {
    PriceReportVerifier internal verifier;
    uint256[] internal keys;
    address internal owner = address(0xA11CE);
    uint64 internal constant NOW = 1_750_000_100;
    bytes32 internal constant ETH = bytes32("ETH-USD");

    event PriceReported(
        bytes32 indexed feedId, int256 price, uint256 confidence, uint64 timestamp, uint8 marketStatus
    );

    function setUp() public {
        vm.warp(NOW);
        keys = signerKeys();
        verifier = new PriceReportVerifier(owner, addresses(keys), 3, 3600);
    }

    function report(int256 price, uint64 ts) internal pure returns (IPriceReportVerifier.PriceReport memory) {
        return IPriceReportVerifier.PriceReport(ETH, price, 1e8, ts, 1);
    }

    function signed(IPriceReportVerifier.PriceReport memory r, uint256 n) internal view returns (bytes[] memory) {
        return signWith(keys, range(n), verifier.hashReport(r));
    }

    // ------------------------------------------------------------ happy path

    function test_SubmitReport_StoresLatestAndEmits() public {
        IPriceReportVerifier.PriceReport memory r = report(3000e8, NOW - 5);
        vm.expectEmit(true, false, false, true, address(verifier));
        emit PriceReported(ETH, 3000e8, 1e8, NOW - 5, 1);
        verifier.submitReport(r, signed(r, 3));
        IPriceReportVerifier.PriceReport memory got = verifier.latestReport(ETH);
        vm.assertEq(got.price, int256(3000e8), "price");
        vm.assertEq(uint256(got.timestamp), uint256(NOW - 5), "timestamp");
        vm.assertEq(uint256(verifier.latestTimestamp(ETH)), uint256(NOW - 5), "latestTimestamp");
    }

    function test_SubmitReport_AllFiveSignersInAnyOrder() public {
        IPriceReportVerifier.PriceReport memory r = report(3000e8, NOW);
        uint256[] memory idx = new uint256[](5);
        (idx[0], idx[1], idx[2], idx[3], idx[4]) = (4, 2, 0, 3, 1);
        verifier.submitReport(r, signWith(keys, idx, verifier.hashReport(r)));
        vm.assertEq(verifier.verifyReport(r, signWith(keys, idx, verifier.hashReport(r))), 5, "count");
    }

    function test_LatestReport_RevertWhen_NoReport() public {
        vm.expectRevert(abi.encodeWithSelector(IPriceReportVerifier.NoReport.selector, ETH));
        verifier.latestReport(ETH);
    }

    // ------------------------------------------------------------ rejections

    function test_RevertWhen_TooFewSignatures() public {
        IPriceReportVerifier.PriceReport memory r = report(3000e8, NOW);
        bytes[] memory sigs = signed(r, 2);
        vm.expectRevert(abi.encodeWithSelector(IPriceReportVerifier.InsufficientSignatures.selector, 2, 3));
        verifier.submitReport(r, sigs);
    }

    function test_RevertWhen_DuplicateSigner() public {
        IPriceReportVerifier.PriceReport memory r = report(3000e8, NOW);
        uint256[] memory idx = new uint256[](3);
        (idx[0], idx[1], idx[2]) = (0, 1, 0);
        bytes[] memory sigs = signWith(keys, idx, verifier.hashReport(r));
        vm.expectRevert(abi.encodeWithSelector(IPriceReportVerifier.DuplicateSigner.selector, vm.addr(keys[0])));
        verifier.submitReport(r, sigs);
    }

    function test_RevertWhen_UnknownSigner() public {
        IPriceReportVerifier.PriceReport memory r = report(3000e8, NOW);
        bytes[] memory sigs = signed(r, 3);
        uint256 outsider = 0xBEEF;
        sigs[1] = signDigest(outsider, verifier.hashReport(r));
        vm.expectRevert(abi.encodeWithSelector(IPriceReportVerifier.UnknownSigner.selector, vm.addr(outsider)));
        verifier.submitReport(r, sigs);
    }

    function test_RevertWhen_Stale() public {
        IPriceReportVerifier.PriceReport memory r = report(3000e8, NOW - 3601);
        bytes[] memory sigs = signed(r, 3);
        vm.expectRevert(
            abi.encodeWithSelector(IPriceReportVerifier.ReportStale.selector, ETH, NOW - 3601, NOW, uint64(3600))
        );
        verifier.submitReport(r, sigs);
    }

    function test_RevertWhen_FromFuture() public {
        IPriceReportVerifier.PriceReport memory r = report(3000e8, NOW + 1);
        bytes[] memory sigs = signed(r, 3);
        vm.expectRevert(abi.encodeWithSelector(IPriceReportVerifier.ReportFromFuture.selector, ETH, NOW + 1, NOW));
        verifier.submitReport(r, sigs);
    }

    function test_RevertWhen_NotNewer() public {
        IPriceReportVerifier.PriceReport memory r = report(3000e8, NOW - 10);
        verifier.submitReport(r, signed(r, 3));
        IPriceReportVerifier.PriceReport memory same = report(3001e8, NOW - 10);
        bytes[] memory sigs = signed(same, 3);
        vm.expectRevert(
            abi.encodeWithSelector(IPriceReportVerifier.ReportNotNewer.selector, ETH, NOW - 10, NOW - 10)
        );
        verifier.submitReport(same, sigs);
        IPriceReportVerifier.PriceReport memory older = report(3001e8, NOW - 11);
        sigs = signed(older, 3);
        vm.expectRevert(
            abi.encodeWithSelector(IPriceReportVerifier.ReportNotNewer.selector, ETH, NOW - 11, NOW - 10)
        );
        verifier.submitReport(older, sigs);
    }

    function test_RevertWhen_ReplayedReport() public {
        IPriceReportVerifier.PriceReport memory r = report(3000e8, NOW - 10);
        bytes[] memory sigs = signed(r, 3);
        verifier.submitReport(r, sigs);
        vm.expectRevert(abi.encodeWithSelector(IPriceReportVerifier.ReportNotNewer.selector, ETH, NOW - 10, NOW - 10));
        verifier.submitReport(r, sigs);
    }

    function test_RevertWhen_NonPositivePrice() public {
        IPriceReportVerifier.PriceReport memory r = report(0, NOW);
        bytes[] memory sigs = signed(r, 3);
        vm.expectRevert(abi.encodeWithSelector(IPriceReportVerifier.NonPositivePrice.selector, ETH, int256(0)));
        verifier.submitReport(r, sigs);
        r = report(-1, NOW);
        sigs = signed(r, 3);
        vm.expectRevert(abi.encodeWithSelector(IPriceReportVerifier.NonPositivePrice.selector, ETH, int256(-1)));
        verifier.submitReport(r, sigs);
    }

    function test_RevertWhen_InvalidMarketStatus() public {
        IPriceReportVerifier.PriceReport memory r = report(3000e8, NOW);
        r.marketStatus = 6;
        bytes[] memory sigs = signed(r, 3);
        vm.expectRevert(abi.encodeWithSelector(IPriceReportVerifier.InvalidMarketStatus.selector, uint8(6)));
        verifier.submitReport(r, sigs);
    }

    function test_RevertWhen_MalformedSignature() public {
        IPriceReportVerifier.PriceReport memory r = report(3000e8, NOW);
        bytes[] memory sigs = signed(r, 3);
        sigs[2] = hex"1234";
        vm.expectRevert(abi.encodeWithSelector(IPriceReportVerifier.InvalidSignature.selector, 2));
        verifier.submitReport(r, sigs);
    }

    function test_RevertWhen_HighSSignature() public {
        IPriceReportVerifier.PriceReport memory r = report(3000e8, NOW);
        bytes32 digest = verifier.hashReport(r);
        (uint8 v, bytes32 rr, bytes32 s) = vm.sign(keys[0], digest);
        uint256 n = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141;
        bytes[] memory sigs = signed(r, 3);
        sigs[0] = abi.encodePacked(rr, bytes32(n - uint256(s)), v == 27 ? uint8(28) : uint8(27));
        vm.expectRevert(abi.encodeWithSelector(IPriceReportVerifier.InvalidSignature.selector, 0));
        verifier.submitReport(r, sigs);
    }

    function test_RevertWhen_SignedForOtherChain() public {
        IPriceReportVerifier.PriceReport memory r = report(3000e8, NOW);
        vm.chainId(31338);
        bytes[] memory sigs = signed(r, 3); // digest under chain 31338
        vm.chainId(31337);
        vm.expectRevert(); // recovers to some unknown address
        verifier.submitReport(r, sigs);
    }

    // ------------------------------------------------------------ freshness per feed

    function test_SetMaxAge_PerFeedWindowApplies() public {
        bytes32 nav = bytes32("TBILL-NAV");
        vm.prank(owner);
        verifier.setMaxAge(nav, 180_000);
        IPriceReportVerifier.PriceReport memory r = IPriceReportVerifier.PriceReport(nav, 1.04e8, 0, NOW - 90_000, 1);
        verifier.submitReport(r, signed(r, 3));
        vm.assertEq(uint256(verifier.maxAge(nav)), 180_000, "nav window");
        vm.assertEq(uint256(verifier.maxAge(ETH)), 3600, "default window");
    }

    // ------------------------------------------------------------ signer set

    function test_SetSigners_RotatesSetAndRejectsOldSigner() public {
        address[] memory next = new address[](2);
        next[0] = vm.addr(keys[3]);
        next[1] = vm.addr(keys[4]);
        vm.prank(owner);
        verifier.setSigners(next, 2);
        vm.assertTrue(!verifier.isSigner(vm.addr(keys[0])), "old signer kept");
        IPriceReportVerifier.PriceReport memory r = report(3000e8, NOW);
        uint256[] memory idx = new uint256[](2);
        (idx[0], idx[1]) = (0, 4);
        bytes[] memory sigs = signWith(keys, idx, verifier.hashReport(r));
        vm.expectRevert(abi.encodeWithSelector(IPriceReportVerifier.UnknownSigner.selector, vm.addr(keys[0])));
        verifier.submitReport(r, sigs);
        (idx[0], idx[1]) = (3, 4);
        verifier.submitReport(r, signWith(keys, idx, verifier.hashReport(r)));
    }

    function test_SetSigners_RevertWhen_NotOwner() public {
        vm.expectRevert(abi.encodeWithSelector(Ownable.OwnableUnauthorizedAccount.selector, address(this)));
        verifier.setSigners(addresses(keys), 2);
    }

    function test_SetSigners_RevertWhen_InvalidThreshold() public {
        address[] memory s = addresses(keys);
        vm.startPrank(owner);
        vm.expectRevert(abi.encodeWithSelector(IPriceReportVerifier.InvalidThreshold.selector, 6, 5));
        verifier.setSigners(s, 6);
        vm.expectRevert(abi.encodeWithSelector(IPriceReportVerifier.InvalidThreshold.selector, 0, 5));
        verifier.setSigners(s, 0);
        s[1] = s[0];
        vm.expectRevert(abi.encodeWithSelector(IPriceReportVerifier.InvalidSignerSet.selector, s[0]));
        verifier.setSigners(s, 2);
        vm.stopPrank();
    }

    // ------------------------------------------------------------ fuzz

    function testFuzz_AnyThresholdSubsetAccepted(uint256 seed, int256 price, uint64 age) public {
        price = int256(bound(uint256(price), 1, uint256(type(int256).max)));
        age = uint64(bound(age, 0, 3600));
        IPriceReportVerifier.PriceReport memory r = report(price, NOW - age);
        // pick 3 distinct indices out of 5 from the seed
        uint256[] memory idx = new uint256[](3);
        uint256 used;
        for (uint256 i; i < 3; ++i) {
            uint256 j = uint256(keccak256(abi.encode(seed, i))) % 5;
            while (used & (1 << j) != 0) j = (j + 1) % 5;
            used |= 1 << j;
            idx[i] = j;
        }
        verifier.submitReport(r, signWith(keys, idx, verifier.hashReport(r)));
        vm.assertEq(verifier.latestReport(ETH).price, price, "stored price");
    }

    function bound(uint256 x, uint256 lo, uint256 hi) internal pure returns (uint256) {
        if (x >= lo && x <= hi) return x;
        return lo + (x % (hi - lo + 1));
    }
}
