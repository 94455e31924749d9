"""The pricing core is pure: stdlib and numpy only, no I/O, clock or randomness."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

CORE = Path(__file__).resolve().parents[2] / "aggregator" / "core"
MODULES = ["pricing.py", "svi.py", "units.py"]
ALLOWED = {"__future__", "collections", "dataclasses", "decimal", "itertools", "math",
           "numbers", "numpy", "operator", "typing"}
FORBIDDEN_NAMES = {"open", "print", "input", "time", "datetime", "random", "os", "sys",
                   "socket", "asyncio"}


def _imports(tree: ast.AST) -> set[str]:
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module.split(".")[0])
    return out


@pytest.mark.parametrize("module", MODULES)
def test_module_imports_only_stdlib_math_and_numpy(module):
    tree = ast.parse((CORE / module).read_text())
    assert _imports(tree) <= ALLOWED, _imports(tree) - ALLOWED


@pytest.mark.parametrize("module", MODULES)
def test_module_calls_no_io_clock_or_randomness(module):
    tree = ast.parse((CORE / module).read_text())
    names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    attrs = {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
    assert not (names & FORBIDDEN_NAMES), names & FORBIDDEN_NAMES
    assert "random" not in attrs
