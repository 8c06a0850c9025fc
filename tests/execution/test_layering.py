"""The execution layer imports only from the layers below it (wherever the import sits, at the
top of a module or inside a function)."""

from __future__ import annotations

import ast
from pathlib import Path

import llmrouter_core.execution

ALLOWED = {
    "errors",
    "decision",
    "pool",
    "secrets",
    "_lazy",
    "data",
    "features",
    "providers",
    "execution",
}
MAX_LINES = 800


def _imported(tree: ast.AST) -> set[str]:
    """The ``llmrouter_core`` subpackages or modules a module imports."""
    out: set[str] = set()
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
            if node.module == "llmrouter_core":
                names = [f"llmrouter_core.{a.name}" for a in node.names]
        for name in names:
            head, _, rest = name.partition(".")
            if head == "llmrouter_core":
                out.add(rest.partition(".")[0] or "<package>")
    return out


def test_execution_imports_only_lower_layers() -> None:
    root = Path(llmrouter_core.execution.__file__).parent
    found = {}
    for path in sorted(root.glob("*.py")):
        bad = _imported(ast.parse(path.read_text())) - ALLOWED
        if bad:
            found[path.name] = sorted(bad)
    assert found == {}


def test_no_execution_module_is_over_800_lines() -> None:
    root = Path(llmrouter_core.execution.__file__).parent
    sizes = {p.name: len(p.read_text().splitlines()) for p in root.glob("*.py")}
    assert {n: k for n, k in sizes.items() if k > MAX_LINES} == {}
