"""Unit normalisation and configuration validation."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aggregator.config import ConfigError, load_settings
from aggregator.units import UnitError, dust, to_internal, to_native


def test_eighteen_decimals_round_down_to_internal():
    assert to_internal(10**18 - 1, 18, 6) == 999_999
    assert to_internal(10**12 - 1, 18, 6) == 0
    assert dust(5 * 10**18 + 123, 18, 6) == 123


def test_six_decimals_convert_exactly():
    assert to_internal(1_234_567, 6, 6) == 1_234_567
    assert to_native(1_234_567, 6, 6) == 1_234_567


def test_float_amount_is_refused():
    with pytest.raises(UnitError):
        to_internal(1.5, 18, 6)  # type: ignore[arg-type]


@given(st.integers(min_value=0, max_value=10**40), st.integers(0, 30), st.integers(0, 30))
def test_round_trip_never_exceeds_the_original(native, token_dec, ledger_dec):
    back = to_native(to_internal(native, token_dec, ledger_dec), token_dec, ledger_dec)
    assert 0 <= back <= native
    assert native - back == dust(native, token_dec, ledger_dec)


@given(st.integers(min_value=0, max_value=10**30), st.integers(6, 30))
def test_internal_to_native_is_exact_when_token_has_more_decimals(internal, token_dec):
    assert to_internal(to_native(internal, token_dec, 6), token_dec, 6) == internal


def test_repository_chains_file_is_valid():
    s = load_settings()
    assert len(s.chains) >= 3
    assert s.hub.hub and sum(c.hub for c in s.chains) == 1
    assert len({c.chain_id for c in s.chains}) == len(s.chains)
    assert {c.token.decimals for c in s.chains} >= {6, 18}
    assert all(c.confirmations >= 2 and c.block_time < 1 for c in s.chains)


@pytest.mark.parametrize("body, needle", [
    ("[[chains]]\nname='a'\nchain_id=1\nrpc_url='http://127.0.0.1:1'\nblock_time=1\nconfirmations=1\n"
     "[chains.token]\ndecimals=6\n", "hub"),
    ("[[chains]]\nname='a'\nchain_id=1\nrpc_url='ftp://x'\nhub=true\nblock_time=1\nconfirmations=1\n"
     "[chains.token]\ndecimals=6\n", "rpc_url"),
    ("not toml [", "invalid TOML"),
])
def test_bad_chains_file_raises_one_clear_error(tmp_path, body, needle):
    p = tmp_path / "chains.toml"
    p.write_text(body)
    with pytest.raises(ConfigError, match=needle):
        load_settings(p)


def test_missing_chains_file_raises_config_error(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_settings(tmp_path / "nope.toml")
