"""Run a :class:`~llmrouter_core.serving.app.ServeConfig` with uvicorn, shutting down gracefully.

On SIGTERM or SIGINT the server *drains*: ``/ready`` answers 503 and new chat requests get a
503 error at once, while requests in flight (streams included) finish; the server exits when
none is left, or after ``drain_timeout`` seconds. A second signal exits at once.
"""

from __future__ import annotations

import time
from types import FrameType
from typing import Any

from llmrouter_core.errors import MissingExtraError
from llmrouter_core.serving.app import ServeConfig, Service, create_app

__all__ = ["make_server", "run_workers", "serve"]


def _uvicorn() -> Any:
    try:
        import uvicorn
    except ImportError:
        raise MissingExtraError("uvicorn", "serve", "llmrouter serve") from None
    return uvicorn


def make_server(
    config: ServeConfig,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    fd: int | None = None,
    log_level: str = "warning",
) -> Any:
    """A uvicorn server of ``config`` that drains on shutdown (``server.run()`` serves;
    ``server.service`` is the :class:`~llmrouter_core.serving.app.Service`). ``fd``: serve
    on this already listening socket (a worker of ``--workers``) instead of ``host:port``."""
    uvicorn = _uvicorn()
    app = create_app(config)
    service: Service = app.state.service

    class DrainingServer(uvicorn.Server):  # type: ignore[misc,name-defined]
        deadline: float | None = None

        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            if self.deadline is None:  # first signal: drain
                service.draining = True
                self.deadline = time.monotonic() + config.drain_timeout
                return
            super().handle_exit(sig, frame)  # second signal: exit now

        async def on_tick(self, counter: int) -> bool:
            if await super().on_tick(counter):
                return True
            if self.deadline is not None:
                return service.in_flight == 0 or time.monotonic() > self.deadline
            return False

    server = DrainingServer(
        uvicorn.Config(
            app,
            host=host,
            port=port,
            fd=fd,
            log_level=log_level,
            access_log=False,  # the service logs requests itself, without keys or prompts
            timeout_graceful_shutdown=config.drain_timeout,
            lifespan="on",
        )
    )
    server.service = service
    return server


def serve(config: ServeConfig, *, host: str = "127.0.0.1", port: int = 8000) -> None:
    """Serve until SIGTERM/SIGINT (then drain and exit)."""
    make_server(config, host=host, port=port).run()


def run_workers(argv: list[str], host: str, port: int, workers: int) -> int:
    """Bind ``host:port`` once and run ``workers`` processes of ``llmrouter ARGV --fd N`` on
    it; SIGTERM/SIGINT are passed on (each worker drains). Returns the worst exit code."""
    import signal
    import socket
    import subprocess
    import sys

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    code = "from llmrouter_core.cli.main import main; main()"
    args = [sys.executable, "-c", code, *argv, "--fd", str(sock.fileno())]
    # Own sessions: a terminal's Ctrl-C reaches them once, through this process.
    procs = [
        subprocess.Popen(args, pass_fds=[sock.fileno()], start_new_session=True)
        for _ in range(workers)
    ]

    def forward(sig: int, frame: FrameType | None) -> None:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(sig)

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, forward)
    codes = [proc.wait() for proc in procs]
    sock.close()
    return max(codes, key=abs)
