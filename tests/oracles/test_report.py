"""PriceReport EIP-712 encoding, signing and verification (Python side)."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_utils import keccak

from oracles.report import (
    DuplicateSigner,
    Eip712Domain,
    InsufficientSignatures,
    InvalidSignature,
    PriceReport,
    ReportError,
    ReportFromFuture,
    ReportSigner,
    ReportStale,
    SignedPriceReport,
    UnknownSigner,
    address_of,
    feed_id,
    feed_name,
    recover_signer,
    verify_report,
)
from oracles.types import MarketStatus
from oracles.vectors import REPORTS, SIGNER_KEYS, VECTORS_PATH, build_vectors, render

DOMAIN = Eip712Domain(31337, "0x5FbDB2315678afecb367f032d93F642f64180aa3")
REPORT = REPORTS[0]


def test_vectors_file_matches_generator() -> None:
    assert VECTORS_PATH.read_text() == render(), "run `python -m oracles.vectors`"


def test_digest_matches_eth_account_typed_data() -> None:
    for r in REPORTS:
        msg = encode_typed_data(full_message=r.typed_data(DOMAIN))
        assert keccak(b"\x19" + msg.version + msg.header + msg.body) == r.digest(DOMAIN)


def test_signature_recovers_with_eth_account() -> None:
    signed = ReportSigner(SIGNER_KEYS).sign(REPORT, DOMAIN)
    for sig, who in zip(signed.signatures, signed.signers):
        msg = encode_typed_data(full_message=REPORT.typed_data(DOMAIN))
        assert Account.recover_message(msg, signature=sig) == who


def test_signatures_deterministic_golden_bytes() -> None:
    vec = build_vectors()["reports"][0]
    signed = ReportSigner(SIGNER_KEYS).sign(REPORT, DOMAIN)
    assert ["0x" + s.hex() for s in signed.signatures] == vec["signatures"]
    assert vec["digest"] == "0x" + REPORT.digest(DOMAIN).hex()


def test_feed_id_roundtrip_left_aligned() -> None:
    fid = feed_id("ETH-USD")
    assert fid == b"ETH-USD" + b"\x00" * 25 and feed_name(fid) == "ETH-USD"
    with pytest.raises(ReportError):
        feed_id("X" * 32)


@pytest.mark.parametrize("field,value", [("price", 0), ("price", -1), ("timestamp", 2**64),
                                         ("market_status", 0), ("market_status", 6), ("confidence", -1)])
def test_report_out_of_range_refused(field: str, value: int) -> None:
    with pytest.raises(ReportError):
        replace(REPORT, **{field: value})


def test_verify_threshold_met_returns_signers() -> None:
    signer = ReportSigner(SIGNER_KEYS)
    signed = signer.sign(REPORT, DOMAIN, count=3)
    assert verify_report(signed, signer.addresses, 3, now_s=REPORT.timestamp, max_age_s=60) == signer.addresses[:3]


def test_verify_too_few_signers_rejected() -> None:
    signer = ReportSigner(SIGNER_KEYS)
    with pytest.raises(InsufficientSignatures):
        verify_report(signer.sign(REPORT, DOMAIN, count=2), signer.addresses, 3)


def test_verify_duplicate_signer_rejected() -> None:
    signer = ReportSigner(SIGNER_KEYS)
    s = signer.sign(REPORT, DOMAIN, count=2)
    dup = replace(s, signatures=(s.signatures[0], s.signatures[1], s.signatures[0]))
    with pytest.raises(DuplicateSigner):
        verify_report(dup, signer.addresses, 3)


def test_verify_unknown_signer_rejected() -> None:
    signer = ReportSigner(SIGNER_KEYS)
    outsider = ReportSigner([Account.create().key])
    s = signer.sign(REPORT, DOMAIN, count=2)
    bad = replace(s, signatures=s.signatures + outsider.sign(REPORT, DOMAIN).signatures)
    with pytest.raises(UnknownSigner):
        verify_report(bad, signer.addresses, 3)


def test_verify_stale_and_future_rejected() -> None:
    signer = ReportSigner(SIGNER_KEYS)
    s = signer.sign(REPORT, DOMAIN)
    with pytest.raises(ReportStale):
        verify_report(s, signer.addresses, 3, now_s=REPORT.timestamp + 61, max_age_s=60)
    with pytest.raises(ReportFromFuture):
        verify_report(s, signer.addresses, 3, now_s=REPORT.timestamp - 1, max_age_s=60)


def test_other_domain_signature_recovers_other_address() -> None:
    signer = ReportSigner(SIGNER_KEYS)
    s = signer.sign(REPORT, Eip712Domain(31338, DOMAIN.verifying_contract))
    with pytest.raises(UnknownSigner):
        verify_report(replace(s, domain=DOMAIN), signer.addresses, 3)


def test_high_s_signature_rejected() -> None:
    n = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
    sig = ReportSigner(SIGNER_KEYS[:1]).sign(REPORT, DOMAIN).signatures[0]
    s = int.from_bytes(sig[32:64], "big")
    flipped = sig[:32] + (n - s).to_bytes(32, "big") + bytes([55 - sig[64]])
    with pytest.raises(InvalidSignature):
        recover_signer(REPORT.digest(DOMAIN), flipped)


def test_signed_report_json_roundtrip() -> None:
    s = ReportSigner(SIGNER_KEYS).sign(REPORT, DOMAIN)
    back = SignedPriceReport.from_dict(json.loads(json.dumps(s.to_dict())))
    assert back == s and back.digest == s.digest


def test_address_of_matches_eth_account() -> None:
    assert address_of(SIGNER_KEYS[0]) == Account.from_key(SIGNER_KEYS[0]).address


def test_market_status_zero_never_signed() -> None:
    assert MarketStatus.UNKNOWN == 0
    with pytest.raises(ReportError):
        PriceReport(feed_id("ETH-USD"), 1, 0, 1, 0)
