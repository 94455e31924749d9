"""The pure core imports nothing that does I/O, reads a clock, draws randomness or runs asyncio."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

CORE = Path(__file__).resolve().parents[2] / "aggregator" / "core"
FORBIDDEN = {"web3", "aiohttp", "sqlmodel", "sqlalchemy", "asyncio", "random", "time", "socket", "os",
             "subprocess", "threading", "secrets", "requests", "pathlib", "io", "uuid"}


@pytest.mark.parametrize("path", sorted(CORE.glob("*.py")), ids=lambda p: p.name)
def test_core_module_imports_nothing_impure(path):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        for n in names:
            assert n.split(".")[0] not in FORBIDDEN, f"{path.name} imports {n}"
        if isinstance(node, ast.Attribute) and node.attr in ("now", "utcnow", "today", "time_ns", "monotonic"):
            pytest.fail(f"{path.name} reads a clock: .{node.attr}")
        if isinstance(node, ast.Name) and node.id == "open":
            pytest.fail(f"{path.name} opens a file")


def test_importing_core_loads_no_web3_aiohttp_sqlmodel():
    code = ("import sys, aggregator.core.matching, aggregator.core.instruments, aggregator.core.nonces; "
            "bad = [m for m in ('web3', 'aiohttp', 'sqlmodel', 'asyncio') if m in sys.modules]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=CORE.parents[1])
