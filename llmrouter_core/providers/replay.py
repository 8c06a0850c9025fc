"""The ``replay`` LiteLLM provider: answer with the responses a model actually gave.

``replay/<model>`` answers a prompt with the response that ``<model>`` gave to that exact
prompt in a routing dataset with responses (RouterBench's files carry the real responses and
costs of 11 models), and reports the recorded cost as the call's cost. A prompt that is not
in the dataset, or that ``<model>`` has no recorded response for, is an error (LiteLLM raises
``NotFoundError``), never a made-up answer.

The dataset is named by the ``LLMROUTER_REPLAY_DATA`` environment variable (a file or
directory path, or a named dataset such as ``routerbench``), or set in code with
:func:`set_replay_data`. A pool whose models have ``"litellm_model": "replay/<name>"`` then
runs a trained router end to end on recorded answers, with no network.

The prompt is matched on the text of the last user message, then on all user messages
joined by a blank line (how multi-turn RouterBench prompts are stored), after trimming
surrounding whitespace and normalising line endings.

Recorded data has duplicates (RouterBench repeats some ``sample_id``s with different
outcomes, and some prompt texts under several ids). Replay never refuses them: it loads the
dataset with ``on_defect="keep"``, which keeps the first copy of a duplicated id, and a prompt
recorded in several rows is answered with the first row that has a response of the model.
When those rows disagree, that is logged once (INFO); the dataset's defect report is logged
at DEBUG only.

Example:
    >>> import os                                                      # doctest: +SKIP
    >>> os.environ["LLMROUTER_REPLAY_DATA"] = "routerbench"              # doctest: +SKIP
    >>> import litellm                                                  # doctest: +SKIP
    >>> register_replay_provider()                                      # doctest: +SKIP
    >>> litellm.completion(model="replay/gpt-4-1106-preview",
    ...                    messages=[{"role": "user", "content": prompt}])  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmrouter_core.data.core import RoutingData
from llmrouter_core.errors import DataError, LLMRouterError
from llmrouter_core.pool import Pool, estimate_tokens

__all__ = [
    "REPLAY_DATA_ENV",
    "REPLAY_PROVIDER",
    "ReplayError",
    "ReplayRecord",
    "ReplayStore",
    "get_replay_store",
    "register_replay_provider",
    "replay_from_env",
    "replay_pool",
    "set_replay_data",
]

logger = logging.getLogger(__name__)

#: Environment variable naming the dataset to replay (a path or a named dataset).
REPLAY_DATA_ENV = "LLMROUTER_REPLAY_DATA"
#: LiteLLM provider name: model ids are ``replay/<model>``.
REPLAY_PROVIDER = "replay"


class ReplayError(LLMRouterError, LookupError):
    """No recorded response for this model and prompt, or no replay dataset configured."""

    def __init__(self, message: str, status_code: int = 404) -> None:
        super().__init__(message)
        self.status_code = status_code


@dataclass(frozen=True, slots=True)
class ReplayRecord:
    """One recorded answer.

    Attributes:
        text: The response text.
        cost: Recorded USD cost of the call (``None`` if the dataset has none).
        input_tokens: Recorded (else estimated) prompt tokens.
        output_tokens: Recorded (else estimated) completion tokens.
        query_id: Id of the dataset row.
    """

    text: str
    cost: float | None
    input_tokens: int
    output_tokens: int
    query_id: str


def _norm(text: str) -> str:
    return text.replace("\r\n", "\n").strip()


def _message_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, Sequence):
        return "\n".join(
            str(p.get("text", "")) for p in content if isinstance(p, Mapping) and "text" in p
        )
    return "" if content is None else str(content)


def prompt_keys(messages: Sequence[Mapping[str, Any]]) -> list[str]:
    """Candidate lookup keys of a request, most specific first."""
    msgs = [m for m in messages if isinstance(m, Mapping)]
    users = [_message_text(m.get("content")) for m in msgs if m.get("role") == "user"]
    keys: list[str] = []
    if users:
        keys.append(_norm(users[-1]))
        if len(users) > 1:
            keys.append(_norm("\n\n".join(users)))
    elif msgs:
        keys.append(_norm(_message_text(msgs[-1].get("content"))))
    return [k for k in keys if k]


class ReplayStore:
    """Recorded responses of a dataset, indexed by prompt.

    Args:
        data: A :class:`RoutingData` with ``responses``.
        source: Where the data came from (for messages).

    Example:
        >>> import numpy as np
        >>> d = RoutingData(query_ids=["q1"], queries=["2+2?"], models=["m"],
        ...                 scores=np.ones((1, 1)), costs=np.array([[0.002]]),
        ...                 responses=np.array([["4"]], dtype=object))
        >>> rec = ReplayStore(d).lookup("m", [{"role": "user", "content": "2+2?"}])
        >>> rec.text, rec.cost
        ('4', 0.002)
    """

    def __init__(self, data: RoutingData, *, source: str = "") -> None:
        if data.responses is None:
            raise DataError(
                f"{data!r} has no recorded responses; replay needs a dataset with responses "
                "(e.g. RouterBench's files)"
            )
        self.data = data
        self.source = source or data.name or "dataset"
        self._index: dict[str, list[int]] = {}
        for i, query in enumerate(data.queries):
            self._index.setdefault(_norm(query), []).append(i)
        self._models = {m: j for j, m in enumerate(data.models)}
        self._models_folded = {m.lower(): j for j, m in enumerate(data.models)}
        self._conflict_logged = False

    def __repr__(self) -> str:
        return (
            f"ReplayStore({self.source!r}, {len(self._index)} prompts x {len(self._models)} models)"
        )

    @property
    def models(self) -> list[str]:
        """Models with recorded responses."""
        return list(self.data.models)

    def __contains__(self, prompt: object) -> bool:
        return isinstance(prompt, str) and _norm(prompt) in self._index

    def _column(self, model: str) -> int:
        j = self._models.get(model)
        if j is None:
            j = self._models_folded.get(model.lower())
        if j is None:
            raise ReplayError(
                f"replay: model {model!r} has no recorded responses in {self.source}; it has: "
                f"{', '.join(self.data.models)}"
            )
        return j

    def lookup(self, model: str, messages: Sequence[Mapping[str, Any]] | str) -> ReplayRecord:
        """The recorded answer of ``model`` to ``messages``.

        Raises:
            ReplayError: Unknown model, unknown prompt, or no recorded response of the model
                for that prompt.
        """
        if isinstance(messages, str):
            messages = [{"role": "user", "content": messages}]
        j = self._column(model)
        keys = prompt_keys(messages)
        rows: list[int] = []
        for key in keys:
            rows = self._index.get(key, [])
            if rows:
                break
        if not rows:
            preview = (keys[0][:80] + "...") if keys and len(keys[0]) > 80 else (keys or [""])[0]
            raise ReplayError(
                f"replay: the prompt {preview!r} is not in {self.source}; replay answers only "
                "prompts that the dataset recorded"
            )
        assert self.data.responses is not None
        answered = [(i, self.data.responses[i, j]) for i in rows]
        answered = [(i, text) for i, text in answered if isinstance(text, str)]
        if not answered:
            raise ReplayError(
                f"replay: {self.source} has no recorded response of {self.data.models[j]!r} "
                f"for this prompt (query {self.data.query_ids[rows[0]]})"
            )
        i, text = answered[0]
        if not self._conflict_logged and len({t for _, t in answered}) > 1:
            self._conflict_logged = True
            logger.info(
                "replay: %s records this prompt %d times with different responses of %s "
                "(queries %s); answering with the first recorded row (query %s). Logged once.",
                self.source,
                len(answered),
                self.data.models[j],
                ", ".join(self.data.query_ids[k] for k, _ in answered),
                self.data.query_ids[i],
            )
        return self._record(i, j, text)

    def _record(self, i: int, j: int, text: str) -> ReplayRecord:
        data = self.data
        cost: float | None = None
        if data.costs is not None and math.isfinite(data.costs[i, j]):
            cost = float(data.costs[i, j])

        def tokens(arr: Any, fallback: str) -> int:
            if arr is not None and math.isfinite(arr[i, j]):
                return int(arr[i, j])
            return estimate_tokens(fallback)

        return ReplayRecord(
            text=text,
            cost=cost,
            input_tokens=tokens(data.input_tokens, data.queries[i]),
            output_tokens=tokens(data.output_tokens, text),
            query_id=data.query_ids[i],
        )


# -- the dataset in use --------------------------------------------------------------------

_lock = threading.Lock()
_explicit: ReplayStore | None = None
_from_env: dict[str, ReplayStore] = {}


def load_replay_data(source: str | os.PathLike[str]) -> RoutingData:
    """Load a dataset with responses from a path (file or directory) or a dataset name.

    Defects are kept (``on_defect="keep"``) and the defect report is logged once, at DEBUG:
    replay answers what was recorded; the report is in ``data.meta["defects"]``.
    """
    from llmrouter_core.data import defect_log_level, load_dataset

    text = os.fspath(source)
    path = Path(text).expanduser()
    with defect_log_level(logging.DEBUG):
        return load_dataset(path if path.exists() else text, on_defect="keep")


def set_replay_data(data: RoutingData | str | os.PathLike[str] | None) -> ReplayStore | None:
    """Replay ``data`` (a dataset, a path, or a dataset name); ``None`` goes back to
    ``LLMROUTER_REPLAY_DATA``. Returns the store in use."""
    global _explicit
    store = None
    if data is not None:
        loaded = data if isinstance(data, RoutingData) else load_replay_data(data)
        label = os.fspath(data) if not isinstance(data, RoutingData) else ""
        store = ReplayStore(loaded, source=label)
    with _lock:
        _explicit = store
    return store


def get_replay_store() -> ReplayStore:
    """The store in use: set by :func:`set_replay_data`, else from ``LLMROUTER_REPLAY_DATA``."""
    store = _explicit
    if store is not None:
        return store
    source = os.environ.get(REPLAY_DATA_ENV, "").strip()
    if not source:
        raise ReplayError(
            f"replay: no dataset to replay; set {REPLAY_DATA_ENV} to a file, a directory or a "
            "dataset name (e.g. routerbench)",
            status_code=400,
        )
    with _lock:
        store = _from_env.get(source)
        if store is None:
            try:
                store = ReplayStore(load_replay_data(source), source=source)
            except (DataError, OSError, ValueError, KeyError) as exc:
                raise ReplayError(
                    f"replay: cannot load {REPLAY_DATA_ENV}={source!r}: {exc}", status_code=400
                ) from exc
            _from_env[source] = store
    return store


def replay_pool(pool: Pool | Sequence[str]) -> Pool:
    """``pool`` with every model called as ``replay/<name>`` (prices and capabilities kept)."""
    from dataclasses import replace

    base = pool if isinstance(pool, Pool) else Pool.from_names(pool)
    return Pool(
        replace(s, litellm_model=f"{REPLAY_PROVIDER}/{s.name}", api_base=None, api_key_env=None)
        for s in base
    )


#: Providers that answer in this process: a pool model already called through one of them is
#: left as it is by :func:`replay_from_env`.
_IN_PROCESS = ("replay", "local", "scripted")
_switch_logged = False


def replay_from_env(pool: Pool) -> Pool:
    """``pool`` with its remote models called as ``replay/<name>`` when
    ``LLMROUTER_REPLAY_DATA`` is set (else ``pool`` unchanged).

    The executor applies this to a router's own pool (no ``pool=`` given), so setting the
    variable is enough to run a saved router on recorded answers. Models already answered in
    this process (``replay/``, ``local/``, scripted or other registered providers) keep their
    provider.
    """
    global _switch_logged
    if not os.environ.get(REPLAY_DATA_ENV, "").strip():
        return pool
    from dataclasses import replace

    from llmrouter_core.providers._registry import registered_providers

    ours = set(_IN_PROCESS) | set(registered_providers())
    switched = [s for s in pool if s.litellm_model.partition("/")[0] not in ours]
    if not switched:
        return pool
    if not _switch_logged:
        _switch_logged = True
        logger.info(
            "replay: %s is set; calling %d pool models as replay/<name>",
            REPLAY_DATA_ENV,
            len(switched),
        )
    names = {s.name for s in switched}
    return Pool(
        replace(s, litellm_model=f"{REPLAY_PROVIDER}/{s.name}", api_base=None, api_key_env=None)
        if s.name in names
        else s
        for s in pool
    )


# -- the LiteLLM provider ------------------------------------------------------------------


def _chunks(text: str, size: int = 24) -> Iterator[str]:
    """Pieces of ``text`` of about ``size`` characters, cut after whitespace."""
    start = 0
    while start < len(text):
        end = min(len(text), start + size)
        if end < len(text):
            cut = text.rfind(" ", start, end)
            end = cut + 1 if cut > start else end
        yield text[start:end]
        start = end


def _make_handler() -> Any:
    from llmrouter_core._lazy import import_litellm

    litellm = import_litellm()
    from litellm.llms.custom_llm import CustomLLM, CustomLLMError

    def lookup(model: str, messages: list[dict[str, Any]]) -> ReplayRecord:
        try:
            return get_replay_store().lookup(model, messages)
        except ReplayError as exc:
            raise CustomLLMError(status_code=exc.status_code, message=str(exc)) from None

    def response(model: str, rec: ReplayRecord) -> Any:
        resp = litellm.ModelResponse(
            model=model,
            choices=[
                {
                    "index": 0,
                    "finish_reason": "stop",
                    "message": {"role": "assistant", "content": rec.text},
                }
            ],
            usage={
                "prompt_tokens": rec.input_tokens,
                "completion_tokens": rec.output_tokens,
                "total_tokens": rec.input_tokens + rec.output_tokens,
            },
            created=int(time.time()),
        )
        if rec.cost is not None:
            resp._hidden_params["response_cost"] = rec.cost
        return resp

    def stream_chunks(rec: ReplayRecord) -> Iterator[dict[str, Any]]:
        pieces = list(_chunks(rec.text)) or [""]
        for k, piece in enumerate(pieces):
            last = k == len(pieces) - 1
            yield {
                "text": piece,
                "is_finished": last,
                "finish_reason": "stop" if last else "",
                "index": 0,
                "tool_use": None,
                "usage": {
                    "prompt_tokens": rec.input_tokens,
                    "completion_tokens": rec.output_tokens,
                    "total_tokens": rec.input_tokens + rec.output_tokens,
                }
                if last
                else None,
            }

    class ReplayLLM(CustomLLM):  # type: ignore[misc]
        """LiteLLM handler of ``replay/<model>``."""

        def completion(self, model: str, messages: list[dict[str, Any]], *a: Any, **k: Any) -> Any:
            return response(model, lookup(model, messages))

        async def acompletion(
            self, model: str, messages: list[dict[str, Any]], *a: Any, **k: Any
        ) -> Any:
            return response(model, lookup(model, messages))

        def streaming(
            self, model: str, messages: list[dict[str, Any]], *a: Any, **k: Any
        ) -> Iterator[Any]:
            yield from stream_chunks(lookup(model, messages))

        async def astreaming(  # type: ignore[override]
            self, model: str, messages: list[dict[str, Any]], *a: Any, **k: Any
        ) -> AsyncIterator[Any]:
            for chunk in stream_chunks(lookup(model, messages)):
                yield chunk

    return ReplayLLM()


def _known_cost(model: str, messages: list[dict[str, Any]]) -> float | None:
    return get_replay_store().lookup(model, messages).cost


def register_replay_provider() -> None:
    """Register ``replay/<model>`` with LiteLLM (idempotent).

    Also sets ``litellm.disable_hf_tokenizer_download``: to price a streamed answer, LiteLLM
    counts tokens with a tokenizer chosen from the model name, and for names such as
    ``replay/meta/llama-2-70b-chat`` it would download one from the Hugging Face Hub (25 s
    of retries when offline). Replay is for offline runs; its costs are the recorded ones.
    """
    from llmrouter_core._lazy import import_litellm
    from llmrouter_core.providers._registry import register_cost_hook, register_provider

    register_provider(REPLAY_PROVIDER, _make_handler)
    register_cost_hook(REPLAY_PROVIDER, _known_cost)
    litellm = import_litellm()
    if not getattr(litellm, "disable_hf_tokenizer_download", False):
        logger.info("replay: LiteLLM will not download Hugging Face tokenizers in this process")
        setattr(litellm, "disable_hf_tokenizer_download", True)  # noqa: B010 - module attribute
