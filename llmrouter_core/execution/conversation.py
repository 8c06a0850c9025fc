"""Multi-turn context for chat: which earlier turns go with the next query.

Four context modes (the terminal ``llmrouter chat`` and the browser chat share them):

* ``current_only``: only the current query (each turn is routed and answered on its own);
* ``full_context``: the conversation so far, the most recent turns that fit in
  ``max_context_tokens`` (estimated at 4 characters per token), oldest dropped first;
* ``last_k``: the ``top_k`` most recent turns;
* ``retrieval``: the ``top_k`` earlier turns whose queries are most similar to the current
  one (cosine of the embeddings), in their original order. Each turn's query is embedded once,
  when it is first needed, and kept: a turn is never embedded again. A failing embedder is
  an error (:class:`ContextError`), never a silent fall back to another mode.

The selected context is both what the router reads (:meth:`Conversation.routing_text`) and
what the model receives (a real messages array, never a flattened transcript).

Example:
    >>> conv = Conversation("full_context")
    >>> conv.add("What is 2+2?", "4")
    >>> [m["role"] for m in conv.messages_for("And times 3?")]
    ['user', 'assistant', 'user']
    >>> conv.set_mode("last_k", top_k=1).mode
    'last_k'
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Literal

import numpy as np

from llmrouter_core.errors import LLMRouterError
from llmrouter_core.execution._support import Message, content_text
from llmrouter_core.pool import estimate_tokens

__all__ = [
    "CONTEXT_MODES",
    "ContextError",
    "ContextMode",
    "Conversation",
    "Embed",
    "hashing_embed",
    "parse_context_mode",
]

ContextMode = Literal["current_only", "full_context", "last_k", "retrieval"]
CONTEXT_MODES: tuple[ContextMode, ...] = ("current_only", "full_context", "last_k", "retrieval")
#: One line per mode, for help texts and UI labels.
CONTEXT_MODE_HELP: dict[ContextMode, str] = {
    "current_only": "the current message only",
    "full_context": "the whole conversation, bounded by tokens",
    "last_k": "the k most recent turns",
    "retrieval": "the k earlier turns most similar to the message",
}
_ALIASES: dict[str, ContextMode] = {
    "current": "current_only",
    "current_only": "current_only",
    "current-only": "current_only",
    "full": "full_context",
    "full_context": "full_context",
    "full-context": "full_context",
    "last": "last_k",
    "last_k": "last_k",
    "last-k": "last_k",
    "retrieval": "retrieval",
    "retrieve": "retrieval",
}

#: Texts -> one row per text (dense or scipy sparse), each row L2-normalised.
Embed = Callable[[Sequence[str]], Any]


class ContextError(LLMRouterError, RuntimeError):
    """The context of a turn could not be selected (e.g. the retrieval embedder failed)."""


def parse_context_mode(mode: str) -> ContextMode:
    """The context mode named ``mode`` (``current``/``full``/``last``/``retrieval`` also
    accepted).

    Raises:
        ValueError: An unknown name; the message lists the modes.
    """
    key = mode.strip().lower()
    if key not in _ALIASES:
        raise ValueError(
            f"unknown context mode {mode!r}; choose one of: {', '.join(CONTEXT_MODES)}"
        )
    return _ALIASES[key]


_HASHING: Any = None


def hashing_embed(texts: Sequence[str]) -> Any:
    """The default retrieval embedding: hashed word 1-2-grams, sublinear TF, L2-normalised.

    It has no fitted state (no IDF), so a turn's vector never changes as the chat grows and
    is computed once.
    """
    global _HASHING
    if _HASHING is None:
        from llmrouter_core.features.hashing import HashingEmbedder

        emb = HashingEmbedder(n_features=2**16)
        emb.idf_ = np.ones(emb.n_features, dtype=np.float32)
        _HASHING = emb
    return _HASHING.transform(list(texts))


class Conversation:
    """The turns of a chat and the context mode that selects among them.

    Args:
        mode: ``"current_only"``, ``"full_context"``, ``"last_k"`` or ``"retrieval"``.
        top_k: Earlier turns kept in ``last_k`` and ``retrieval`` modes.
        system: Optional system prompt sent with every request.
        max_context_tokens: Estimated tokens of earlier turns ``full_context`` may send.
        embed: Retrieval embedding (texts -> L2-normalised rows); default
            :func:`hashing_embed`.

    Attributes:
        embedded: How many texts the embedder has been asked for (each earlier turn once,
            each retrieval query once).
    """

    def __init__(
        self,
        mode: str = "current_only",
        *,
        top_k: int = 3,
        system: str | None = None,
        max_context_tokens: int = 8000,
        embed: Embed | None = None,
    ) -> None:
        if top_k < 1:
            raise ValueError("top_k must be >= 1")
        if max_context_tokens < 1:
            raise ValueError("max_context_tokens must be >= 1")
        self.mode: ContextMode = parse_context_mode(mode)
        self.top_k = top_k
        self.system = system
        self.max_context_tokens = max_context_tokens
        self.embed: Embed = embed or hashing_embed
        self.turns: list[tuple[str, str]] = []
        self.embedded = 0
        self._vectors: list[Any] = []  # one row per turn, in order; filled lazily

    def __repr__(self) -> str:
        return f"Conversation(mode={self.mode!r}, top_k={self.top_k}, turns={len(self.turns)})"

    def add(self, query: str, answer: str) -> None:
        """Record a finished turn."""
        self.turns.append((query, answer))

    def reset(self) -> None:
        """Forget every turn (and their cached embeddings)."""
        self.turns.clear()
        self._vectors.clear()

    def set_mode(self, mode: str, *, top_k: int | None = None) -> Conversation:
        """Switch the context mode (and ``top_k``), keeping the turns and their embeddings.

        Raises:
            ValueError: An unknown mode or ``top_k < 1``; nothing is changed.
        """
        new_mode = parse_context_mode(mode)
        if top_k is not None and top_k < 1:
            raise ValueError("top_k must be >= 1")
        self.mode = new_mode
        if top_k is not None:
            self.top_k = top_k
        return self

    # -- selection -------------------------------------------------------------------------

    def _embed(self, texts: Sequence[str]) -> Any:
        try:
            rows = self.embed(texts)
            n = rows.shape[0]
        except Exception as exc:
            raise ContextError(
                f"retrieval context failed: the embedder raised {type(exc).__name__}: {exc}"
            ) from exc
        if n != len(texts):
            raise ContextError(
                f"retrieval context failed: the embedder returned {n} rows for {len(texts)} texts"
            )
        self.embedded += len(texts)
        return rows

    def _turn_vectors(self) -> list[Any]:
        if len(self._vectors) > len(self.turns):  # turns were edited: start over
            self._vectors.clear()
        new = [q for q, _ in self.turns[len(self._vectors) :]]
        if new:
            rows = self._embed(new)
            self._vectors.extend(rows[i] for i in range(len(new)))
        return self._vectors

    def retrieve(self, query: str, k: int | None = None) -> list[int]:
        """Indices of the ``k`` earlier turns most similar to ``query``, in chronological
        order (ties: the more recent turn).

        Raises:
            ContextError: The embedder failed.
        """
        k = self.top_k if k is None else k
        if not self.turns:
            return []
        if len(self.turns) <= k:
            return list(range(len(self.turns)))
        vectors = self._turn_vectors()
        now = self._embed([query])
        sims = np.array([_dot(v, now) for v in vectors])
        # Most similar first; among equals, the most recent first.
        order = sorted(range(len(vectors)), key=lambda i: (-sims[i], -i))
        return sorted(order[:k])

    def _within_tokens(self, query: str) -> list[int]:
        room = self.max_context_tokens
        picked: list[int] = []
        for i in range(len(self.turns) - 1, -1, -1):
            q, a = self.turns[i]
            room -= estimate_tokens(q) + estimate_tokens(a)
            if room < 0:
                break
            picked.append(i)
        return picked[::-1]

    def context(self, query: str) -> list[int]:
        """Indices of the earlier turns that go with ``query`` under the current mode."""
        if self.mode == "current_only":
            return []
        if self.mode == "full_context":
            return self._within_tokens(query)
        if self.mode == "last_k":
            return list(range(max(0, len(self.turns) - self.top_k), len(self.turns)))
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


def _dot(row: Any, query: Any) -> float:
    """Cosine of two L2-normalised rows (dense or sparse)."""
    product = row @ query.T
    if hasattr(product, "toarray"):
        product = product.toarray()
    return float(np.asarray(product).ravel()[0])
