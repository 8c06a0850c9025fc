"""Package-level guarantees: a light import, a pinned public surface, typed package."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import llmrouter_core

HEAVY = ("torch", "litellm", "langchain_core", "langgraph", "llama_index", "dspy",
         "transformers", "sklearn", "pandas", "onnxruntime", "matplotlib")


def test_import_is_light() -> None:
    code = (
        "import json, sys, llmrouter_core; "
        f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert json.loads(out.stdout) == []


def test_public_surface_is_pinned() -> None:
    assert llmrouter_core.__all__ == sorted(llmrouter_core.__all__)
    assert llmrouter_core.__all__ == [
        "BudgetPolicy", "CascadePlan", "CascadePolicy", "Composition", "CostWeightPolicy",
        "DataError", "Decision", "FanOutPlan", "FanOutPolicy", "LLMRouterError",
        "MissingExtraError", "ModelSpec", "NotFittedError", "PersistenceError", "Policy", "Pool",
        "Router", "RoutingData", "Scorer", "ThresholdPolicy", "UnknownModelError",
        "UnknownRouterError", "UtilityPolicy", "__version__", "get_router", "list_routers",
        "load_data", "load_dataset", "load_router", "make_router", "register_router",
        "replay_pool", "set_replay_data",
    ]
    for name in llmrouter_core.__all__:
        assert getattr(llmrouter_core, name) is not None


def test_py_typed_marker() -> None:
    assert (Path(llmrouter_core.__file__).parent / "py.typed").is_file()


def test_every_subpackage_is_packaged() -> None:
    import tomllib

    root = Path(llmrouter_core.__file__).parents[1]
    config = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]
    found = {
        ".".join(p.parent.relative_to(root).parts)
        for p in (root / "llmrouter_core").rglob("__init__.py")
        if "__pycache__" not in p.parts
    }
    packaged = set(config["packages"])
    assert found <= packaged
    for name, folder in config["package-dir"].items():
        assert name in packaged and (root / folder / "__init__.py").is_file()


def test_every_adapter_package_is_typed_and_ships_the_marker() -> None:
    import tomllib

    root = Path(llmrouter_core.__file__).parents[1]
    config = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]
    for name, folder in config["package-dir"].items():
        assert (root / folder / "py.typed").is_file(), f"{name} lacks py.typed"
        assert "py.typed" in config["package-data"].get(name, []), f"{name} does not ship it"
