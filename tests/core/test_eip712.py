"""EIP-712: fast digests and recovery agree with eth-account on golden vectors and random messages."""

from __future__ import annotations

import json

import pytest
from eth_account import Account
from eth_account.messages import _hash_eip191_message, encode_typed_data
from hypothesis import given, settings
from hypothesis import strategies as st

from aggregator.eip712 import (
    SECP256K1_N,
    TYPES,
    Cancel,
    Domain,
    MessageError,
    Order,
    SignatureError,
    digest,
    eip712_schema,
    keccak,
    message_from_dict,
    normalize_signature,
    recover,
    recover_raw,
    recover_signer,
    sign,
    struct_hash,
    type_hash,
    typed_data,
)
from tests.core import eip712_vectors as gv

VECTORS = json.loads(gv.VECTORS_FILE.read_text())["vectors"]
DOMAIN = gv.DOMAINS[0]
A1 = gv.address(1)


def _ints(primary: str, msg: dict) -> dict:
    types = {f["name"]: f["type"] for f in TYPES[primary]}
    return {k: int(v) if types[k].startswith("uint") else v for k, v in msg.items()}


def _eth_account_digest(v: dict) -> bytes:
    full = {
        "types": {"EIP712Domain": TYPES["EIP712Domain"], v["primaryType"]: TYPES[v["primaryType"]]},
        "primaryType": v["primaryType"],
        "domain": _ints("EIP712Domain", v["domain"]),
        "message": _ints(v["primaryType"], v["message"]),
    }
    return _hash_eip191_message(encode_typed_data(full_message=full))


def test_vectors_file_matches_generator():
    assert gv.VECTORS_FILE.read_text() == gv.render(), "run: python -m tests.core.eip712_vectors"


def test_vectors_cover_every_primary_type():
    assert {v["primaryType"] for v in VECTORS} == set(TYPES) - {"EIP712Domain"}


@pytest.mark.parametrize("v", VECTORS, ids=[v["name"] for v in VECTORS])
def test_golden_vector_fast_path_equals_eth_account(v):
    dom = Domain(int(v["domain"]["chainId"]), v["domain"]["verifyingContract"])
    msg = message_from_dict(v["primaryType"], v["message"])
    assert "0x" + dom.separator.hex() == v["domainSeparator"]
    assert "0x" + type_hash(v["primaryType"]).hex() == v["typeHash"]
    assert "0x" + struct_hash(msg).hex() == v["structHash"]
    d = digest(dom, msg)
    assert "0x" + d.hex() == v["digest"]
    assert d == _eth_account_digest(v)  # independent encoder, from the JSON alone
    sm = encode_typed_data(full_message=typed_data(dom, msg))
    assert _hash_eip191_message(sm) == d
    sig = bytes.fromhex(v["signature"][2:])
    assert sign(v["privateKey"], dom, msg) == sig  # deterministic RFC 6979
    assert Account.sign_message(sm, v["privateKey"]).signature == sig
    assert Account.from_key(v["privateKey"]).address == v["signer"]
    assert recover(d, sig) == v["signer"] == Account.recover_message(sm, signature=sig)
    assert recover_signer(dom, msg, v["signature"]) == v["signer"]


orders = st.builds(
    Order,
    account=st.binary(min_size=20, max_size=20).map(lambda b: "0x" + b.hex()),
    instrument=st.sampled_from(["ETH-PERP", "BTC-5JAN27-100000-C", "SPY-26MAR27-550d5-P", "XAU-PERP"]),
    side=st.integers(1, 2),
    order_type=st.just(1),
    time_in_force=st.integers(1, 4),
    self_trade_prevention=st.integers(1, 3),
    reduce_only=st.booleans(),
    price=st.integers(1, 2**256 - 1),
    size=st.integers(1, 2**256 - 1),
    client_order_id=st.integers(0, 2**64 - 1),
    nonce=st.integers(0, 2**64 - 1),
    expiry=st.integers(0, 2**64 - 1),
)


@settings(max_examples=60, deadline=None)
@given(orders, st.integers(1, 2**64), st.binary(min_size=20, max_size=20))
def test_random_order_digest_equals_encode_typed_data(order, chain_id, contract):
    dom = Domain(chain_id, "0x" + contract.hex())
    assert digest(dom, order) == _hash_eip191_message(encode_typed_data(full_message=typed_data(dom, order)))


@settings(max_examples=30, deadline=None)
@given(st.binary(min_size=32, max_size=32), st.integers(1, 3))
def test_random_digest_fast_recovery_equals_eth_account(d, k):
    sig = Account.unsafe_sign_hash(d, gv.key(k)).signature
    assert recover(d, sig) == Account._recover_hash(d, signature=sig) == gv.address(k)


# ---------------------------------------------------------------- malformed input

_V = VECTORS[0]
_D = bytes.fromhex(_V["digest"][2:])
_SIG = bytes.fromhex(_V["signature"][2:])
_R, _S = int.from_bytes(_SIG[:32], "big"), int.from_bytes(_SIG[32:64], "big")


def _sig(r: int, s: int, v: int) -> bytes:
    return r.to_bytes(32, "big") + s.to_bytes(32, "big") + bytes([v])


@pytest.mark.parametrize(
    ("sig", "needle"),
    [
        (_SIG[:64], "65 bytes"),
        (_SIG + b"\x00", "65 bytes"),
        (_SIG[:64] + b"\x1d", "v must be 27 or 28"),
        (_sig(0, _S, 27), "r is zero"),
        (_sig(SECP256K1_N, _S, 27), "r is zero or not below"),
        (_sig(_R, 0, 27), "s is zero"),
        (_sig(_R, SECP256K1_N - _S, 55 - _SIG[64]), "upper half"),  # the malleable twin
        ("0xzz", "not hex"),
        (12345, "bytes or hex"),
        (_sig(5, 1, 27), "does not recover"),  # r = 5 is not the x of a curve point
    ],
)
def test_malformed_signature_raises_clear_error(sig, needle):
    with pytest.raises(SignatureError, match=needle):
        recover(_D, sig)


def test_signature_v_zero_one_accepted_and_normalised():
    raw = _SIG[:64] + bytes([_SIG[64] - 27])
    assert recover(_D, raw) == _V["signer"]
    assert normalize_signature(raw) == _SIG
    assert recover(_D, "0x" + _SIG.hex()) == _V["signer"]


def test_recover_raw_returns_address_bytes():
    assert "0x" + recover_raw(_D, _SIG).hex() == _V["signer"].lower()


def test_digest_of_other_message_recovers_other_address():
    assert recover(keccak(b"other"), _SIG) != _V["signer"]


def test_bad_digest_length_raises():
    with pytest.raises(SignatureError, match="32 bytes"):
        recover(b"\x00" * 31, _SIG)


# ---------------------------------------------------------------- message values


def _order(**kw):
    base = dict(account=A1, instrument="ETH-PERP", side=1, order_type=1, time_in_force=1, self_trade_prevention=1,
                reduce_only=False, price=1, size=1, client_order_id=0, nonce=0, expiry=0)
    base.update(kw)
    return Order(**base)


@pytest.mark.parametrize(
    ("kw", "needle"),
    [
        ({"account": "0x1234"}, "address"),
        ({"account": A1.lower()[:-1] + "G"}, "address"),
        ({"account": "0x" + A1[2:].swapcase()}, "checksum"),
        ({"price": -1}, "uint256"),
        ({"nonce": 2**64}, "uint64"),
        ({"size": 1.5}, "integer"),
        ({"reduce_only": 1}, "bool"),
        ({"side": 0}, "side"),
        ({"time_in_force": 5}, "timeInForce"),
        ({"self_trade_prevention": 0}, "selfTradePrevention"),
        ({"instrument": "ETH-05DEC26-3000-C"}, "leading zero"),
        ({"size": 0}, "size must be positive"),
        ({"price": 0}, "limit order needs"),
    ],
)
def test_bad_order_value_refused(kw, needle):
    with pytest.raises(MessageError, match=needle):
        _order(**kw)


def test_market_order_price_zero_allowed():
    assert _order(order_type=2, price=0).price == 0


def test_lowercase_address_normalised_to_checksum():
    assert _order(account=A1.lower()).account == A1


def test_cancel_needs_exactly_one_id():
    with pytest.raises(MessageError, match="exactly one"):
        Cancel(A1, "ETH-PERP", 1, 2, 0, 0)
    with pytest.raises(MessageError, match="exactly one"):
        Cancel(A1, "ETH-PERP", 0, 0, 0, 0)


@pytest.mark.parametrize(
    ("primary", "data", "needle"),
    [
        ("Nope", {}, "unknown primary type"),
        ("CancelAll", {"account": A1, "instrument": "", "nonce": "1"}, "missing"),
        ("CancelAll", {"account": A1, "instrument": "", "nonce": "1", "expiry": "2", "x": 1}, "unexpected"),
        ("CancelAll", {"account": A1, "instrument": "", "nonce": "01", "expiry": "2"}, "decimal integer"),
        ("CancelAll", {"account": A1, "instrument": "", "nonce": "-1", "expiry": "2"}, "decimal integer"),
    ],
)
def test_bad_message_dict_refused(primary, data, needle):
    with pytest.raises(MessageError, match=needle):
        message_from_dict(primary, data)


def test_domain_chain_id_zero_refused():
    with pytest.raises(MessageError, match="chainId"):
        Domain(0, A1)


def test_schema_is_json_and_lists_every_type():
    schema = eip712_schema(DOMAIN)
    text = json.dumps(schema)
    assert json.loads(text)["domainSeparator"] == "0x" + DOMAIN.separator.hex()
    assert set(schema["primaryTypes"]) == {"Order", "Cancel", "CancelAll", "CancelAllAfter", "MmpConfig", "Amend", "SessionKey",
                                           "RevokeSessionKey", "Withdrawal", "TriggerOrder"}
    assert schema["domain"] == {"name": "Omniclear", "version": "1", "chainId": 31337,
                                "verifyingContract": DOMAIN.verifying_contract}
