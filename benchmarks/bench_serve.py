"""Load and faults through the serving paths, on loopback: what a gateway adds, what it loses.

A fake OpenAI-compatible upstream (``llmrouter_core.testing.upstream``) runs in its own
process with two models: ``fast`` (no faults) and ``flaky`` (injected 429s, 500s, hangs past
the callers' timeout, and streams cut mid-way). Then ``--concurrency`` clients send requests
through each path:

* (a) ``direct``: the upstream itself;
* (b) ``llmrouter``: ``llmrouter serve`` (a router that prefers ``flaky`` and falls back to
  ``fast``), with an API key and its budget; with ``--litellm-calls``, once more with every
  model call through LiteLLM's call path instead of the direct one;
* (c) ``litellm``: LiteLLM's proxy forwarding to the same upstream without routing (with a
  fallback from ``flaky`` to ``fast``);
* (d) ``litellm+router``: the same LiteLLM proxy process, model ``llmrouter/bench`` (our
  router through the ``llmrouter`` custom provider).

Two workloads per path: ``clean`` (non-streaming, model ``fast``, routed ``:cost_weight=inf``
for (b)/(d) so that the router picks ``fast`` too) for throughput and added latency, and
``faults`` (model ``flaky``, half streamed) for errors and lost requests. A last scenario,
``budget``, runs two ``llmrouter serve`` replicas sharing a real ``redis-server`` with one key
whose budget runs out under the faulty load, and checks that the spend stays within it.

What "200 concurrent" means here (``--concurrency 200``): 200 clients, each with its own
keep-alive HTTP/1.1 connection, opened before the clock starts (200 simultaneous GETs of a
cheap endpoint); each client sends its next request as soon as its previous one is answered
(a closed loop), so exactly 200 requests are in flight at every moment until the last ones.
``--warm`` untimed requests per row warm the path first (LiteLLM imports provider code on its
first call). In a closed loop, latency = 200 / throughput (Little's law): once a gateway is
CPU-bound, its added latency is its CPU per request x 200, queueing, not a per-request
overhead. ``--rate R`` runs an open loop instead: requests start at R per second with at most
``--concurrency`` in flight, which measures the added latency of a gateway that keeps up.
``--latency`` / ``--jitter`` set the upstream's answer time: at the default 20 ms, 200 clients
ask for 10,000 answers a second, past what two cores serve through any Python gateway; at a
few hundred milliseconds (a short model answer) the same closed loop measures what the gateway
adds to a call. ``--workers N`` runs (b) with N worker processes, which share the key's budget
through a ``redis-server`` started for the row. ``--floor`` adds (e), a pass-through proxy on
the same stack (uvicorn, Starlette, aiohttp) that does nothing else: the floor of what a
Python gateway adds on this machine. Clients close a connection idle for 4 s (servers close
theirs after 5 s; a request sent on a connection the server is closing would fail with a
reset that no gateway caused).

The clients run in this process, on aiohttp (its C HTTP parser) and uvloop when installed;
the ``client CPU ms/req`` column shows what they cost, so the reader can check that the
harness is not the bottleneck (a one-process httpx client with 200 connections spent about
8 ms of CPU per request on this 2-core machine: it, not the upstream, made the direct path
look slow). Servers run on uvicorn, which uses uvloop and httptools when installed.

Printed: requests, throughput, the mean number of requests in flight (Little's law), p50 / p99
latency and their excess over (a), answered, errors (an error status or an in-stream error
event), lost (no answer and no error: a dropped
connection, a stream that ends without either), the CPU per request of the server process
(``gw CPU ms/req``: user + system time from ``/proc``, the figure that survives a busy
machine) and of the clients, the 1-minute load average when the row started, and for
``budget`` the spend against the limit. Every process listens on 127.0.0.1 and is stopped at
the end.

Usage:
    python benchmarks/bench_serve.py [--requests 2000] [--concurrency 200] [--latency 0.02]
        [--jitter 0.01] [--workers 1]
        [--warm 200] [--rate R] [--litellm-calls] [--skip-litellm] [--skip-budget]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
KEY = "sk-bench-0123456789abcdefghijklmnopqrstuv"
MASTER = "sk-bench-master-0123456789abcdef"
PRICES = {"fast": (1.0, 2.0), "flaky": (5.0, 10.0)}  # USD per 1M tokens, in and out


# -- processes --------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_url(url: str, proc: subprocess.Popen[bytes], timeout: float = 180.0) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args!r} exited with {proc.returncode}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    raise RuntimeError(f"{url} did not come up within {timeout}s")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process and its live child processes (a server's workers)
    have used (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    own = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        children = []
    return own + sum(cpu_seconds(int(child)) for child in children)


@contextmanager
def process(
    args: list[str], ready_url: str, log: Path, env: dict[str, str]
) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``args`` until the block ends (SIGTERM, then SIGKILL after 20 s)."""
    with open(log, "wb") as sink:
        proc = subprocess.Popen(args, env=env, stdout=sink, stderr=subprocess.STDOUT)
    try:
        try:
            wait_url(ready_url, proc)
        except RuntimeError as exc:
            tail = log.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"{exc}; the end of its output:\n{tail}") from None
        yield proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


def base_env() -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "BENCH_UPSTREAM_KEY": "sk-fake-upstream",
    }


def run_upstream(port: int, latency: float, jitter: float, seed: int) -> None:
    """The upstream process (``--upstream PORT``)."""
    import uvicorn

    from llmrouter_core.testing.upstream import Behaviour, FakeUpstream

    up = FakeUpstream(
        {
            "fast": Behaviour(latency=latency, jitter=jitter),
            "flaky": Behaviour(
                latency=latency,
                jitter=jitter,
                rate_429=0.05,
                rate_500=0.05,
                rate_timeout=0.01,
                rate_disconnect=0.05,
                hang=4.0,
            ),
        },
        seed=seed,
    )
    uvicorn.run(up.app, host="127.0.0.1", port=port, log_level="error", access_log=False)


def write_setup(tmp: Path, upstream: str, budget: float) -> dict[str, Path]:
    """The pool file, router directory, keys file and LiteLLM config of the run."""
    from llmrouter_core.pool import ModelSpec, Pool
    from llmrouter_core.serving import hash_key
    from llmrouter_core.testing import dummy_router

    pool = Pool(
        ModelSpec(
            name,
            litellm_model=f"openai/{name}",
            api_base=upstream + "/v1",
            api_key_env="BENCH_UPSTREAM_KEY",
            input_price=p_in,
            output_price=p_out,
        )
        for name, (p_in, p_out) in PRICES.items()
    )
    pool.save(tmp / "pool.json")
    # Predicted quality favours flaky (so the faults are met); cost_weight=inf picks fast.
    router = dummy_router({"flaky": 0.9, "fast": 0.6}, {"flaky": 2e-4, "fast": 4e-5}, pool)
    router.save(tmp / "router")
    (tmp / "keys.yaml").write_text(
        f"keys:\n  - name: bench\n    sha256: {hash_key(KEY)}\n    budget: {budget}\n"
    )
    models = [
        {
            "model_name": name,
            "litellm_params": {
                "model": f"openai/{name}",
                "api_base": upstream + "/v1",
                "api_key": "os.environ/BENCH_UPSTREAM_KEY",
                "timeout": 1.0,
                "input_cost_per_token": p_in / 1e6,
                "output_cost_per_token": p_out / 1e6,
            },
        }
        for name, (p_in, p_out) in PRICES.items()
    ]
    for group, model in (
        ("llmrouter/bench", "llmrouter/bench"),
        ("llmrouter/bench-cheap", "llmrouter/bench:cost_weight=inf"),
    ):
        models.append({"model_name": group, "litellm_params": {"model": model}})
    config = {
        "model_list": models,
        "router_settings": {"fallbacks": [{"flaky": ["fast"]}], "num_retries": 2},
        "litellm_settings": {
            "custom_provider_map": [
                {
                    "provider": "llmrouter",
                    "custom_handler": "llmrouter_core.serving.litellm_proxy.handler",
                }
            ],
            "request_timeout": 10,
        },
    }
    (tmp / "litellm.yaml").write_text(json.dumps(config))
    return {
        k: tmp / v
        for k, v in {
            "pool": "pool.json",
            "router": "router",
            "keys": "keys.yaml",
            "litellm": "litellm.yaml",
        }.items()
    }


def serve_args(
    files: dict[str, Path], port: int, redis_url: str | None = None, workers: int = 1
) -> list[str]:
    args = [
        sys.executable,
        "-c",
        "from llmrouter_core.cli.main import main; main()",
        "serve",
        "--router-dir",
        f"bench={files['router']}",
        "--pool",
        str(files["pool"]),
        "--keys",
        str(files["keys"]),
        "--port",
        str(port),
        "--timeout",
        "1",
        "--max-retries",
        "2",
        "--workers",
        str(workers),
    ]
    return args + (["--redis-url", redis_url] if redis_url else [])


@contextmanager
def redis_server() -> Iterator[str]:
    """A ``redis-server`` on loopback without persistence, until the block ends: its URL."""
    exe = shutil.which("redis-server")
    if exe is None:
        raise RuntimeError("redis-server is not installed (apt-get install redis-server)")
    port = free_port()
    proc = subprocess.Popen(
        [exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(10)


def run_floor(port: int, upstream: str) -> None:
    """The pass-through proxy of row (e) (``--floor-proxy PORT``): each request's body is
    posted to the upstream on one keep-alive pool and its answer returned as it is. No
    routing, keys, budgets or parsing: what the same stack (uvicorn, Starlette, aiohttp,
    uvloop) costs before a gateway does anything."""
    import aiohttp
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    sessions: list[aiohttp.ClientSession] = []

    async def chat(request: Request) -> Response:
        if not sessions:
            sessions.append(aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1000)))
        body = await request.body()
        headers = {"content-type": "application/json"}
        async with sessions[0].post(
            upstream + "/v1/chat/completions", data=body, headers=headers
        ) as r:
            return Response(await r.read(), status_code=r.status, media_type="application/json")

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    app = Starlette(
        routes=[
            Route("/v1/chat/completions", chat, methods=["POST"]),
            Route("/health", health, methods=["GET"]),
        ]
    )
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="error", access_log=False)


# -- the load -------------------------------------------------------------------------------


@dataclass
class Outcome:
    latencies: list[float] = field(default_factory=list)
    answered: int = 0
    errors: int = 0
    lost: int = 0
    cost: float = 0.0
    wall: float = 0.0
    statuses: dict[str, int] = field(default_factory=dict)


async def one_request(
    session: Any,
    url: str,
    model: str,
    stream: bool,
    n: int,
    headers: dict[str, str],
    out: Outcome,
) -> None:
    import aiohttp

    body: dict[str, Any] = {
        "model": model,
        "messages": [{"role": "user", "content": f"Request {n}: say something short."}],
        "max_tokens": 32,
    }
    if stream:
        body["stream"] = True
    started = time.perf_counter()
    try:
        async with session.post(url, json=body, headers=headers) as r:
            status = str(r.status)
            if r.status != 200:
                await r.read()
                out.errors += 1
            elif not stream:
                data = await r.json()
                if data["choices"][0]["message"]["content"]:
                    out.answered += 1
                    out.cost += float(r.headers.get("x-llmrouter-cost", 0) or 0)
                else:
                    out.errors += 1
            else:
                done, failed, text = False, False, ""
                async for raw in r.content:
                    line = raw.decode().strip()
                    if not line.startswith("data: "):
                        continue
                    data = line[6:]
                    if data == "[DONE]":
                        done = True
                        break
                    obj = json.loads(data)
                    if "error" in obj:
                        failed = True
                    for c in obj.get("choices") or []:
                        text += (c.get("delta") or {}).get("content") or ""
                if done and text and not failed:
                    out.answered += 1
                elif failed:
                    out.errors += 1
                    status = "stream-error"
                else:
                    out.lost += 1
                    status = "stream-cut"
    except (aiohttp.ClientError, asyncio.TimeoutError, json.JSONDecodeError) as exc:
        out.lost += 1
        status = type(exc).__name__
    out.latencies.append(time.perf_counter() - started)
    out.statuses[status] = out.statuses.get(status, 0) + 1


async def load(
    url: str,
    model: str,
    n: int,
    concurrency: int,
    stream_share: float,
    key: str | None,
    *,
    warm_url: str | None = None,
    warm_requests: int = 0,
    rate: float | None = None,
) -> Outcome:
    """Send ``n`` requests with at most ``concurrency`` in flight; see the module docstring.

    Before the clock starts, ``concurrency`` simultaneous GETs of ``warm_url`` open the
    keep-alive connections (one per client) and ``warm_requests`` untimed chat requests warm
    the path. ``rate``: start requests at this many per second (open loop) instead of each
    client sending its next request as soon as its last one ends (closed loop)."""
    import aiohttp

    out = Outcome()
    headers = {"authorization": f"Bearer {key}"} if key else {}
    # Idle connections close on this side first: uvicorn closes them after 5 s, and a request
    # sent on a connection the server is closing at that moment fails with a reset.
    connector = aiohttp.TCPConnector(limit=concurrency, keepalive_timeout=4.0)
    timeout = aiohttp.ClientTimeout(total=30.0)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def opened() -> None:
            async with session.get(warm_url or url.rsplit("/v1/", 1)[0] + "/v1/models") as r:
                await r.read()

        await asyncio.gather(*(opened() for _ in range(concurrency)))
        warm = Outcome()
        for start in range(0, warm_requests, concurrency):
            count = min(concurrency, warm_requests - start)
            await asyncio.gather(
                *(one_request(session, url, model, False, -i, headers, warm) for i in range(count))
            )
        every = round(1 / stream_share) if stream_share > 0 else 0
        started = time.perf_counter()
        if rate is None:
            todo = iter(range(n))

            async def client() -> None:
                for i in todo:  # a shared iterator: each request is sent by one client
                    stream = bool(every) and i % every == 0
                    await one_request(session, url, model, stream, i, headers, out)

            await asyncio.gather(*(client() for _ in range(concurrency)))
        else:
            slots = asyncio.Semaphore(concurrency)

            async def timed(i: int) -> None:
                try:
                    stream = bool(every) and i % every == 0
                    await one_request(session, url, model, stream, i, headers, out)
                finally:
                    slots.release()

            tasks = []
            for i in range(n):
                delay = started + i / rate - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                await slots.acquire()
                tasks.append(asyncio.create_task(timed(i)))
            await asyncio.gather(*tasks)
        out.wall = time.perf_counter() - started
    return out


def run_loop(coro: Any) -> Any:
    """``asyncio.run`` on uvloop when it is installed (a lighter client)."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))] if xs else float("nan")


def row(
    path: str,
    workload: str,
    out: Outcome,
    base: Outcome | None,
    cpu: float | None = None,
    client_cpu: float | None = None,
    load_avg: float | None = None,
) -> dict[str, Any]:
    n = out.answered + out.errors + out.lost
    p50, p99 = pct(out.latencies, 0.5), pct(out.latencies, 0.99)
    return {
        "path": path,
        "workload": workload,
        "requests": n,
        "req/s": n / out.wall if out.wall else float("nan"),
        # Little's law: the mean number of requests in flight over the row.
        "in flight": sum(out.latencies) / out.wall if out.wall else float("nan"),
        "p50 ms": 1000 * p50,
        "p99 ms": 1000 * p99,
        "+p50 ms": None if base is None else 1000 * (p50 - pct(base.latencies, 0.5)),
        "+p99 ms": None if base is None else 1000 * (p99 - pct(base.latencies, 0.99)),
        "answered": out.answered,
        "errors": out.errors,
        "lost": out.lost,
        "mean ms": 1000 * statistics.fmean(out.latencies) if out.latencies else float("nan"),
        "gw CPU ms/req": None if cpu is None else 1000 * cpu / max(n, 1),
        "client CPU ms/req": None if client_cpu is None else 1000 * client_cpu / max(n, 1),
        "load": load_avg,
        "statuses": dict(sorted(out.statuses.items())),
    }


def print_table(rows: list[dict[str, Any]]) -> None:
    cols = [
        "path",
        "workload",
        "requests",
        "req/s",
        "in flight",
        "p50 ms",
        "p99 ms",
        "+p50 ms",
        "+p99 ms",
        "answered",
        "errors",
        "lost",
        "gw CPU ms/req",
        "client CPU ms/req",
        "load",
    ]
    print("| " + " | ".join(cols) + " |")
    print("|" + "---|" * len(cols))
    for r in rows:
        cells = []
        for c in cols:
            v = r[c]
            fmt = "{:.2f}" if c.endswith("CPU ms/req") or c == "load" else "{:.1f}"
            cells.append("-" if v is None else fmt.format(v) if isinstance(v, float) else str(v))
        print("| " + " | ".join(cells) + " |")
    print("\nAnswers by status (HTTP status, or what happened to a request without one):")
    for r in rows:
        print(f"  {r['path']} / {r['workload']}: {r['statuses']}")


# -- main -----------------------------------------------------------------------------------


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--requests", type=int, default=2000, help="requests per path and workload")
    ap.add_argument("--concurrency", type=int, default=200)
    ap.add_argument("--latency", type=float, default=0.02, help="upstream latency (s)")
    ap.add_argument(
        "--jitter",
        type=float,
        help="upstream latency's random part, uniform in [0, jitter] s (default: latency / 2)",
    )
    ap.add_argument("--stream-share", type=float, default=0.5, help="share streamed (faults)")
    ap.add_argument("--budget", type=float, default=0.03, help="USD of the budget scenario")
    ap.add_argument("--skip-litellm", action="store_true")
    ap.add_argument("--skip-budget", action="store_true")
    ap.add_argument(
        "--litellm-calls",
        action="store_true",
        help="also run (b) with --litellm-calls (every call through LiteLLM's call path)",
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--warm", type=int, default=200, help="untimed requests per row before the clock starts"
    )
    ap.add_argument(
        "--rate",
        type=float,
        help="open loop: start this many requests per second (at most --concurrency in "
        "flight) instead of each client sending its next request when its last one ends",
    )
    ap.add_argument("--workers", type=int, default=1, help="worker processes of (b)")
    ap.add_argument(
        "--floor",
        action="store_true",
        help="also run (e): a pass-through proxy on the same stack, without routing (the floor "
        "of what a Python gateway adds)",
    )
    ap.add_argument("--upstream", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--floor-proxy", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--upstream-url", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.jitter is None:
        args.jitter = args.latency / 2
    if args.upstream:
        run_upstream(args.upstream, args.latency, args.jitter, args.seed)
        return
    if args.floor_proxy:
        run_floor(args.floor_proxy, args.upstream_url)
        return
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    env = base_env()
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-serve-") as tmpdir:
        tmp = Path(tmpdir)
        up_port = free_port()
        upstream = f"http://127.0.0.1:{up_port}"
        files = write_setup(tmp, upstream, budget=1e6)
        up_args = [
            sys.executable,
            __file__,
            "--upstream",
            str(up_port),
            "--latency",
            str(args.latency),
            "--jitter",
            str(args.jitter),
            "--seed",
            str(args.seed),
        ]
        with process(up_args, upstream + "/v1/models", tmp / "upstream.log", env) as up:
            n, c = args.requests, args.concurrency

            def run(
                path: str,
                workload: str,
                proc: Any,
                url: str,
                model: str,
                key: str | None,
                base: Outcome | None,
                warm_url: str,
            ) -> Outcome:
                """One row: the load, and the CPU the gateway process ``proc`` and this
                (client) process spent on it."""
                share = args.stream_share if workload == "faults" else 0.0
                load_avg = os.getloadavg()[0]
                before, client = cpu_seconds(proc.pid), cpu_seconds(os.getpid())
                out = run_loop(
                    load(
                        url,
                        model,
                        n,
                        c,
                        share,
                        key,
                        warm_url=warm_url,
                        warm_requests=args.warm,
                        rate=args.rate,
                    )
                )
                gw_cpu = cpu_seconds(proc.pid) - before
                client_cpu = cpu_seconds(os.getpid()) - client
                rows.append(row(path, workload, out, base, gw_cpu, client_cpu, load_avg))
                return out

            chat = upstream + "/v1/chat/completions"
            up_warm = upstream + "/v1/models"
            direct = run("(a) direct", "clean", up, chat, "fast", None, None, up_warm)
            direct_f = run("(a) direct", "faults", up, chat, "flaky", None, None, up_warm)

            workers = f" --workers {args.workers}" if args.workers > 1 else ""
            variants = [(f"(b) llmrouter serve{workers}", [])]
            if args.litellm_calls:
                variants.append(("(b) llmrouter serve --litellm-calls", ["--litellm-calls"]))
            for b, extra in variants:
                port = free_port()
                url = f"http://127.0.0.1:{port}"
                with ExitStack() as stack:
                    # Workers share the key's budget through Redis (serve requires it).
                    shared = stack.enter_context(redis_server()) if args.workers > 1 else None
                    sargs = serve_args(files, port, shared, workers=args.workers) + extra
                    gw = stack.enter_context(process(sargs, url + "/ready", tmp / "serve.log", env))
                    chat = url + "/v1/chat/completions"
                    cheap = "llmrouter/bench:cost_weight=inf"
                    run(b, "clean", gw, chat, cheap, KEY, direct, url + "/health")
                    run(b, "faults", gw, chat, "llmrouter/bench", KEY, direct_f, url + "/health")

            if args.floor:
                port = free_port()
                url = f"http://127.0.0.1:{port}"
                fargs = [sys.executable, __file__, "--floor-proxy", str(port)]
                fargs += ["--upstream-url", upstream]
                with process(fargs, url + "/health", tmp / "floor.log", env) as gw:
                    chat = url + "/v1/chat/completions"
                    run(
                        "(e) pass-through floor",
                        "clean",
                        gw,
                        chat,
                        "fast",
                        None,
                        direct,
                        url + "/health",
                    )

            if not args.skip_litellm:
                port = free_port()
                url = f"http://127.0.0.1:{port}"
                lenv = {
                    **env,
                    "LITELLM_MASTER_KEY": MASTER,
                    "LLMROUTER_ROUTERS": f"bench={files['router']}",
                    "LLMROUTER_POOL": str(files["pool"]),
                }
                exe = shutil.which("litellm", path=str(Path(sys.executable).parent)) or "litellm"
                largs = [exe, "--config", str(files["litellm"]), "--host", "127.0.0.1"]
                largs += ["--port", str(port)]
                ready = url + "/health/liveliness"
                with process(largs, ready, tmp / "litellm.log", lenv) as gw:
                    chat = url + "/v1/chat/completions"
                    c_ = "(c) LiteLLM proxy"
                    run(c_, "clean", gw, chat, "fast", MASTER, direct, ready)
                    run(c_, "faults", gw, chat, "flaky", MASTER, direct_f, ready)
                    # Routed with the deployment's knobs: prefers flaky, falls back to fast.
                    d = "(d) LiteLLM + router"
                    run(d, "clean", gw, chat, "llmrouter/bench-cheap", MASTER, direct, ready)
                    run(d, "faults", gw, chat, "llmrouter/bench", MASTER, direct_f, ready)

            shape = (
                f"{c} concurrent clients (closed loop)"
                if args.rate is None
                else f"open loop at {args.rate:g} req/s, at most {c} in flight"
            )
            print(
                f"\n{n} requests per row, {shape}, upstream latency "
                f"{args.latency * 1000:.0f} ms (+ up to {args.jitter * 1000:.0f} ms jitter)"
            )
            print_table(rows)
            if not args.skip_budget:
                budget_scenario(tmp, upstream, args, env)


def budget_scenario(tmp: Path, upstream: str, args: Any, env: dict[str, str]) -> None:
    """Two replicas sharing Redis, one key whose budget runs out under the faulty load."""
    import redis

    if shutil.which("redis-server") is None:
        print("\nbudget: skipped (redis-server is not installed)")
        return
    (tmp / "budget").mkdir()
    files = write_setup(tmp / "budget", upstream, budget=args.budget)
    with redis_server() as redis_url:
        ports = [free_port(), free_port()]
        with (
            process(
                serve_args(files, ports[0], redis_url),
                f"http://127.0.0.1:{ports[0]}/ready",
                tmp / "r0.log",
                env,
            ),
            process(
                serve_args(files, ports[1], redis_url),
                f"http://127.0.0.1:{ports[1]}/ready",
                tmp / "r1.log",
                env,
            ),
        ):
            half = args.requests // 2

            async def both() -> list[Outcome]:
                return list(
                    await asyncio.gather(
                        *(
                            load(
                                f"http://127.0.0.1:{p}/v1/chat/completions",
                                "llmrouter/bench",
                                half,
                                args.concurrency // 2,
                                args.stream_share,
                                KEY,
                            )
                            for p in ports
                        )
                    )
                )

            outs = run_loop(both())
        fields = {
            k.decode(): float(v)
            for k, v in redis.Redis.from_url(redis_url).hgetall("llmrouter:budget:{bench}").items()
        }
    spent = fields.get("spent", 0.0)
    answered = sum(o.answered for o in outs)
    refused = sum(o.statuses.get("429", 0) for o in outs)
    print(
        f"\nbudget: 2 replicas sharing Redis, {2 * half} requests, {args.concurrency} "
        f"concurrent, limit ${args.budget}"
    )
    print(
        f"  answered {answered}, refused (429) {refused}, other errors "
        f"{sum(o.errors for o in outs) - refused}, lost {sum(o.lost for o in outs)}"
    )
    print(
        f"  spent ${spent:.6f} of ${args.budget} (overrun ${max(0.0, spent - args.budget):.6f}; "
        f"settlements above their hold ${fields.get('overrun', 0.0):.6f})"
    )


if __name__ == "__main__":
    main()
