"""Multi-turn context for chat: which earlier turns go with the next query.

Three context modes, as LLMRouter's chat offers them:

* ``current_only``: only the current query (each turn is routed and answered on its own);
* ``full_context``: the whole conversation so far;
* ``retrieval``: the ``top_k`` earlier turns whose queries are most similar to the current
  one (TF-IDF cosine), in their original order.

The selected context is both what the router reads and what the model receives.

Example:
    >>> conv = Conversation("full_context")
    >>> conv.add("What is 2+2?", "4")
    >>> [m["role"] for m in conv.messages_for("And times 3?")]
    ['user', 'assistant', 'user']
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np

from llmrouter_core.execution._support import Message, content_text

__all__ = ["CONTEXT_MODES", "ContextMode", "Conversation", "parse_context_mode"]

ContextMode = Literal["current_only", "full_context", "retrieval"]
CONTEXT_MODES: tuple[ContextMode, ...] = ("current_only", "full_context", "retrieval")
_ALIASES: dict[str, ContextMode] = {
    "current": "current_only",
    "current_only": "current_only",
    "current-only": "current_only",
    "full": "full_context",
    "full_context": "full_context",
    "full-context": "full_context",
    "retrieval": "retrieval",
    "retrieve": "retrieval",
}


def parse_context_mode(mode: str) -> ContextMode:
    """The context mode named ``mode`` (``current``/``full``/``retrieval`` also accepted)."""
    key = mode.strip().lower()
    if key not in _ALIASES:
        raise ValueError(
            f"unknown context mode {mode!r}; choose one of: {', '.join(CONTEXT_MODES)}"
        )
    return _ALIASES[key]


class Conversation:
    """The turns of a chat and the context mode that selects among them.

    Args:
        mode: ``"current_only"``, ``"full_context"`` or ``"retrieval"``.
        top_k: Earlier turns kept in retrieval mode.
        system: Optional system prompt sent with every request.
    """

    def __init__(
        self, mode: str = "current_only", *, top_k: int = 3, system: str | None = None
    ) -> None:
        if top_k < 1:
            raise ValueError("top_k must be >= 1")
        self.mode: ContextMode = parse_context_mode(mode)
        self.top_k = top_k
        self.system = system
        self.turns: list[tuple[str, str]] = []

    def __repr__(self) -> str:
        return f"Conversation(mode={self.mode!r}, turns={len(self.turns)})"

    def add(self, query: str, answer: str) -> None:
        """Record a finished turn."""
        self.turns.append((query, answer))

    def reset(self) -> None:
        """Forget every turn."""
        self.turns.clear()

    def retrieve(self, query: str, k: int | None = None) -> list[int]:
        """Indices of the ``k`` earlier turns most similar to ``query``, in chronological
        order (ties: the more recent turn)."""
        k = self.top_k if k is None else k
        if not self.turns:
            return []
        if len(self.turns) <= k:
            return list(range(len(self.turns)))
        from llmrouter_core.features.hashing import HashingEmbedder

        texts = [q for q, _ in self.turns]
        emb = HashingEmbedder(n_features=2**16).fit([*texts, query])
        past = emb.transform(texts)
        now = emb.transform([query])
        sims = np.asarray((past @ now.T).toarray()).ravel()
        # Most similar first; among equals, the most recent first.
        order = sorted(range(len(texts)), key=lambda i: (-sims[i], -i))
        return sorted(order[:k])

    def context(self, query: str) -> list[int]:
        """Indices of the earlier turns that go with ``query`` under the current mode."""
        if self.mode == "current_only":
            return []
        if self.mode == "full_context":
            return list(range(len(self.turns)))
        return self.retrieve(query)

    def messages_for(self, query: str) -> list[Message]:
        """The messages to send for ``query``: system prompt, selected turns, the query."""
        out: list[Message] = []
        if self.system:
            out.append({"role": "system", "content": self.system})
        for i in self.context(query):
            q, a = self.turns[i]
            out += [{"role": "user", "content": q}, {"role": "assistant", "content": a}]
        out.append({"role": "user", "content": query})
        return out

    @staticmethod
    def routing_text(messages: Sequence[dict[str, Any]]) -> str:
        """What the router reads: every non-system message, one paragraph each."""
        return "\n\n".join(
            t
            for t in (content_text(m.get("content")) for m in messages if m.get("role") != "system")
            if t
        )
