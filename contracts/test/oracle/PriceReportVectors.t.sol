// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {PriceReportVerifier} from "../../src/oracle/PriceReportVerifier.sol";
import {IPriceReportVerifier} from "../../src/oracle/IPriceReportVerifier.sol";
import {OracleTestBase} from "./OracleTestBase.sol";

/**
 * @dev The vectors of `test/vectors/price_report.json`, written by `python -m oracles.vectors`
 * and checked by pytest too: the same digests and signatures verify here, so Python and
 * Solidity cannot drift apart. The verifier is deployed by the vectors' deployer at nonce 0 on
 * chain 31337, which gives the address the vectors' domain names.
 */
contract PriceReportVectorsTest is OracleTestBase {
    string internal json;
    PriceReportVerifier internal verifier;

    function setUp() public {
        json = vm.readFile(string.concat(vm.projectRoot(), "/test/vectors/price_report.json"));
        vm.chainId(vm.parseJsonUint(json, ".domain.chainId"));
        address deployer = vm.parseJsonAddress(json, ".deployer");
        vm.startPrank(deployer);
        verifier = new PriceReportVerifier(
            deployer,
            vm.parseJsonAddressArray(json, ".signerSet"),
            vm.parseJsonUint(json, ".threshold"),
            uint64(vm.parseJsonUint(json, ".maxAge"))
        );
        vm.stopPrank();
    }

    function test_Vectors_TypehashAndDomainMatch() public view {
        vm.assertEq(verifier.PRICE_REPORT_TYPEHASH(), vm.parseJsonBytes32(json, ".reportTypehash"), "typehash");
        vm.assertEq(
            keccak256(bytes(vm.parseJsonString(json, ".reportType"))), verifier.PRICE_REPORT_TYPEHASH(), "type string"
        );
        vm.assertEq(address(verifier), vm.parseJsonAddress(json, ".domain.verifyingContract"), "address");
        vm.assertEq(verifier.domainSeparator(), vm.parseJsonBytes32(json, ".domain.separator"), "separator");
    }

    function test_Vectors_DigestsMatchAndSignaturesVerify() public {
        for (uint256 i; i < 5; ++i) {
            string memory p = string.concat(".reports[", vm.toString(i), "]");
            IPriceReportVerifier.PriceReport memory r = IPriceReportVerifier.PriceReport(
                vm.parseJsonBytes32(json, string.concat(p, ".feedId")),
                vm.parseJsonInt(json, string.concat(p, ".price")),
                vm.parseJsonUint(json, string.concat(p, ".confidence")),
                uint64(vm.parseJsonUint(json, string.concat(p, ".timestamp"))),
                uint8(vm.parseJsonUint(json, string.concat(p, ".marketStatus")))
            );
            vm.assertEq(verifier.hashReport(r), vm.parseJsonBytes32(json, string.concat(p, ".digest")), "digest");
            bytes[] memory sigs = vm.parseJsonBytesArray(json, string.concat(p, ".signatures"));
            vm.warp(uint256(r.timestamp) + 1);
            vm.assertEq(verifier.verifyReport(r, sigs), sigs.length, "verify");
            verifier.submitReport(r, sigs);
            vm.assertEq(verifier.latestReport(r.feedId).price, r.price, "stored");
        }
    }
}
