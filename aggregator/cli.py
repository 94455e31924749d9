"""``aggregator`` command line: devnet, service, demo (and the parts that register here).

Every expected failure prints one line ``aggregator: error: <reason>`` on stderr and exits
non-zero; a traceback means a bug.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from pathlib import Path

from aggregator.config import ConfigError, database_url, load_settings

EXIT_ERROR = 1
EXIT_USAGE = 2


class CliError(Exception):
    """An expected failure: printed as one line, exit code 1."""


def _settings(args: argparse.Namespace):
    return load_settings(getattr(args, "chains", None))


def cmd_devnet_up(args: argparse.Namespace) -> int:
    from aggregator import devnet

    settings = _settings(args)
    dep, _ = devnet.up(settings, Path(args.state_dir))
    for c in dep.chains:
        print(f"{c.name:<10} chain {c.chain_id:<6} {c.rpc_url:<24} vault {c.vault} token {c.token}")
    print(f"deployment written to {Path(args.state_dir) / devnet.DEPLOYMENT_FILE}")
    return 0


def cmd_devnet_status(args: argparse.Namespace) -> int:
    from aggregator import devnet

    rows = devnet.status(Path(args.state_dir))
    if args.json:
        print(json.dumps({"chains": rows}, indent=2))
    else:
        print(f"{'chain':<10} {'id':>6} {'rpc':<24} {'head':>7} {'vault holdings':>28}  vault / token")
        for r in rows:
            head = r.get("head_block", "down")
            held = r.get("vault_holdings", "-")
            print(f"{r['name']:<10} {r['chain_id']:>6} {r['rpc_url']:<24} {head!s:>7} {held!s:>28}  "
                  f"{r['vault']} / {r['token']}")
    return 0 if all(r["up"] for r in rows) else EXIT_ERROR


def cmd_devnet_down(args: argparse.Namespace) -> int:
    from aggregator import devnet

    stopped = devnet.down(Path(args.state_dir))
    print(f"stopped: {', '.join(stopped) if stopped else 'nothing was running'}")
    return 0


def _address(value: str | None) -> str | None:
    if value is None:
        return None
    from aggregator import eip712

    try:
        return eip712.to_checksum_address(value)
    except eip712.MessageError as e:
        raise CliError(f"not an address: {value[:60]!r} ({e})") from None


def cmd_serve(args: argparse.Namespace) -> int:
    from aggregator import devnet
    from aggregator.db import make_engine
    from aggregator.service import Service

    if args.verify_processes < 0:
        raise CliError(f"--verify-processes must be >= 0, got {args.verify_processes}")
    if args.checkpoint_every < 0:
        raise CliError(f"--checkpoint-every must be >= 0, got {args.checkpoint_every}")
    if not 0 <= args.liquidity_rebalance_bps <= 10_000:
        raise CliError(f"--liquidity-rebalance-bps must be 0..10000, got {args.liquidity_rebalance_bps}")
    settings = _settings(args)
    dep = devnet.load_deployment(Path(args.state_dir))
    engine = make_engine(args.db or database_url())
    journal = Path(args.journal) if args.journal else Path(args.state_dir) / "journal"
    svc = Service(settings, dep, engine, host=args.host, port=args.port, journal_dir=journal,
                  verify_processes=args.verify_processes, liquidity_account=_address(args.liquidity_account),
                  liquidity_rebalance_bps=args.liquidity_rebalance_bps, checkpoint_every=args.checkpoint_every)
    asyncio.run(svc.run_forever())
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from aggregator.demo import run_demo

    settings = _settings(args)
    ok = asyncio.run(run_demo(settings, report_path=Path(args.report) if args.report else None,
                              traders=args.traders, db_url=args.db))
    return 0 if ok else EXIT_ERROR


def _relayer_store(args: argparse.Namespace):
    from aggregator.db import make_engine
    from bridges.relay_store import RelayStore

    store = RelayStore(make_engine(args.db or database_url()))
    store.create_tables()
    return store


def cmd_relayer_run(args: argparse.Namespace) -> int:
    from aggregator import devnet
    from bridges.relayer import RelayerConfig, run_daemon

    dep = devnet.load_deployment_file(args.deployment)
    if dep.settlement is None:
        raise CliError(f"{args.deployment} has no settlement layer: run `aggregator devnet up` again")
    if not 0 <= args.key_index < len(dep.settlement.relayer_keys):
        raise CliError(f"--key-index must be in 0..{len(dep.settlement.relayer_keys) - 1}")
    config = RelayerConfig(lease_s=args.lease, stuck_after_s=args.stuck_after)

    def ready(port: int | None) -> None:
        print(f"relayer {dep.settlement.relayers[args.key_index]} running"
              + (f", http://{args.host}:{port}/health and /metrics" if port else ""), flush=True)

    asyncio.run(run_daemon(dep, args.db or database_url(), port=args.port, host=args.host,
                           key_index=args.key_index, owner=args.owner, config=config, ready=ready))
    return 0


def cmd_relayer_list(args: argparse.Namespace) -> int:
    from bridges.relay_store import STATUSES

    if args.status and args.status not in STATUSES:
        raise CliError(f"--status must be one of {', '.join(STATUSES)}")
    rows = _relayer_store(args).list(args.status)
    if args.json:
        print(json.dumps([{"id": r.id, "origin": r.origin, "destination": r.destination, "nonce": r.nonce,
                           "status": r.status, "reason": r.reason, "retries": r.retries, "tx_hash": r.tx_hash,
                           "dispatch_block": r.dispatch_block} for r in rows], indent=2))
        return 0
    print(f"{'id':<66} {'path':<14} {'nonce':>5} {'status':<10} {'tries':>5}  reason / tx")
    for r in rows:
        print(f"{r.id:<66} {f'{r.origin}->{r.destination}':<14} {r.nonce:>5} {r.status:<10} {r.retries:>5}  "
              f"{r.reason or r.tx_hash or ''}")
    return 0


def cmd_relayer_retry(args: argparse.Namespace) -> int:
    from bridges.relay_store import StoreError

    try:
        row = _relayer_store(args).retry(args.id)
    except StoreError as e:
        raise CliError(str(e)) from e
    print(f"{row.id} queued again ({row.status})")
    return 0


def _one_line_error(parser: argparse.ArgumentParser):
    """Make ``parser`` report bad input as the single line ``aggregator: error: ...`` (exit 2)."""

    def error(message: str):
        parser.exit(2, f"aggregator: error: {parser.prog}: {message}\n")

    parser.error = error  # type: ignore[method-assign]
    return parser


def add_relayer_parser(sub) -> None:
    """``aggregator relayer [--deployment F] [--db URL] [--port N]`` and its admin commands."""
    rl = _one_line_error(sub.add_parser("relayer",
                                        help="deliver Mailbox messages between the chains (daemon and admin)"))
    rl.add_argument("--deployment", default=".devnet/deployment.json", help="deployment JSON (default .devnet/...)")
    rl.add_argument("--db", help="database URL (default $OMNICLEAR_DB_URL or SQLite in .devnet/)")
    rl.add_argument("--port", type=int, help="serve /health and /metrics on this port")
    rl.add_argument("--host", default="127.0.0.1")
    rl.add_argument("--key-index", type=int, default=0, help="which devnet relayer key to send with (default 0)")
    rl.add_argument("--owner", help="lease owner name (default host:pid:random)")
    rl.add_argument("--lease", type=float, default=30.0, help="claim lease in seconds (default 30)")
    rl.add_argument("--stuck-after", type=float, default=5.0, help="gas-bump a tx without receipt after N s")
    rl.set_defaults(func=cmd_relayer_run)
    rsub = rl.add_subparsers(dest="relayer_command")
    ls = _one_line_error(rsub.add_parser("list", help="list relayed messages"))
    ls.add_argument("--status", help="only this status (pending, submitted, delivered, failed, dead, orphaned)")
    ls.add_argument("--db", default=argparse.SUPPRESS, help="database URL")
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(func=cmd_relayer_list)
    rt = _one_line_error(rsub.add_parser("retry", help="queue a failed or dead message again"))
    rt.add_argument("id", help="message id (0x...)")
    rt.add_argument("--db", default=argparse.SUPPRESS, help="database URL")
    rt.set_defaults(func=cmd_relayer_retry)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="aggregator", description="Omniclear: cross-chain settlement and order API")
    p.add_argument("--chains", help="chains file (default: chains.toml or $OMNICLEAR_CHAINS)")
    p.add_argument("-v", "--verbose", action="store_true", help="log at DEBUG level")
    sub = p.add_subparsers(dest="command", required=True)

    dn = sub.add_parser("devnet", help="local anvil chains with the contracts deployed")
    dsub = dn.add_subparsers(dest="devnet_command", required=True)
    for name, fn, helptext in (("up", cmd_devnet_up, "start and deploy every chain"),
                               ("status", cmd_devnet_status, "show each chain and its vault"),
                               ("down", cmd_devnet_down, "stop the chains")):
        sp = dsub.add_parser(name, help=helptext)
        sp.add_argument("--state-dir", default=".devnet", help="where the deployment is recorded (default .devnet)")
        sp.set_defaults(func=fn)
        if name == "status":
            sp.add_argument("--json", action="store_true", help="print JSON")

    sv = sub.add_parser("serve", help="run the service: vault watchers, sequencer, oracle and the HTTP API")
    sv.add_argument("--state-dir", default=".devnet")
    sv.add_argument("--journal", help="sequencer journal directory (default <state-dir>/journal)")
    sv.add_argument("--db", help="database URL (default $OMNICLEAR_DB_URL or SQLite in .devnet/)")
    sv.add_argument("--host", default="127.0.0.1")
    sv.add_argument("--port", type=int, default=8080)
    sv.add_argument("--verify-processes", type=int, default=os.cpu_count() or 1,
                    help="signature-recovery worker processes (default: cores; 0: threads in the service)")
    sv.add_argument("--liquidity-account", metavar="ADDRESS",
                    help="an account whose deposits batches may move between chains instead of bridging")
    sv.add_argument("--liquidity-rebalance-bps", type=int, default=5_000, metavar="BPS",
                    help="refill a chain of the liquidity account's once it holds less than BPS/100 %% of its part "
                         "(parts as it was funded) from its other chains (default 5000; 0: never)")
    sv.add_argument("--checkpoint-every", type=int, default=100_000, metavar="N",
                    help="sequencer checkpoint (in <journal>/checkpoints/) every N commands: a restart replays "
                         "only the journal after the newest one (default 100,000; 0: never)")
    sv.set_defaults(func=cmd_serve)

    dm = sub.add_parser("demo", help="end-to-end scenario on a fresh local devnet")
    dm.add_argument("--report", help="also write the figures as JSON to this file")
    dm.add_argument("--traders", type=int, default=6, help="number of traders (default 6)")
    dm.add_argument("--db", help="database URL (default: a fresh SQLite file)")
    dm.set_defaults(func=cmd_demo)

    add_relayer_parser(sub)
    _register_optional(sub)
    return p


def _register_optional(sub) -> None:
    """Let other parts add their sub-commands (the oracle service, the relayer)."""
    try:
        from oracles.cli import add_oracle_parser
    except ImportError:
        return
    add_oracle_parser(sub)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from aggregator.devnet import DevnetError
    from aggregator.journal import JournalError  # e.g. JournalVersionMismatch, JournalCorrupt at startup

    try:
        return int(args.func(args) or 0)
    except (CliError, ConfigError, DevnetError, JournalError) as e:
        print(f"aggregator: error: {e}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
