"""Package-level guarantees of langchain_llmrouter: a light import and a pinned surface."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import langchain_llmrouter

HEAVY = ("langgraph", "langchain", "litellm", "torch", "transformers", "llama_cpp")


def test_import_loads_neither_langgraph_nor_litellm() -> None:
    code = (
        "import json, sys, langchain_llmrouter; "
        f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    )
    package_dir = str(Path(langchain_llmrouter.__file__).parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([package_dir, *sys.path])}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    )
    assert json.loads(out.stdout) == []


def test_public_surface_is_pinned() -> None:
    assert langchain_llmrouter.__all__ == sorted(langchain_llmrouter.__all__)
    assert langchain_llmrouter.__all__ == [
        "AgenticState",
        "FanOutState",
        "MultiRoundState",
        "RoutedChatModel",
        "RouterState",
        "RoutingMiddleware",
        "__version__",
        "create_agentic_graph",
        "create_fanout_nodes",
        "create_model_node",
        "create_multiround_graph",
        "create_router_node",
        "flow_result",
    ]
    for name in langchain_llmrouter.__all__:
        assert getattr(langchain_llmrouter, name) is not None


def test_py_typed_marker() -> None:
    assert (Path(langchain_llmrouter.__file__).parent / "py.typed").is_file()
