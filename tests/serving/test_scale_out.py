"""Scale-out: two ``llmrouter serve`` processes share one real Redis; a key's budget is never
exceeded across them, rate limits are shared, and router feedback reaches every replica."""

from __future__ import annotations

import math
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from serve_helpers import free_port, llmrouter_cli, output, running, stop, wait_http

from llmrouter_core.data import RoutingData
from llmrouter_core.serving import ApiKey, KeyRing, RedisState, ServeConfig, hash_key

pytestmark = pytest.mark.allow_hosts(["127.0.0.1"])

KEY = "sk-shared-0123456789abcdefghijklmnopqrstu"
LIMITED = "sk-limited-0123456789abcdefghijklmnopqrst"


@pytest.fixture()
def redis_url(tmp_path: Path) -> Iterator[str]:
    """A real redis-server on a free loopback port, without persistence."""
    exe = shutil.which("redis-server")
    if exe is None:
        pytest.fail("redis-server is not installed (scripts/test.sh installs it)")
    port = free_port()
    proc = subprocess.Popen(
        [
            exe,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(tmp_path),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    import redis

    client = redis.Redis(port=port)
    deadline = time.monotonic() + 20
    while True:
        try:
            client.ping()
            break
        except redis.ConnectionError:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                pytest.fail("redis-server did not start")
            time.sleep(0.05)
    client.close()
    try:
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        stop(proc)


def _keys_file(path: Path) -> Path:
    path.write_text(
        "keys:\n"
        f"  - name: shared\n    sha256: {hash_key(KEY)}\n    budget: 0.04\n"
        f"  - name: limited\n    sha256: {hash_key(LIMITED)}\n    rpm: 6\n",
        encoding="utf-8",
    )
    return path


def test_more_requests_in_flight_than_connections_wait_for_one(redis_url: str) -> None:
    """300 reservations at once through 8 connections: each waits for a connection, none
    fails, and the budget grants exactly what fits."""
    import asyncio

    async def go() -> list[Any]:
        state = RedisState(redis_url, prefix="crowd", max_connections=8)
        budget = state.budget("k", 0.2)
        try:
            return await asyncio.gather(*(budget.atry_reserve(0.001) for _ in range(300)))
        finally:
            await state.close()

    granted = [r for r in asyncio.run(go()) if r is not None]
    assert len(granted) == 200 and len({r.id for r in granted}) == 200


def test_async_requests_settle_a_redis_budget_without_blocking_calls(redis_url: str) -> None:
    """Through the executor's async paths (plain, a fallback after a refused call, a stream
    cut mid-way), every hold on a Redis budget is settled or released with the async client:
    the blocking one is taken away, and the budget still ends exact, nothing held."""
    import asyncio

    from serve_helpers import running_app, upstream_spec

    from llmrouter_core.execution import Executor, PoolOrderRouter, StreamInterruptedError
    from llmrouter_core.pool import Pool
    from llmrouter_core.testing.upstream import Behaviour, FakeUpstream

    upstream = FakeUpstream(
        {
            "fast": Behaviour(),
            "limited": Behaviour(rate_429=1.0),
            "cut": Behaviour(rate_disconnect=1.0),
        }
    )

    async def go(url: str) -> tuple[list[float], dict[str, float]]:
        state = RedisState(redis_url, prefix="nonblocking")
        budget = state.budget("k", 1.0)
        blocking = state.sync
        # Any blocking call now fails loudly.
        state.sync = state.reserve_sync = state.settle_sync = None
        costs = []
        try:
            for names in (["fast"], ["limited", "fast"]):
                pool = Pool([upstream_spec(n, url) for n in names])
                ex = Executor(PoolOrderRouter(pool), pool=pool, budget=budget, max_retries=0)
                costs.append((await ex.acomplete("Say something.")).cost)
            pool = Pool([upstream_spec("cut", url)])
            ex = Executor(PoolOrderRouter(pool), pool=pool, budget=budget, max_retries=0)
            with pytest.raises(StreamInterruptedError):
                async for _ in ex.astream("Say something."):
                    pass
        finally:
            state.sync = blocking
            fields = {
                k.decode(): float(v) for k, v in blocking.hgetall("nonblocking:budget:{k}").items()
            }
            await state.close()
        return costs, fields

    with running_app(upstream.app) as url:
        costs, fields = asyncio.run(go(url))
    assert fields["held"] == pytest.approx(0.0, abs=1e-12)  # every hold settled or released
    assert fields.get("overrun", 0.0) == 0.0
    # The two answers at their cost, plus the cut stream's prompt and delivered text.
    assert fields["spent"] > sum(costs) > 0


def test_two_replicas_never_exceed_a_shared_budget(
    redis_url: str, router_dir: Path, data_dir: Path, arc_test: RoutingData, tmp_path: Path
) -> None:
    import redis

    keys = _keys_file(tmp_path / "keys.yaml")
    replay = str(data_dir / "routerbench" / "arc_challenge_test.csv")
    ports = [free_port(), free_port()]
    procs = [
        llmrouter_cli(
            "serve",
            "--router-dir",
            str(router_dir),
            "--replay",
            replay,
            "--port",
            str(p),
            "--redis-url",
            redis_url,
            "--keys",
            str(keys),
            log=tmp_path / f"replica-{p}.log",
        )
        for p in ports
    ]
    try:
        for p, proc in zip(ports, procs):
            wait_http(f"http://127.0.0.1:{p}/ready", proc)
        queries = list(arc_test.queries[:48])
        outcomes: list[tuple[int, int, float | None, str]] = []
        lock = threading.Lock()

        def one(i: int, q: str) -> None:
            url = f"http://127.0.0.1:{ports[i % 2]}/v1/chat/completions"
            body = {
                "model": "llmrouter/knn:cost_weight=0",
                "messages": [{"role": "user", "content": q}],
            }
            r = httpx.post(url, json=body, headers={"authorization": f"Bearer {KEY}"}, timeout=60)
            cost = float(r.headers["x-llmrouter-cost"]) if r.status_code == 200 else None
            code = "" if r.status_code == 200 else r.json()["error"]["code"]
            with lock:
                outcomes.append((i % 2, r.status_code, cost, code))

        threads = [threading.Thread(target=one, args=(i, q)) for i, q in enumerate(queries)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        # Nothing lost: every request got an answer or a clear budget error.
        assert len(outcomes) == len(queries)
        assert {(s, c) for _, s, _, c in outcomes} <= {(200, ""), (429, "insufficient_quota")}
        answered = [o for o in outcomes if o[1] == 200]
        assert {o[0] for o in answered} == {0, 1}  # both replicas answered
        assert any(o[1] == 429 for o in outcomes)  # and the budget ran out
        spent_by_clients = math.fsum(o[2] for o in answered if o[2] is not None)
        r = redis.Redis.from_url(redis_url)
        fields = {k.decode(): float(v) for k, v in r.hgetall("llmrouter:budget:{shared}").items()}
        assert spent_by_clients <= 0.04 + 1e-12
        assert math.isclose(fields["spent"], spent_by_clients, rel_tol=1e-9)
        assert fields.get("overrun", 0.0) == 0.0
        assert r.hlen("llmrouter:holds:{shared}") == 0  # every hold settled or released

        # A rate limit is shared too: 6 requests a minute in all, whichever replica.
        if time.time() % 60 > 50:  # keep the ten requests inside one minute
            time.sleep(61 - time.time() % 60)
        statuses = []
        for i in range(10):
            url = f"http://127.0.0.1:{ports[i % 2]}/v1/models"
            statuses.append(
                httpx.get(
                    url, headers={"authorization": f"Bearer {LIMITED}"}, timeout=30
                ).status_code
            )
        assert statuses.count(200) == 6 and statuses.count(429) == 4
    finally:
        codes = [stop(p) for p in procs]
    assert codes == [0, 0], [output(p) for p in procs]  # SIGTERM: a clean drain and exit


def test_feedback_reaches_every_replica_through_redis(redis_url: str, arc: RoutingData) -> None:
    import llmrouter_core as lr

    train = arc.split("train").subset(np.arange(200))
    replicas = [lr.get_router("bandit").fit(train) for _ in range(2)]
    query, model = arc.split("test").queries[0], replicas[0].models_[0]

    def config(router: Any) -> ServeConfig:
        return ServeConfig(
            routers={"bandit": router},
            state=RedisState(redis_url),
            keys=KeyRing([ApiKey("shared", hash_key(KEY))]),
        )

    with running(config(replicas[0])) as a, running(config(replicas[1])) as b:
        before = [r.scorer_.n_feedback_ for r in replicas]
        body = {"model": "llmrouter/bandit", "query": query, "answered_by": model, "score": 1.0}
        auth = {"authorization": f"Bearer {KEY}"}
        resp = httpx.post(a.url + "/v1/feedback", json=body, headers=auth, timeout=30)
        assert resp.status_code == 200, resp.text
        bad = httpx.post(
            b.url + "/v1/feedback", json={**body, "score": 7}, headers=auth, timeout=30
        )
        assert bad.status_code == 400 and bad.json()["error"]["param"] == "score"
        deadline = time.monotonic() + 20
        while [r.scorer_.n_feedback_ for r in replicas] != [n + 1 for n in before]:
            assert time.monotonic() < deadline, "feedback did not reach both replicas"
            time.sleep(0.05)


def test_workers_share_one_port_and_drain_on_sigterm(
    router_dir: Path, data_dir: Path, arc_test: RoutingData, knn_router: Any, tmp_path: Path
) -> None:
    port = free_port()
    replay = str(data_dir / "routerbench" / "arc_challenge_test.csv")
    args = ["serve", "--router-dir", str(router_dir), "--replay", replay, "--port", str(port)]
    proc = llmrouter_cli(*args, "--workers", "2", log=tmp_path / "workers.log")
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(url + "/ready", proc)
        pids: set[int] = set()
        deadline = time.monotonic() + 90
        while len(pids) < 2:  # both workers answer on the one port
            assert time.monotonic() < deadline, f"only workers {pids} answered"
            with httpx.Client() as client:  # a new connection each time
                pids.add(client.get(url + "/health", timeout=10).json()["pid"])
        assert proc.pid not in pids
        query = arc_test.queries[4]
        body = {"model": "llmrouter/knn", "messages": [{"role": "user", "content": query}]}
        resp = httpx.post(url + "/v1/chat/completions", json=body, timeout=60)
        assert resp.status_code == 200
        assert resp.json()["model"] == knn_router.route(query).model
    finally:
        code = stop(proc)
    assert code == 0, output(proc)
    for pid in pids:  # every worker exited too (and was waited for)
        assert not Path(f"/proc/{pid}").exists()
