"""The local devnet: one fresh anvil per chain, contracts deployed deterministically.

``up`` starts an anvil for every chain of the settings with ``launch = true`` (fresh
state, interval mining at the chain's block time), deploys the collateral token and the
vault from anvil's first dev key (nonce 0 and 1, so the addresses are the same on every
chain and in every run), then the settlement layer (``deploy_settlement``): per chain a
``Mailbox`` (the devnet validator set and threshold) and a ``TokenBridge`` (minter on the
token, every other chain's bridge registered), ``vault.setSettlement``, and on the hub a
``SettlementHub`` with the sequencer address and every vault registered. It writes the
deployment to ``<state_dir>/deployment.json``.

Devnet keys: the validator, sequencer and relayer keys are derived from fixed labels
(``keccak("omniclear devnet <role> <i>")``), never anvil's funded dev keys (traders and
the deployer use those), and are recorded in the deployment so tests and the relayer can
find them. They are dev keys: anything beyond a local devnet brings its own.
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
from aggregator.eip712 import keccak
from bridges.anvil import DEV_KEYS, AnvilError, AnvilProcess, pid_alive, port_in_use, start_anvil, stop_pid
from bridges.contracts import ArtifactError, contract, deploy, ensure_built, send_tx

DEFAULT_STATE_DIR = PROJECT_ROOT / ".devnet"
DEPLOYER_KEY = DEV_KEYS[0]
GUARDIAN_KEY = DEV_KEYS[1]
DEPLOYMENT_FILE = "deployment.json"
DEFAULT_VALIDATORS = 3
DEFAULT_THRESHOLD = 2
DEFAULT_RELAYERS = 2
RELAYER_GAS_MONEY = 10**21  # 1,000 ETH per relayer key (anvil_setBalance, devnet only)


def dev_key(role: str, index: int = 0) -> str:
    """Return the deterministic devnet key for ``role`` number ``index`` (0x-hex)."""
    return "0x" + keccak(f"omniclear devnet {role} {index}".encode()).hex()


def address_of(key: str) -> str:
    return str(Account.from_key(key).address)


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
    # settlement layer ("" until deploy_settlement ran; old deployment files lack them)
    mailbox: str = ""
    token_bridge: str = ""
    settlement_hub: str = ""  # the hub chain only

    @property
    def domain(self) -> int:
        """The chain's Mailbox domain (its chain id)."""
        return self.chain_id


@dataclass
class SettlementInfo:
    """Who signs what in the settlement layer (devnet keys; see the module doc)."""

    hub_chain_id: int
    settlement_hub: str
    sequencer: str
    sequencer_key: str
    validators: list[str]
    validator_keys: list[str]
    threshold: int
    relayers: list[str]
    relayer_keys: list[str]


@dataclass
class Deployment:
    chains: list[ChainDeployment]
    deployer: str
    guardian: str
    settlement: SettlementInfo | None = None

    @property
    def hub(self) -> ChainDeployment:
        return next(c for c in self.chains if c.hub)

    def chain(self, key: str | int) -> ChainDeployment:
        for c in self.chains:
            if c.name == key or c.chain_id == key:
                return c
        raise DevnetError(f"chain {key!r} is not in the deployment")

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"deployer": self.deployer, "guardian": self.guardian,
                               "chains": [asdict(c) for c in self.chains]}
        if self.settlement is not None:
            out["settlement"] = asdict(self.settlement)
        return out

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> "Deployment":
        """Parse a deployment; files written before the settlement layer (or with keys added
        by a newer version) still load."""
        known = {f for f in ChainDeployment.__dataclass_fields__}
        chains = [ChainDeployment(**{k: v for k, v in c.items() if k in known}) for c in raw["chains"]]
        st = raw.get("settlement")
        settlement = None
        if st:
            sknown = {f for f in SettlementInfo.__dataclass_fields__}
            settlement = SettlementInfo(**{k: v for k, v in st.items() if k in sknown})
        return cls(chains=chains, deployer=raw["deployer"], guardian=raw["guardian"], settlement=settlement)

    def save(self, state_dir: Path) -> Path:
        state_dir.mkdir(parents=True, exist_ok=True)
        path = state_dir / DEPLOYMENT_FILE
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.to_json(), indent=2))
        os.replace(tmp, path)
        return path


def load_deployment(state_dir: Path = DEFAULT_STATE_DIR) -> Deployment:
    return load_deployment_file(Path(state_dir) / DEPLOYMENT_FILE)


def load_deployment_file(path: Path | str) -> Deployment:
    """Read a deployment JSON file (``<state_dir>/deployment.json``)."""
    path = Path(path)
    try:
        return Deployment.from_json(json.loads(path.read_text()))
    except FileNotFoundError:
        raise DevnetError(f"no devnet deployment at {path}: run `aggregator devnet up`") from None
    except (ValueError, KeyError, TypeError) as e:
        raise DevnetError(f"{path} is not a valid deployment: {e}") from e


def web3_for(rpc_url: str, timeout: float = 10.0) -> Web3:
    return Web3(HTTPProvider(rpc_url, request_kwargs={"timeout": timeout}))


def deploy_chain(chain: ChainConfig, rpc_url: str | None = None, *, oracle: bool = True,
                 settlement: bool = True, validators: list[str] | None = None,
                 threshold: int = DEFAULT_THRESHOLD) -> ChainDeployment:
    """Deploy the token and the vault (and, on the hub, the oracle contracts) on a running chain.

    With ``settlement`` the chain's Mailbox (``validators`` addresses, default the devnet
    validator keys, and ``threshold``) and TokenBridge are deployed too, before the oracle
    so that their addresses match on every chain; ``deploy_settlement`` links them.
    """
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
        mailbox = bridge = ""
        if settlement:
            vals = validators or [address_of(dev_key("validator", i)) for i in range(DEFAULT_VALIDATORS)]
            mailbox = deploy(w3, DEPLOYER_KEY, "Mailbox", deployer, chain.chain_id, vals, threshold)
            bridge = deploy(w3, DEPLOYER_KEY, "TokenBridge", deployer, mailbox, token, vault)
            tok = contract(w3, "CollateralToken", token)
            send_tx(w3, DEPLOYER_KEY, tok.functions.grantRole(tok.functions.MINTER_ROLE().call(), bridge)
                    .build_transaction({"from": deployer}))
    except (ArtifactError, ValueError) as e:
        raise DevnetError(f"deploying on {chain.name} failed: {e}") from e
    rec = ChainDeployment(
        name=chain.name, chain_id=chain.chain_id, rpc_url=rpc_url or chain.rpc_url, hub=chain.hub,
        confirmations=chain.confirmations, block_time=chain.block_time, token_symbol=chain.token.symbol,
        token_decimals=chain.token.decimals, token=token, vault=vault, deploy_block=start_block,
        mailbox=mailbox, token_bridge=bridge,
    )
    if chain.hub and oracle:
        from aggregator.oracle_node import deploy_devnet_oracle

        try:
            deploy_devnet_oracle(w3, rec, DEPLOYER_KEY)
        except (ArtifactError, ValueError) as e:
            raise DevnetError(f"deploying the oracle on {chain.name} failed: {e}") from e
    return rec


def _b32(address: str) -> bytes:
    return bytes(12) + bytes.fromhex(address[2:])


def deploy_settlement(records: list[ChainDeployment], *, validator_keys: list[str] | None = None,
                      threshold: int = DEFAULT_THRESHOLD, sequencer_key: str | None = None,
                      relayer_keys: list[str] | None = None) -> SettlementInfo:
    """Link the chains' Mailboxes, bridges and vaults and deploy the hub's SettlementHub.

    ``records`` come from ``deploy_chain(..., settlement=True)`` with the same validator
    set. Relayer keys get gas money (``anvil_setBalance``). Blocking; DevnetError on failure.
    """
    validator_keys = validator_keys or [dev_key("validator", i) for i in range(DEFAULT_VALIDATORS)]
    sequencer_key = sequencer_key or dev_key("sequencer")
    relayer_keys = relayer_keys or [dev_key("relayer", i) for i in range(DEFAULT_RELAYERS)]
    deployer = address_of(DEPLOYER_KEY)
    hubs = [c for c in records if c.hub]
    if len(hubs) != 1 or any(not c.mailbox or not c.token_bridge for c in records):
        raise DevnetError("deploy_settlement needs one hub and every chain's Mailbox and TokenBridge")
    hub = hubs[0]
    try:
        hw3 = web3_for(hub.rpc_url)
        hub_addr = deploy(hw3, DEPLOYER_KEY, "SettlementHub", deployer, hub.mailbox, address_of(sequencer_key))
        hub.settlement_hub = hub_addr
        for c in records:
            w3 = web3_for(c.rpc_url)
            vault = contract(w3, "CollateralVault", c.vault)
            send_tx(w3, DEPLOYER_KEY, vault.functions.setSettlement(c.mailbox, hub.chain_id, _b32(hub_addr), c.token,
                                                                    c.token_bridge).build_transaction({"from": deployer}))
            bridge = contract(w3, "TokenBridge", c.token_bridge)
            for other in records:
                if other.chain_id != c.chain_id:
                    send_tx(w3, DEPLOYER_KEY, bridge.functions.setRemoteBridge(other.chain_id, _b32(other.token_bridge))
                            .build_transaction({"from": deployer}))
            for k in [*relayer_keys, sequencer_key]:  # the sequencer may pay for its own submitBatch
                w3.provider.make_request("anvil_setBalance", [address_of(k), hex(RELAYER_GAS_MONEY)])
        hub_c = contract(hw3, "SettlementHub", hub_addr)
        for c in sorted(records, key=lambda r: r.chain_id):
            send_tx(hw3, DEPLOYER_KEY, hub_c.functions.setVault(c.chain_id, c.vault).build_transaction({"from": deployer}))
    except (ArtifactError, ValueError) as e:
        raise DevnetError(f"deploying the settlement layer failed: {e}") from e
    return SettlementInfo(
        hub_chain_id=hub.chain_id, settlement_hub=hub_addr, sequencer=address_of(sequencer_key),
        sequencer_key=sequencer_key, validators=[address_of(k) for k in validator_keys],
        validator_keys=list(validator_keys), threshold=threshold, relayers=[address_of(k) for k in relayer_keys],
        relayer_keys=list(relayer_keys),
    )


def deploy_all(settings: Settings, rpc_urls: dict[str, str] | None = None, *, oracle: bool = True,
               validators: int = DEFAULT_VALIDATORS, threshold: int = DEFAULT_THRESHOLD) -> Deployment:
    """Deploy everything (token, vault, settlement layer, hub oracle) on running chains."""
    rpc_urls = rpc_urls or {}
    vkeys = [dev_key("validator", i) for i in range(validators)]
    records = [deploy_chain(c, rpc_urls.get(c.name), oracle=oracle, validators=[address_of(k) for k in vkeys],
                            threshold=threshold) for c in settings.chains]
    info = deploy_settlement(records, validator_keys=vkeys, threshold=threshold)
    return Deployment(records, address_of(DEPLOYER_KEY), address_of(GUARDIAN_KEY), info)


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
    threshold = int(os.environ.get("OMNICLEAR_VALIDATOR_THRESHOLD", DEFAULT_THRESHOLD))
    vkeys = [dev_key("validator", i) for i in range(int(os.environ.get("OMNICLEAR_VALIDATORS", DEFAULT_VALIDATORS)))]
    log_dir = log_dir or state_dir / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    try:
        for c in settings.chains:
            proc = None
            if c.launch:
                proc = start_anvil(c.port, c.chain_id, block_time=c.block_time, host=c.host,
                                   log_path=log_dir / f"{c.name}.log", detach=detach)
                procs.append(proc)
            rec = deploy_chain(c, validators=[address_of(k) for k in vkeys], threshold=threshold)
            rec.pid = proc.pid if proc else None
            records.append(rec)
        info = deploy_settlement(records, validator_keys=vkeys, threshold=threshold)
    except (AnvilError, DevnetError) as e:
        for p in procs:
            p.stop()
        raise DevnetError(str(e)) from e
    except BaseException:
        for p in procs:
            p.stop()
        raise
    dep = Deployment(records, Account.from_key(DEPLOYER_KEY).address, Account.from_key(GUARDIAN_KEY).address, info)
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
            "mailbox": c.mailbox, "token_bridge": c.token_bridge,
            **({"settlement_hub": c.settlement_hub} if c.settlement_hub else {}),
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
