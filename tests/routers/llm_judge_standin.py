"""A deterministic, offline stand-in for the LLM judge: a LiteLLM custom provider.

``judge-standin/<mode>`` reads the pool's model names and the query from the prompt the
judge scorer (:mod:`llmrouter_core.scoring.judge`) sends (the ``- <name> (...)`` lines of the
system message, and the ``<query>`` block of the last message) and replies, per mode:

* ``json``: ``{"<model>": r, ...}`` for every model, ``r`` a hash of (query, model) in 0..10;
* ``partial``: the same object for every other model only;
* ``lines``: ``<model>: r`` lines with chatter around them (the regex fallback);
* ``garbage``: an answer to the query instead of ratings (unparseable);
* ``oracle``: the measured scores set with :func:`set_oracle` (x 10), else like ``json``;
* ``flaky``: like ``json``, but fails (503) when the query contains ``FAIL``;
* ``fail``: always fails (503).

Every call is recorded (model, messages, optional parameters) in the returned list.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from typing import Any

PROVIDER = "judge-standin"
_LINE = re.compile(r"^- (\S+) \(", re.M)
_QUERY = re.compile(r"<query>\n(.*)\n</query>", re.S)

_calls: list[dict[str, Any]] = []
_lock = threading.Lock()
_oracle: dict[str, dict[str, float]] = {}


def set_oracle(scores: dict[str, dict[str, float]]) -> None:
    """Measured scores per (truncated) query text, for the ``oracle`` mode."""
    _oracle.clear()
    _oracle.update(scores)


def standin_rating(query: str, model: str) -> int:
    """The stand-in's rating of ``model`` for ``query`` (0..10)."""
    digest = hashlib.sha256(f"{query}\x00{model}".encode()).digest()
    return digest[0] % 11


def reply_for(mode: str, system: str, prompt: str) -> str:
    models = _LINE.findall(system) or _LINE.findall(prompt)
    match = _QUERY.search(prompt)
    query = match.group(1) if match else prompt
    ratings = {m: standin_rating(query, m) for m in models}
    if mode == "oracle" and query in _oracle:
        ratings = {m: round(10 * _oracle[query][m]) for m in models}
    if mode in ("json", "oracle", "flaky"):
        return json.dumps(ratings)
    if mode == "partial":
        return json.dumps({m: r for i, (m, r) in enumerate(ratings.items()) if i % 2 == 0})
    if mode == "lines":
        body = "\n".join(f"{m}: {r}" for m, r in ratings.items())
        return f"Here are my ratings:\n{body}\nHope this helps."
    return "The answer is B."


def register_standin(litellm: Any) -> list[dict[str, Any]]:
    """Register ``judge-standin/<mode>`` with LiteLLM (idempotent); returns the call log."""
    from litellm.llms.custom_llm import CustomLLM, CustomLLMError

    class StandIn(CustomLLM):  # type: ignore[misc]
        def completion(self, model: str, messages: list[Any], *a: Any, **k: Any) -> Any:
            with _lock:
                _calls.append(
                    {
                        "model": model,
                        "messages": messages,
                        "params": dict(k.get("optional_params") or {}),
                    }
                )
            prompt = str(messages[-1]["content"])
            if model == "fail" or (model == "flaky" and "FAIL" in prompt):
                raise CustomLLMError(status_code=503, message="judge is down")
            text = reply_for(model, str(messages[0]["content"]), prompt)
            return litellm.ModelResponse(
                model=f"{PROVIDER}/{model}",
                choices=[{"message": {"role": "assistant", "content": text}}],
                usage={"prompt_tokens": 50, "completion_tokens": 20, "total_tokens": 70},
            )

        async def acompletion(self, *a: Any, **k: Any) -> Any:
            return self.completion(*a, **k)

    current = list(getattr(litellm, "custom_provider_map", None) or [])
    if not any(p.get("provider") == PROVIDER for p in current):
        litellm.custom_provider_map = [
            *current,
            {"provider": PROVIDER, "custom_handler": StandIn()},
        ]
    return _calls


def standin_params(mode: str = "json", **more: Any) -> dict[str, Any]:
    """``get_router("llm", ...)`` arguments (the judge scorer's) for a judge played by the
    stand-in (registers it)."""
    import litellm

    register_standin(litellm)
    params: dict[str, Any] = {"judge_model": f"{PROVIDER}/{mode}", "max_retries": 0}
    params.update(more)
    return params
