"""The product's packages do not depend on the benchmarks: no module of
``signalml``, ``stream``, ``models`` or ``training`` imports ``bench``, except
the CLI's ``bench`` command, which loads it when it runs."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
RUNTIME_PACKAGES = ("signalml", "stream", "models", "training")
BENCH_COMMAND = ("signalml/cli.py", "cmd_bench")


def _is_bench(module: str | None) -> bool:
    return module is not None and (module == "bench" or module.startswith("bench."))


def bench_imports(tree: ast.AST) -> list[tuple[int, str | None]]:
    """``(line, enclosing function)`` of every import of the bench package in
    ``tree``: ``import bench...``, ``from bench... import``, and
    ``importlib.import_module`` / ``__import__`` with a literal name."""
    found = []

    def visit(node: ast.AST, function: str | None) -> None:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            function = node.name
        if isinstance(node, ast.Import) and any(_is_bench(alias.name) for alias in node.names):
            found.append((node.lineno, function))
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and _is_bench(node.module):
            found.append((node.lineno, function))
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", None)
            if name in ("import_module", "__import__") and _is_bench(str(node.args[0].value)):
                found.append((node.lineno, function))
        for child in ast.iter_child_nodes(node):
            visit(child, function)

    visit(tree, None)
    return found


def runtime_modules() -> list[Path]:
    return sorted(path for package in RUNTIME_PACKAGES for path in (REPO / package).rglob("*.py"))


def test_the_walk_covers_every_runtime_package():
    walked = {path.relative_to(REPO).parts[0] for path in runtime_modules()}
    assert walked == set(RUNTIME_PACKAGES)
    assert (REPO / "stream" / "engine.py") in runtime_modules()


def test_no_runtime_module_imports_the_bench_package():
    offenders = []
    for path in runtime_modules():
        relative = path.relative_to(REPO).as_posix()
        for line, function in bench_imports(ast.parse(path.read_text(), filename=relative)):
            if (relative, function) != BENCH_COMMAND:
                offenders.append(f"{relative}:{line}")
    assert offenders == []


def test_the_walk_finds_every_kind_of_bench_import():
    source = """
import bench
import bench.e2e as e2e
from bench.api import run
import importlib
importlib.import_module("bench.replay")
def f():
    from bench import train
from benchmarks import x
import stream.bench
"""
    assert bench_imports(ast.parse(source)) == [(2, None), (3, None), (4, None), (6, None), (8, "f")]


def test_importing_the_cli_does_not_load_the_benchmarks():
    code = ("import sys, signalml.cli, stream.engine, models.publish, training.run; "
            "print(sorted(m for m in sys.modules if m == 'bench' or m.startswith('bench.')))")
    loaded = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert loaded.stdout.strip() == "[]"
