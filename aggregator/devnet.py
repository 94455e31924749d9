"""The local devnet: one fresh anvil per chain, contracts deployed deterministically.

``up`` starts an anvil for every chain of the settings with ``launch = true`` (fresh
state, interval mining at the chain's block time), deploys the collateral token and the
vault from anvil's first dev key (nonce 0 and 1, so the addresses are the same on every
chain and in every run) and writes the deployment to ``<state_dir>/deployment.json``.
``status`` reads it back with live figures; ``down`` stops the anvils. Every failure is
a ``DevnetError`` with a one-line message.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from eth_account import Account
from web3 import Web3
from web3.providers import HTTPProvider

from aggregator.config import PROJECT_ROOT, ChainConfig, Settings
from bridges.anvil import DEV_KEYS, AnvilError, AnvilProcess, pid_alive, port_in_use, start_anvil, stop_pid
from bridges.contracts import ArtifactError, contract, deploy, ensure_built, send_tx

DEFAULT_STATE_DIR = PROJECT_ROOT / ".devnet"
DEPLOYER_KEY = DEV_KEYS[0]
GUARDIAN_KEY = DEV_KEYS[1]
DEPLOYMENT_FILE = "deployment.json"


class DevnetError(RuntimeError):
    """The devnet could not be brought up, read or stopped; the message is one line."""


@dataclass
class ChainDeployment:
    name: str
    chain_id: int
    rpc_url: str
    hub: bool
    confirmations: int
    block_time: float
    token_symbol: str
    token_decimals: int
    token: str
    vault: str
    deploy_block: int
    pid: int | None = None
    extra: dict[str, str] = field(default_factory=dict)


@dataclass
class Deployment:
    chains: list[ChainDeployment]
    deployer: str
    guardian: str

    def chain(self, key: str | int) -> ChainDeployment:
        for c in self.chains:
            if c.name == key or c.chain_id == key:
                return c
        raise DevnetError(f"chain {key!r} is not in the deployment")

    def to_json(self) -> dict[str, Any]:
        return {"deployer": self.deployer, "guardian": self.guardian, "chains": [asdict(c) for c in self.chains]}

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> "Deployment":
        return cls(chains=[ChainDeployment(**c) for c in raw["chains"]], deployer=raw["deployer"],
                   guardian=raw["guardian"])

    def save(self, state_dir: Path) -> Path:
        state_dir.mkdir(parents=True, exist_ok=True)
        path = state_dir / DEPLOYMENT_FILE
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.to_json(), indent=2))
        os.replace(tmp, path)
        return path


def load_deployment(state_dir: Path = DEFAULT_STATE_DIR) -> Deployment:
    path = Path(state_dir) / DEPLOYMENT_FILE
    try:
        return Deployment.from_json(json.loads(path.read_text()))
    except FileNotFoundError:
        raise DevnetError(f"no devnet deployment at {path}: run `aggregator devnet up`") from None
    except (ValueError, KeyError, TypeError) as e:
        raise DevnetError(f"{path} is not a valid deployment: {e}") from e


def web3_for(rpc_url: str, timeout: float = 10.0) -> Web3:
    return Web3(HTTPProvider(rpc_url, request_kwargs={"timeout": timeout}))


def deploy_chain(chain: ChainConfig, rpc_url: str | None = None, *, oracle: bool = True) -> ChainDeployment:
    """Deploy the token and the vault (and, on the hub, the oracle contracts) on a running chain."""
    w3 = web3_for(rpc_url or chain.rpc_url)
    deployer = Account.from_key(DEPLOYER_KEY).address
    guardian = Account.from_key(GUARDIAN_KEY).address
    try:
        got = w3.eth.chain_id
    except Exception as e:
        raise DevnetError(f"chain {chain.name} at {rpc_url or chain.rpc_url} does not answer: {e}") from e
    if got != chain.chain_id:
        raise DevnetError(f"chain {chain.name}: RPC answers chain id {got}, chains.toml says {chain.chain_id}")
    try:
        start_block = int(w3.eth.block_number)
        token = deploy(w3, DEPLOYER_KEY, "CollateralToken", f"USD Coin ({chain.name})", chain.token.symbol,
                       chain.token.decimals, deployer, True)
        vault = deploy(w3, DEPLOYER_KEY, "CollateralVault", deployer, guardian)
        send_tx(w3, DEPLOYER_KEY, contract(w3, "CollateralVault", vault).functions
                          .setTokenAllowed(token, True).build_transaction({"from": deployer}))
    except (ArtifactError, ValueError) as e:
        raise DevnetError(f"deploying on {chain.name} failed: {e}") from e
    rec = ChainDeployment(
        name=chain.name, chain_id=chain.chain_id, rpc_url=rpc_url or chain.rpc_url, hub=chain.hub,
        confirmations=chain.confirmations, block_time=chain.block_time, token_symbol=chain.token.symbol,
        token_decimals=chain.token.decimals, token=token, vault=vault, deploy_block=start_block,
    )
    if chain.hub and oracle:
        from aggregator.oracle_node import deploy_devnet_oracle

        try:
            deploy_devnet_oracle(w3, rec, DEPLOYER_KEY)
        except (ArtifactError, ValueError) as e:
            raise DevnetError(f"deploying the oracle on {chain.name} failed: {e}") from e
    return rec


def up(settings: Settings, state_dir: Path = DEFAULT_STATE_DIR, *, log_dir: Path | None = None,
       detach: bool = True) -> tuple[Deployment, list[AnvilProcess]]:
    """Start and deploy every launchable chain; on any failure stop what was started."""
    state_dir = Path(state_dir)
    existing = state_dir / DEPLOYMENT_FILE
    if existing.exists():
        try:
            old = load_deployment(state_dir)
        except DevnetError:
            old = None
        if old and any(c.pid and pid_alive(c.pid) for c in old.chains):
            raise DevnetError(f"a devnet is already running from {state_dir}: run `aggregator devnet down` first")
    try:
        ensure_built()
    except (ArtifactError, AnvilError) as e:
        raise DevnetError(str(e)) from e
    for c in settings.chains:
        if c.launch and port_in_use(c.port, c.host):
            raise DevnetError(f"port {c.port} for chain {c.name} is already in use")
    procs: list[AnvilProcess] = []
    records: list[ChainDeployment] = []
    log_dir = log_dir or state_dir / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    try:
        for c in settings.chains:
            proc = None
            if c.launch:
                proc = start_anvil(c.port, c.chain_id, block_time=c.block_time, host=c.host,
                                   log_path=log_dir / f"{c.name}.log", detach=detach)
                procs.append(proc)
            rec = deploy_chain(c)
            rec.pid = proc.pid if proc else None
            records.append(rec)
    except (AnvilError, DevnetError) as e:
        for p in procs:
            p.stop()
        raise DevnetError(str(e)) from e
    except BaseException:
        for p in procs:
            p.stop()
        raise
    dep = Deployment(records, Account.from_key(DEPLOYER_KEY).address, Account.from_key(GUARDIAN_KEY).address)
    dep.save(state_dir)
    return dep, procs


def down(state_dir: Path = DEFAULT_STATE_DIR) -> list[str]:
    """Stop every anvil the deployment started; return the names of the chains stopped."""
    dep = load_deployment(state_dir)
    stopped = []
    for c in dep.chains:
        if c.pid and pid_alive(c.pid):
            stop_pid(c.pid)
            stopped.append(c.name)
    (Path(state_dir) / DEPLOYMENT_FILE).unlink(missing_ok=True)
    return stopped


def vault_holdings(w3: Web3, c: ChainDeployment) -> tuple[int, int]:
    """Return (token balance held by the vault, vault's sum of settled balances)."""
    token = contract(w3, "CollateralToken", c.token)
    vault = contract(w3, "CollateralVault", c.vault)
    return int(token.functions.balanceOf(c.vault).call()), int(vault.functions.totalBalance(c.token).call())


def status(state_dir: Path = DEFAULT_STATE_DIR) -> list[dict[str, Any]]:
    """Return each chain's live status; a chain that does not answer is marked down."""
    dep = load_deployment(state_dir)
    out = []
    for c in dep.chains:
        row: dict[str, Any] = {
            "name": c.name, "chain_id": c.chain_id, "rpc_url": c.rpc_url, "hub": c.hub,
            "token": c.token, "vault": c.vault, "token_decimals": c.token_decimals, "pid": c.pid,
            **{k: v for k, v in c.extra.items()},
        }
        try:
            w3 = web3_for(c.rpc_url, timeout=2.0)
            row["head_block"] = int(w3.eth.block_number)
            held, settled = vault_holdings(w3, c)
            row["vault_holdings"] = held
            row["vault_settled_total"] = settled
            row["up"] = True
        except Exception as e:  # any failure here means "not answering"
            row["up"] = False
            row["error"] = str(e).splitlines()[0][:200] if str(e) else type(e).__name__
        out.append(row)
    return out
