"""Helpers of the serving tests: servers on loopback (threads and processes)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmrouter_core.data import RoutingData

REPO = Path(__file__).resolve().parents[2]


def upstream_spec(
    name: str,
    url: str,
    *,
    served_as: str | None = None,
    prices: tuple[float, float] = (2.0, 8.0),
) -> Any:
    """A pool model answered by the fake upstream at ``url`` (its model ``served_as``, by
    default ``name``), at ``prices`` USD per 1M tokens in and out."""
    from llmrouter_core.pool import ModelSpec

    return ModelSpec(
        name,
        litellm_model=f"openai/{served_as or name}",
        api_base=url + "/v1",
        input_price=prices[0],
        output_price=prices[1],
        extra={"litellm_kwargs": {"api_key": "sk-fake-upstream-0123456789"}},
    )


def recorded(data: RoutingData, query: str, model: str) -> tuple[str, float]:
    """The recorded response and cost of ``model`` on ``query``."""
    i = list(data.queries).index(query)
    j = data.model_index(model)
    assert data.responses is not None and data.costs is not None
    return str(data.responses[i, j]), float(data.costs[i, j])


@dataclass
class Running:
    """A server running in a thread of this process."""

    url: str
    server: Any
    thread: threading.Thread

    @property
    def service(self) -> Any:
        return self.server.service


@contextmanager
def running(config: Any, **kwargs: Any) -> Iterator[Running]:
    """Serve ``config`` on a free loopback port in a thread; stop it on exit."""
    from llmrouter_core.serving import make_server

    server = make_server(config, port=0, **kwargs)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the server did not start")
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield Running(f"http://127.0.0.1:{port}", server, thread)
    finally:
        server.should_exit = True
        thread.join(15)


@contextmanager
def running_app(app: Any) -> Iterator[str]:
    """Serve any ASGI ``app`` on a free loopback port in a thread; yields its base URL."""
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError("the server did not start")
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(15)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, proc: subprocess.Popen[bytes] | None, timeout: float = 90.0) -> None:
    """Wait until ``url`` answers 200 (fail early if ``proc`` died)."""
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"the process exited with {proc.returncode}: {output(proc)}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    raise RuntimeError(f"{url} did not answer within {timeout}s")


def stop(proc: subprocess.Popen[bytes], timeout: float = 20.0) -> int:
    """SIGTERM ``proc`` and wait (SIGKILL after ``timeout``); its exit code."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    return int(proc.returncode)


def output(proc: subprocess.Popen[bytes]) -> str:
    """The last lines a process started by :func:`llmrouter_cli` printed."""
    path = getattr(proc, "log_path", None)
    return Path(path).read_text(errors="replace")[-3000:] if path else ""


def llmrouter_cli(
    *args: str, log: Path, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """Start ``llmrouter ARGS`` (this worktree's code) as a process printing to ``log``."""
    full_env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        **(env or {}),
    }
    code = "from llmrouter_core.cli.main import main; main()"
    with open(log, "wb") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-c", code, *args],
            env=full_env,
            stdout=sink,
            stderr=subprocess.STDOUT,
            cwd=str(REPO),
        )
    proc.log_path = log  # type: ignore[attr-defined]
    return proc
