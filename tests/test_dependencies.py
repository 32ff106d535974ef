"""Dependencies point one way (../shared/DESIGN.md, STYLE.md): runtime/ uses nothing of
ours, smoke/ works without the local stack, and no two packages import each other."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = sorted(
    path.parent.name
    for path in ROOT.glob("*/__init__.py")
    if path.parent.name not in {"tests", "node_modules"}
)


def imported_packages(package: str) -> dict[str, str]:
    """Our other packages that `package` imports: package → one file that imports it."""
    found: dict[str, str] = {}
    for path in (ROOT / package).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules = [node.module]
            else:
                continue
            for module in modules:
                top = module.split(".")[0]
                if top in PACKAGES and top != package:
                    found.setdefault(top, str(path.relative_to(ROOT)))
    return found


GRAPH = {package: imported_packages(package) for package in PACKAGES}


def test_the_packages_are_found():
    assert {"runtime", "smoke", "local_stack", "bench"} <= set(PACKAGES)


def test_runtime_imports_nothing_of_ours():
    assert GRAPH["runtime"] == {}


@pytest.mark.parametrize("forbidden", ["local_stack", "bench"])
def test_smoke_does_not_depend_on_the_local_stack_or_the_benchmarks(forbidden):
    assert forbidden not in GRAPH["smoke"], GRAPH["smoke"][forbidden]


def test_no_two_packages_import_each_other():
    cycles = [
        f"{a} ({GRAPH[a][b]}) ↔ {b} ({GRAPH[b][a]})"
        for a in PACKAGES
        for b in GRAPH[a]
        if a < b and a in GRAPH.get(b, {})
    ]
    assert cycles == []
