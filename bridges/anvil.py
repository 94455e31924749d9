"""Local anvil chains: start, wait for, and stop one anvil process per chain.

Every anvil is started fresh (no state file), in its own process group, so stopping it
stops everything it spawned. Tests use ``free_port()`` and never the ports of
``chains.toml``; the devnet CLI uses the configured ones.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
NODE_BIN = PROJECT_ROOT / "node_modules" / ".bin"
_NATIVE = PROJECT_ROOT / "node_modules" / "@foundry-rs"

# anvil's default dev mnemonic; its first accounts are funded with 10,000 ETH each.
DEV_MNEMONIC = "test test test test test test test test test test test junk"
DEV_KEYS = (
    "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80",
    "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d",
    "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a",
    "0x7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6",
    "0x47e179ec197488593b187f80a00eb0da91f1b9d0b13f8733639f19c30a34926a",
    "0x8b3a350cf5c34c9194ca85829a2df0ec3153be0318b5e2d3348e872092edffba",
    "0x92db14e403b83dfe3df233f83dfa3a0d7096f21ca9b0d6d6b8d88b2b4ec1564e",
    "0x4bbbf85ce3377467afe5d46f804f221813b2bb87f24d81f60f1fcdbf7cbf4356",
    "0xdbda1821b80551c9d65939329250298aa3472ba22feea921c0cf5d620ea67b97",
    "0x2a871d0798f97d79848a013d4936a73bf4cc922c825d33c1cf7073dff6d409c6",
)


class AnvilError(RuntimeError):
    """An anvil could not be started or does not answer; the message is one line."""


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port that is free on ``host`` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return True
        return False


def tool_path(name: str) -> str:
    """Return the path of a Foundry binary (anvil, forge, cast) from node_modules or PATH.

    The native binary is preferred over the npm ``bin.mjs`` launcher so that a signal
    sent to the process reaches the chain itself.
    ``OMNICLEAR_<NAME>_BIN`` (e.g. ``OMNICLEAR_ANVIL_BIN``) overrides the lookup.
    """
    override = os.environ.get(f"OMNICLEAR_{name.upper()}_BIN")
    if override is not None:
        if not (os.path.isfile(override) and os.access(override, os.X_OK)):
            raise AnvilError(f"{name} not found at {override} (OMNICLEAR_{name.upper()}_BIN)")
        return override
    native = _NATIVE / f"{name}-linux-amd64" / "bin" / name
    if native.exists():
        return str(native)
    launcher = NODE_BIN / name
    if launcher.exists():
        return str(launcher)
    found = shutil.which(name)
    if found:
        return found
    raise AnvilError(f"{name} not found: run `npm ci` (it installs the pinned Foundry binaries)")


def rpc_call(url: str, method: str, params: list | None = None, timeout: float = 2.0) -> object:
    """Make one blocking JSON-RPC call; raise AnvilError on transport or RPC errors."""
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params or []}).encode()
    req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            reply = json.loads(resp.read())
    except (urllib.error.URLError, OSError, ValueError) as e:
        raise AnvilError(f"{url} does not answer {method}: {e}") from e
    if "error" in reply:
        raise AnvilError(f"{url} {method} failed: {reply['error'].get('message')}")
    return reply["result"]


@dataclass
class AnvilProcess:
    """A running anvil. ``stop()`` is idempotent."""

    pid: int
    port: int
    chain_id: int
    host: str = "127.0.0.1"
    _popen: subprocess.Popen | None = None

    @property
    def rpc_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def alive(self) -> bool:
        if self._popen is not None:
            return self._popen.poll() is None
        return pid_alive(self.pid)

    def stop(self, timeout: float = 5.0) -> None:
        stop_pid(self.pid, timeout)
        if self._popen is not None:
            try:
                self._popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                pass


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child still answers kill(0); treat it as gone.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][0] != "Z"
    except (OSError, IndexError):
        return True


def stop_pid(pid: int, timeout: float = 5.0) -> None:
    """Send SIGTERM to ``pid``'s process group, then SIGKILL after ``timeout``."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            return
        except PermissionError:
            os.kill(pid, sig)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not pid_alive(pid):
                return
            time.sleep(0.02)


def start_anvil(
    port: int,
    chain_id: int,
    block_time: float | None = None,
    host: str = "127.0.0.1",
    log_path: Path | None = None,
    accounts: int = 10,
    gas_limit: int | None = None,
    startup_timeout: float = 15.0,
    detach: bool = False,
) -> AnvilProcess:
    """Start an anvil on ``host:port`` and return once it answers ``eth_chainId``.

    ``block_time`` None means automine (a block per transaction); a number means interval
    mining. ``detach`` leaves the process running after this Python process exits (the
    devnet CLI); otherwise the caller must ``stop()`` it.
    """
    if port_in_use(port, host):
        raise AnvilError(f"port {port} is already in use on {host}")
    cmd = [
        tool_path("anvil"),
        "--host", host,
        "--port", str(port),
        "--chain-id", str(chain_id),
        "--accounts", str(accounts),
        "--mnemonic", DEV_MNEMONIC,
        "--silent",
    ]
    if block_time is not None:
        cmd += ["--block-time", f"{block_time:g}"]
    if gas_limit is not None:
        cmd += ["--gas-limit", str(gas_limit)]
    out = open(log_path, "ab") if log_path else subprocess.DEVNULL
    try:
        popen = subprocess.Popen(
            cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
        )
    except OSError as e:
        raise AnvilError(f"cannot start anvil: {e}") from e
    finally:
        if log_path:
            out.close()  # type: ignore[union-attr]
    proc = AnvilProcess(pid=popen.pid, port=port, chain_id=chain_id, host=host, _popen=None if detach else popen)
    deadline = time.monotonic() + startup_timeout
    while True:
        if popen.poll() is not None:
            raise AnvilError(f"anvil on port {port} exited with code {popen.returncode} at start")
        try:
            got = int(str(rpc_call(proc.rpc_url, "eth_chainId", timeout=0.5)), 16)
        except AnvilError:
            if time.monotonic() > deadline:
                proc.stop()
                raise AnvilError(f"anvil on port {port} did not answer within {startup_timeout:g}s") from None
            time.sleep(0.05)
            continue
        if got != chain_id:
            proc.stop()
            raise AnvilError(f"port {port} answers chain id {got}, expected {chain_id}")
        return proc
