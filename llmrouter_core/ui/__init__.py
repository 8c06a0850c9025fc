"""The browser chat of ``llmrouter chat --ui``.

* :class:`ChatSession` (no UI dependency): one chat's routing, token streaming, flows, knob,
  spend and feedback, turn by turn, with typed :class:`TurnRecord` results.
* :func:`build_app` / :func:`launch_ui` (``ui`` extra, Gradio): the chat in the browser.
"""

from __future__ import annotations

from typing import Any

from llmrouter_core.ui.session import FLOWS, ChatSession, TurnRecord, TurnUpdate, describe_error

__all__ = [
    "FLOWS",
    "ChatSession",
    "TurnRecord",
    "TurnUpdate",
    "build_app",
    "describe_error",
    "launch_ui",
]


def build_app(*args: Any, **kwargs: Any) -> Any:
    """See :func:`llmrouter_core.ui.app.build_app` (imports Gradio)."""
    from llmrouter_core.ui.app import build_app as build

    return build(*args, **kwargs)


def launch_ui(*args: Any, **kwargs: Any) -> Any:
    """See :func:`llmrouter_core.ui.app.launch_ui` (imports Gradio)."""
    from llmrouter_core.ui.app import launch_ui as launch

    return launch(*args, **kwargs)
