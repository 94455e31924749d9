"""Project configuration: the chains of ``chains.toml`` plus environment overrides.

Where a value comes from, in order: the ``OMNICLEAR_*`` environment variables, then the
TOML file named by ``OMNICLEAR_CHAINS`` (default: ``chains.toml`` at the project root).
The ledger's internal unit and each chain's token decimals are declared here; the ledger
never guesses a token's decimals from the chain.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from urllib.parse import urlparse

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CHAINS_FILE = PROJECT_ROOT / "chains.toml"


class ConfigError(ValueError):
    """The configuration is unusable; the message says which value and why."""


class TokenConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    symbol: str = "USDC"
    decimals: int = Field(ge=0, le=36)


class ChainConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(pattern=r"^[a-z][a-z0-9_-]{0,31}$")
    chain_id: int = Field(gt=0)
    rpc_url: str
    hub: bool = False
    launch: bool = True
    block_time: float = Field(gt=0, le=60)
    confirmations: int = Field(ge=1, le=1000)
    token: TokenConfig

    @field_validator("rpc_url")
    @classmethod
    def _http_url(cls, v: str) -> str:
        u = urlparse(v)
        if u.scheme not in ("http", "https") or not u.hostname or not u.port:
            raise ValueError(f"rpc_url must be http(s)://host:port, got {v!r}")
        return v

    @property
    def port(self) -> int:
        port = urlparse(self.rpc_url).port
        assert port is not None  # checked by the validator
        return port

    @property
    def host(self) -> str:
        return urlparse(self.rpc_url).hostname or "127.0.0.1"

    def with_port(self, port: int) -> "ChainConfig":
        """Return this chain moved to another local port (tests run on free ports)."""
        return self.model_copy(update={"rpc_url": f"http://{self.host}:{port}"})


class LedgerConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    decimals: int = Field(default=6, ge=0, le=36)


class Settings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    ledger: LedgerConfig = LedgerConfig()
    chains: tuple[ChainConfig, ...]

    @model_validator(mode="after")
    def _consistent(self) -> "Settings":
        if not self.chains:
            raise ValueError("at least one chain is required")
        names = [c.name for c in self.chains]
        ids = [c.chain_id for c in self.chains]
        if len(set(names)) != len(names):
            raise ValueError(f"chain names repeat: {names}")
        if len(set(ids)) != len(ids):
            raise ValueError(f"chain ids repeat: {ids}")
        hubs = [c.name for c in self.chains if c.hub]
        if len(hubs) != 1:
            raise ValueError(f"exactly one chain must be the hub, found {hubs or 'none'}")
        return self

    @property
    def hub(self) -> ChainConfig:
        return next(c for c in self.chains if c.hub)

    def chain(self, key: str | int) -> ChainConfig:
        """Return the chain named ``key`` or with chain id ``key``."""
        for c in self.chains:
            if c.name == key or c.chain_id == key or str(c.chain_id) == str(key):
                return c
        raise ConfigError(f"unknown chain {key!r}")

    def with_ports(self, ports: dict[str, int]) -> "Settings":
        """Return these settings with the named chains moved to the given ports."""
        chains = tuple(c.with_port(ports[c.name]) if c.name in ports else c for c in self.chains)
        return self.model_copy(update={"chains": chains})


def local_settings(*chains: tuple[str, int, int, int], hub: str | None = None, confirmations: int = 3,
                   block_time: float = 1.0, ledger_decimals: int = 6) -> Settings:
    """Build Settings for local (name, chain_id, port, token decimals) chains (tests, benchmarks)."""
    hub = hub or chains[0][0]
    return Settings.model_validate({"ledger": {"decimals": ledger_decimals}, "chains": [
        {"name": n, "chain_id": cid, "rpc_url": f"http://127.0.0.1:{port}", "hub": n == hub, "launch": False,
         "block_time": block_time, "confirmations": confirmations, "token": {"symbol": "USDC", "decimals": dec}}
        for n, cid, port, dec in chains]})


def load_settings(path: str | Path | None = None) -> Settings:
    """Load and validate ``chains.toml`` (or ``path``); raise ConfigError on any problem."""
    path = Path(path or os.environ.get("OMNICLEAR_CHAINS") or DEFAULT_CHAINS_FILE)
    try:
        raw = tomllib.loads(path.read_text())
    except FileNotFoundError as e:
        raise ConfigError(f"chains file not found: {path}") from e
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: invalid TOML: {e}") from e
    try:
        return Settings.model_validate(raw)
    except ValueError as e:
        first = str(e).splitlines()
        raise ConfigError(f"{path}: {' '.join(line.strip() for line in first[:3])}") from e


def database_url(default_path: str | Path | None = None) -> str:
    """Return the ledger database URL: ``OMNICLEAR_DB_URL`` or a SQLite file."""
    url = os.environ.get("OMNICLEAR_DB_URL")
    if url:
        return url
    p = Path(default_path or PROJECT_ROOT / ".devnet" / "omniclear.db")
    p.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{p}"
