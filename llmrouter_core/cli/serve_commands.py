"""``llmrouter serve`` (an OpenAI-compatible routing server) and ``llmrouter serve-key``."""

from __future__ import annotations

import ipaddress
import math
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from llmrouter_core.cli._common import (
    TrustEndpointsOpt,
    check_amount,
    err_console,
    fail,
    plain,
    setup_logging,
    user_errors,
)
from llmrouter_core.cli.run_commands import ReplayOpt, VerboseOpt, execution_pool

__all__ = ["register", "serve", "serve_key"]


def _routers(specs: list[str], trust_endpoints: bool) -> dict[str, Any]:
    """``--router-dir DIR`` (served under the router's registered name) or ``NAME=DIR``."""
    from llmrouter_core.persistence import load_router

    out: dict[str, Any] = {}
    for spec in specs:
        name, sep, path = spec.partition("=")
        if not sep or Path(spec).exists():
            name, path = "", spec
        router = load_router(Path(path), trust_endpoints=trust_endpoints)
        name = name or str(getattr(router, "name", "") or Path(path).name)
        if name in out:
            fail(f"two routers are served as llmrouter/{name}; name them: --router-dir NAME=DIR")
        if not name.replace("-", "").replace("_", "").replace(".", "").isalnum():
            fail(f"router name {name!r} must be letters, digits, '-', '_' or '.'")
        out[name] = router
    return out


def serve(
    router_dir: Annotated[
        list[str],
        typer.Option(
            "--router-dir",
            "-r",
            help="A trained router directory, served as llmrouter/<its name>; NAME=DIR serves "
            "it as llmrouter/NAME. Repeatable.",
        ),
    ],
    pool: Annotated[
        Path | None,
        typer.Option("--pool", help="Pool file: call the models through these endpoints."),
    ] = None,
    replay: ReplayOpt = None,
    host: Annotated[str, typer.Option("--host", help="Address to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port to bind.")] = 8000,
    redis_url: Annotated[
        str | None,
        typer.Option(
            "--redis-url",
            help="Keep budgets, rate limits and feedback in Redis, shared by every replica.",
        ),
    ] = None,
    keys: Annotated[
        Path | None,
        typer.Option("--keys", help="API keys file (hashed keys, budgets, allowed routers)."),
    ] = None,
    max_body_bytes: Annotated[
        int, typer.Option("--max-body-bytes", help="Largest request body (413 above).")
    ] = 1_000_000,
    max_prompt_chars: Annotated[
        int, typer.Option("--max-prompt-chars", help="Largest prompt in characters (400 above).")
    ] = 200_000,
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds per model call.")] = 60.0,
    max_retries: Annotated[
        int, typer.Option("--max-retries", help="Retries of a model on transient errors.")
    ] = 2,
    drain_timeout: Annotated[
        float,
        typer.Option("--drain-timeout", help="Seconds a shutdown waits for requests in flight."),
    ] = 30.0,
    workers: Annotated[
        int,
        typer.Option(
            "--workers",
            help="Worker processes on the one port (budgets and rate limits of keys are shared "
            "only through --redis-url).",
        ),
    ] = 1,
    fd: Annotated[int | None, typer.Option("--fd", hidden=True)] = None,
    log_prompts: Annotated[
        bool, typer.Option("--log-prompts", help="Log prompt texts (with -v; off by default).")
    ] = False,
    litellm_calls: Annotated[
        bool,
        typer.Option(
            "--litellm-calls",
            help="Call OpenAI-compatible endpoints through LiteLLM too (default: directly, "
            "which costs far less CPU per call).",
        ),
    ] = False,
    trust_endpoints: TrustEndpointsOpt = False,
    verbose: VerboseOpt = 0,
) -> None:
    """Serve routers behind an OpenAI-compatible API (POST /v1/chat/completions).

    Clients call model "llmrouter/<router>" (optionally "llmrouter/<router>:cost_weight=200")
    to be routed, or a pool model's name to call it directly.
    """
    setup_logging(verbose)
    with user_errors():
        if not 0 < port < 65536:
            fail(f"--port must be in 1..65535, got {port}")
        if max_body_bytes < 1024 or max_prompt_chars < 1:
            fail("--max-body-bytes must be at least 1024 and --max-prompt-chars at least 1")
        if not (math.isfinite(timeout) and timeout > 0) or max_retries < 0:
            fail("--timeout must be > 0 seconds and --max-retries >= 0")
        check_amount(drain_timeout, "--drain-timeout")
        if keys is None and not _loopback(host):
            err_console.print(
                f"warning: serving on {plain(host)} without --keys: anyone who can reach it "
                "can spend your API budget"
            )
        from llmrouter_core.cli.run_commands import _quiet_litellm
        from llmrouter_core.serving import KeyRing, RedisState, ServeConfig, make_server

        routers = _routers(router_dir, trust_endpoints)
        first = next(iter(routers.values()))
        exec_pool = execution_pool(first, pool, replay)
        for name, router in routers.items():
            names = (exec_pool or first.pool_).names
            missing = [m for m in router.models_ if m not in names]
            if missing:
                fail(f"router {name} needs models the served pool lacks: {', '.join(missing)}")
        ring = KeyRing.from_file(keys) if keys is not None else None
        if workers < 1:
            fail("--workers must be at least 1")
        if workers > 1:
            limited = ring is not None and any(
                k.budget is not None or k.rpm is not None for k in ring.keys
            )
            if limited and not redis_url:
                fail(
                    "--workers > 1 with key budgets or rate limits needs --redis-url (each "
                    "worker would otherwise keep its own)"
                )
            from llmrouter_core.serving.server import run_workers

            raise typer.Exit(run_workers(_worker_argv(), host, port, workers))
        state = RedisState(redis_url) if redis_url else None
        _quiet_litellm()
        config = ServeConfig(
            routers=routers,
            pool=exec_pool,
            keys=ring,
            state=state,
            max_body_bytes=max_body_bytes,
            max_prompt_chars=max_prompt_chars,
            timeout=timeout,
            max_retries=max_retries,
            drain_timeout=drain_timeout,
            log_prompts=log_prompts,
            direct=not litellm_calls,
        )
        server = make_server(config, host=host, port=port, fd=fd)
        served = ", ".join(f"llmrouter/{n}" for n in routers)
        err_console.print(f"serving {plain(served)} on http://{plain(host)}:{port}/v1")
        server.run()


def _worker_argv() -> list[str]:
    """This command's arguments without ``--workers`` (what each worker runs)."""
    argv, out, skip = sys.argv[1:], [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--workers":
            skip = True
        elif not arg.startswith("--workers="):
            out.append(arg)
    return out


def serve_key(
    name: Annotated[str, typer.Argument(help="The key's name (metrics, logs, budgets).")],
    keys: Annotated[Path, typer.Option("--keys", help="The API keys file to append to.")],
    budget: Annotated[
        float | None, typer.Option("--budget", help="USD this key may spend in total.")
    ] = None,
    routers: Annotated[
        list[str] | None,
        typer.Option("--router", help="A router it may use (repeatable; '*' = pool models)."),
    ] = None,
    rpm: Annotated[int | None, typer.Option("--rpm", help="Requests per minute.")] = None,
) -> None:
    """Create an API key for ``llmrouter serve``: its hash goes to the keys file, the key
    is printed once (store it; it cannot be shown again)."""
    with user_errors():
        check_amount(budget, "--budget")
        from llmrouter_core.serving import append_key

        key = append_key(keys, name, budget=budget, routers=routers, rpm=rpm)
        typer.echo(key)


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def register(app: typer.Typer) -> None:
    """Add ``serve`` and ``serve-key`` to the ``llmrouter`` app."""
    app.command("serve")(serve)
    app.command("serve-key")(serve_key)
