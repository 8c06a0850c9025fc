"""The package's layering: each layer imports only from layers below it (any import, lazy ones
included), the module import graph has no cycle, and no module is over 800 lines.

The order, bottom to top, is stated in docs/architecture.md; this test is its definition.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "llmrouter_core"

#: Bottom to top. A module belongs to the first layer whose prefix matches its dotted name.
LAYERS: list[tuple[str, ...]] = [
    ("errors", "decision", "pool", "secrets", "_lazy", "_math"),
    ("data",),
    ("features",),
    ("policy",),
    ("evaluation",),
    ("training",),
    ("providers",),
    ("execution",),
    ("scoring",),
    ("cascades",),
    ("saving", "router", "registry", "persistence", "personalized"),
    ("flows",),
    ("datagen",),
    ("testing",),
    ("benchmark", "serve", "serving", "ui", "cli", "integration"),
]


def _modules() -> dict[str, Path]:
    out = {}
    for path in ROOT.rglob("*.py"):
        rel = path.relative_to(ROOT).with_suffix("")
        parts = [p for p in rel.parts if p != "__init__"]
        out[".".join(parts)] = path
    return out


MODULES = _modules()


def _layer(module: str) -> int | None:
    top = module.split(".")[0]
    for i, names in enumerate(LAYERS):
        if top in names:
            return i
    return None


def _imports(path: Path) -> list[tuple[str, bool]]:
    """``(imported llmrouter_core module, at module level)`` for every import in ``path``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    top_level = {id(n) for n in tree.body}
    guarded: set[int] = set()
    for node in tree.body:  # imports under "if TYPE_CHECKING:" are for the type checker
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            guarded.update(id(n) for n in ast.walk(node))
    out = []
    for node in ast.walk(tree):
        if id(node) in guarded:
            continue
        names: list[str] = []
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # "from package import submodule" imports the submodule, not the package's body.
            subs = [f"{node.module}.{a.name}" for a in node.names]
            known = [m for m in subs if m.removeprefix("llmrouter_core.") in MODULES]
            names = known if len(known) == len(subs) else [node.module]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        for name in names:
            if name.startswith("llmrouter_core."):
                out.append((name[len("llmrouter_core.") :], id(node) in top_level))
    return out


def test_every_module_has_a_layer() -> None:
    unplaced = [m for m in MODULES if m and _layer(m) is None]
    assert unplaced == [], f"modules outside every layer: {unplaced}"


@pytest.mark.parametrize("module", sorted(m for m in MODULES if m))
def test_no_import_of_a_higher_layer(module: str) -> None:
    own = _layer(module)
    assert own is not None
    upward = [
        target
        for target, _ in _imports(MODULES[module])
        if (layer := _layer(target)) is not None and layer > own
    ]
    assert upward == [], f"{module} (layer {own}) imports higher layers: {upward}"


def test_no_import_cycle() -> None:
    graph: dict[str, set[str]] = {m: set() for m in MODULES if m}
    for module in graph:
        for target, _ in _imports(MODULES[module]):
            # "from package import name" may name a submodule or an object of the package.
            if target in graph and target != module:
                graph[module].add(target)
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycle = [*stack[stack.index(nxt):], nxt]
                raise AssertionError(f"import cycle: {' -> '.join(cycle)}")
            if nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_module_over_800_lines(module: str) -> None:
    lines = len(MODULES[module].read_text(encoding="utf-8").splitlines())
    assert lines <= 800, f"{module or '__init__'} has {lines} lines"
