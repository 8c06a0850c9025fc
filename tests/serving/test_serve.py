"""``llmrouter serve`` with the real ``openai`` client and LangChain's ChatOpenAI, against a
server on loopback answering with RouterBench's recorded responses (replay) or with scripted
models (tool calls)."""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from typing import Any

import httpx
import openai
import pytest
from serve_helpers import recorded, running, running_app, upstream_spec

from llmrouter_core.data import RoutingData
from llmrouter_core.providers.replay import replay_pool
from llmrouter_core.serving import ApiKey, KeyRing, ServeConfig, hash_key
from llmrouter_core.testing import ScriptedProvider, ScriptedReply, dummy_router
from llmrouter_core.testing.upstream import Behaviour, FakeUpstream

pytestmark = pytest.mark.allow_hosts(["127.0.0.1"])

KEY_A = "sk-test-a-0123456789abcdefghijklmnop"
KEY_B = "sk-test-b-0123456789abcdefghijklmnop"


def _config(router: Any, **kwargs: Any) -> ServeConfig:
    return ServeConfig(routers={"knn": router}, pool=replay_pool(router.pool_), **kwargs)


def _client(url: str, key: str = "unused") -> openai.OpenAI:
    return openai.OpenAI(base_url=url + "/v1", api_key=key, max_retries=0, timeout=30)


def test_chat_routes_and_answers_with_the_chosen_models_recorded_answer(
    replaying: RoutingData, knn_router: Any
) -> None:
    data = replaying
    with running(_config(knn_router)) as srv:
        client = _client(srv.url)
        for i in (0, 5, 40):
            query = data.queries[i]
            raw = client.chat.completions.with_raw_response.create(
                model="llmrouter/knn", messages=[{"role": "user", "content": query}]
            )
            resp = raw.parse()
            model = resp.model
            assert model in knn_router.models_
            # The router's own decision for this query, and that model's recorded answer.
            assert model == knn_router.route(query).model
            text, cost = recorded(data, query, model)
            assert resp.choices[0].message.content == text  # nothing added to the content
            assert raw.headers["x-llmrouter-model"] == model
            assert math.isclose(float(raw.headers["x-llmrouter-cost"]), cost, rel_tol=1e-9)
            assert resp.usage is not None and resp.usage.prompt_tokens > 0
        listed = [m.id for m in client.models.list().data]
        assert "llmrouter/knn" in listed and set(knn_router.models_) <= set(listed)


def test_knobs_in_the_model_name_and_the_body_extension(
    replaying: RoutingData, knn_router: Any
) -> None:
    query = replaying.queries[3]
    msgs = [{"role": "user", "content": query}]
    cheapest = knn_router.route(query, cost_weight=math.inf).model
    with running(_config(knn_router)) as srv:
        client = _client(srv.url)
        resp = client.chat.completions.create(model="llmrouter/knn:cost_weight=inf", messages=msgs)
        assert resp.model == cheapest
        resp = client.chat.completions.create(
            model="llmrouter/knn",
            messages=msgs,
            extra_body={"llmrouter": {"cost_weight": 0, "explain": True}},
        )
        best = knn_router.route(query, cost_weight=0.0)
        assert resp.model == best.model
        ext = resp.model_extra["llmrouter"]  # type: ignore[index]
        assert ext["decision"]["ranked"][0] == best.model and ext["router"] == "llmrouter/knn"
        # A plain pool model is called unrouted.
        resp = client.chat.completions.create(model="claude-instant-v1", messages=msgs)
        assert resp.model == "claude-instant-v1"
        assert resp.choices[0].message.content == recorded(replaying, query, resp.model)[0]


def test_stream_delivers_the_answer_in_pieces_with_usage(
    replaying_mbpp: RoutingData, knn_router: Any
) -> None:
    data = replaying_mbpp  # recorded MBPP answers: code, many words each
    query = next(
        q for q in data.queries if len(recorded(data, q, knn_router.route(q).model)[0]) > 200
    )
    model = knn_router.route(query).model
    text, _ = recorded(data, query, model)
    with running(_config(knn_router)) as srv:
        stream = _client(srv.url).chat.completions.create(
            model="llmrouter/knn",
            messages=[{"role": "user", "content": query}],
            stream=True,
            stream_options={"include_usage": True},
        )
        pieces, usage, models, ext = [], None, set(), None
        for chunk in stream:
            models.add(chunk.model)
            if chunk.choices:
                pieces.append(chunk.choices[0].delta.content or "")
                ext = (chunk.model_extra or {}).get("llmrouter") or ext
            else:
                usage = chunk.usage
        assert "".join(pieces) == text
        assert sum(1 for p in pieces if p) > 3  # real token streaming, not one blob
        assert models == {model}
        assert usage is not None and usage.completion_tokens > 0
        # The stream's cost: in the last content chunk's extension and in the usage chunk.
        assert ext is not None and ext["model"] == model
        cost = (usage.model_extra or {})["cost"]
        assert cost == ext["cost"] and cost == pytest.approx(recorded(data, query, model)[1])


def test_tools_plain_and_streamed_through_the_openai_client() -> None:
    call = {"id": "call_1", "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'}}
    provider = ScriptedProvider(
        {"no-tools": "I cannot call tools", "tooly": ScriptedReply("", [call])}
    )
    pool = provider.pool(prices={"no-tools": 0.1, "tooly": 5.0}).replace(
        "tooly", supports_tools=True
    )
    pool = pool.replace("no-tools", supports_tools=False)
    router = dummy_router({"no-tools": 0.9, "tooly": 0.5}, {"no-tools": 1e-6, "tooly": 1e-4}, pool)
    tools = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
            },
        }
    ]
    msgs = [{"role": "user", "content": "Weather in Oslo?"}]
    with running(ServeConfig(routers={"auto": router})) as srv:
        client = _client(srv.url)
        # Without tools the router's favourite answers; with tools only the tool model can.
        assert client.chat.completions.create(model="llmrouter/auto", messages=msgs).model == (
            "no-tools"
        )
        resp = client.chat.completions.create(model="llmrouter/auto", messages=msgs, tools=tools)
        assert resp.model == "tooly"
        assert resp.choices[0].finish_reason == "tool_calls"
        tc = resp.choices[0].message.tool_calls
        assert tc is not None and tc[0].function.name == "get_weather"
        assert json.loads(tc[0].function.arguments) == {"city": "Oslo"}
        stream = client.chat.completions.create(
            model="llmrouter/auto", messages=msgs, tools=tools, stream=True
        )
        chunks = list(stream)
        calls = [d for c in chunks for d in (c.choices[0].delta.tool_calls or []) if c.choices]
        assert calls and calls[0].function.name == "get_weather"
        assert chunks[-1].choices[0].finish_reason == "tool_calls"
    sent = [c for c in provider.calls if c.model == "tooly"]
    assert sent and sent[-1].params.get("tools")


def test_langchain_chat_openai_against_the_server(replaying: RoutingData, knn_router: Any) -> None:
    from langchain_openai import ChatOpenAI

    query = replaying.queries[7]
    with running(_config(knn_router)) as srv:
        llm = ChatOpenAI(
            model="llmrouter/knn", base_url=srv.url + "/v1", api_key="unused", max_retries=0
        )
        msg = llm.invoke(query)
        model = knn_router.route(query).model
        assert msg.content == recorded(replaying, query, model)[0]
        assert msg.response_metadata["model_name"] == model
        streamed = "".join(str(c.content) for c in llm.stream(query))
        assert streamed == msg.content


def _ring(budget: float | None = None, routers: tuple[str, ...] | None = None) -> KeyRing:
    return KeyRing(
        [
            ApiKey("team-a", hash_key(KEY_A), budget=budget),
            ApiKey("team-b", hash_key(KEY_B), routers=routers),
        ]
    )


def test_bad_requests_get_openai_errors_and_the_server_keeps_serving(
    replaying: RoutingData, knn_router: Any
) -> None:
    query = replaying.queries[1]
    good = {"model": "llmrouter/knn", "messages": [{"role": "user", "content": query}]}
    config = _config(
        knn_router, keys=_ring(routers=("other",)), max_body_bytes=20_000, max_prompt_chars=5000
    )
    with running(config) as srv:
        url = srv.url + "/v1/chat/completions"
        auth = {"authorization": f"Bearer {KEY_A}"}

        def post(body: Any, headers: dict[str, str] | None = None) -> httpx.Response:
            content = body if isinstance(body, bytes) else json.dumps(body).encode()
            return httpx.post(
                url, content=content, headers=auth if headers is None else headers, timeout=30
            )

        cases = [
            (post(b'{"model": "llmrouter/knn", "messages": [', auth), 400, "invalid_json"),
            (post({**good, "model": "llmrouter/nope"}), 404, "model_not_found"),
            (post({**good, "model": "gpt-99"}), 404, "model_not_found"),
            (post({**good, "messages": []}), 400, "empty_messages"),
            (post({**good, "messages": [{"content": "no role"}]}), 400, "invalid_request"),
            (
                post({**good, "messages": [{"role": "user", "content": "x" * 6000}]}),
                400,
                "context_length_exceeded",
            ),
            (
                post({**good, "messages": [{"role": "user", "content": "x" * 30_000}]}),
                413,
                "request_too_large",
            ),
            (post(good, {"authorization": "Bearer sk-wrong-key"}), 401, "invalid_api_key"),
            (post(good, {}), 401, "invalid_api_key"),
            (post(good, {"authorization": f"Bearer {KEY_B}"}), 403, "model_not_allowed"),
            (post({**good, "model": "llmrouter/knn:speed=9"}), 400, "invalid_request"),
        ]
        for resp, status, code in cases:
            assert resp.status_code == status, resp.text
            err = resp.json()["error"]
            assert err["code"] == code and err["message"] and err["type"]
        # The openai client maps them to its own exception types.
        client = _client(srv.url, KEY_A)
        with pytest.raises(openai.NotFoundError):
            client.chat.completions.create(model="llmrouter/nope", messages=good["messages"])
        with pytest.raises(openai.AuthenticationError):
            _client(srv.url, "sk-wrong").chat.completions.create(**good)
        # ... and the server still serves.
        resp = client.chat.completions.create(**good)
        assert resp.model == knn_router.route(query).model
        metrics = httpx.get(srv.url + "/metrics").text
        assert 'llmrouter_requests_total{endpoint="/v1/chat/completions",status="401"} 3' in metrics
        assert 'llmrouter_errors_total{kind="auth"} 3' in metrics


def test_a_keys_budget_is_never_exceeded_and_nothing_is_lost(
    replaying: RoutingData, knn_router: Any, caplog: pytest.LogCaptureFixture
) -> None:
    data = replaying
    queries = list(data.queries[:40])
    limit = 0.01
    caplog.set_level(logging.INFO, logger="llmrouter_core")
    with running(_config(knn_router, keys=_ring(budget=limit))) as srv:
        client = _client(srv.url, KEY_A)
        answered, refused, costs = 0, 0, []
        lock = threading.Lock()

        def one(q: str) -> None:
            nonlocal answered, refused
            try:
                raw = client.chat.completions.with_raw_response.create(
                    model="llmrouter/knn:cost_weight=0", messages=[{"role": "user", "content": q}]
                )
            except openai.RateLimitError as exc:
                assert exc.body["code"] == "insufficient_quota"  # type: ignore[index]
                with lock:
                    refused += 1
                return
            with lock:
                answered += 1
                costs.append(float(raw.headers["x-llmrouter-cost"]))

        threads = [threading.Thread(target=one, args=(q,)) for q in queries]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert answered + refused == len(queries)  # every request got an answer or an error
        assert answered > 0 and refused > 0
        budget = srv.service.state.budget("team-a", limit)
        assert sum(costs) <= limit + 1e-12
        assert math.isclose(budget.spent, sum(costs), rel_tol=1e-9, abs_tol=1e-12)
        assert budget.overrun == 0.0
    # The log names the key, never the key itself or the prompt.
    assert "key=team-a" in caplog.text
    assert KEY_A not in caplog.text and queries[0][:40] not in caplog.text


def test_shutdown_drains_in_flight_requests_and_refuses_new_ones() -> None:
    from llmrouter_core.execution import PoolOrderRouter
    from llmrouter_core.pool import Pool

    upstream = FakeUpstream({"slow": Behaviour(latency=1.5)})
    with running_app(upstream.app) as up_url:
        pool = Pool([upstream_spec("slow", up_url, prices=(1.0, 1.0))])
        router = PoolOrderRouter(pool)
        with running(ServeConfig(routers={"first": router}, drain_timeout=20)) as srv:
            client = _client(srv.url, "sk-upstream-unused")
            first = client.chat.completions.create(
                model="llmrouter/first", messages=[{"role": "user", "content": "warm"}]
            )
            assert first.model == "slow"
            results: list[Any] = []
            t = threading.Thread(
                target=lambda: results.append(
                    client.chat.completions.create(
                        model="llmrouter/first", messages=[{"role": "user", "content": "hi"}]
                    )
                )
            )
            t.start()
            deadline = time.monotonic() + 10
            while srv.service.in_flight == 0 and time.monotonic() < deadline:
                time.sleep(0.01)
            srv.server.handle_exit(15, None)  # SIGTERM
            ready = httpx.get(srv.url + "/ready")
            assert ready.status_code == 503
            with pytest.raises(openai.InternalServerError) as info:
                client.chat.completions.create(
                    model="llmrouter/first", messages=[{"role": "user", "content": "late"}]
                )
            assert info.value.status_code == 503
            t.join(30)
            assert results and results[0].choices[0].message.content.startswith("w0")
            srv.thread.join(15)
            assert not srv.thread.is_alive()  # exited once the request in flight finished


def test_a_client_leaving_mid_stream_releases_its_budget_hold() -> None:
    from llmrouter_core.execution import PoolOrderRouter
    from llmrouter_core.pool import Pool

    upstream = FakeUpstream({"talky": Behaviour(words=60, piece_delay=0.05)})
    with running_app(upstream.app) as up_url:
        router = PoolOrderRouter(Pool([upstream_spec("talky", up_url, prices=(1.0, 1.0))]))
        config = ServeConfig(routers={"first": router}, keys=_ring(budget=1.0))
        with running(config) as srv:
            body = {
                "model": "llmrouter/first",
                "messages": [{"role": "user", "content": "tell me a long story"}],
                "stream": True,
            }
            auth = {"authorization": f"Bearer {KEY_A}"}
            with httpx.stream(
                "POST", srv.url + "/v1/chat/completions", json=body, headers=auth, timeout=30
            ) as resp:
                assert resp.status_code == 200
                assert resp.headers["x-llmrouter-model"] == "talky"
                lines = resp.iter_lines()
                got = [next(lines) for _ in range(6)]
                assert any('"content": "w1"' in x or '"content": " w1"' in x for x in got)
            # The client is gone: the request ends, its hold is settled, nothing stays held.
            budget = srv.service.state.budget("team-a", 1.0)
            deadline = time.monotonic() + 10
            while (srv.service.in_flight or budget.reserved) and time.monotonic() < deadline:
                time.sleep(0.02)
            assert srv.service.in_flight == 0 and budget.reserved == 0.0
            assert 0 < budget.spent < 1.0  # the delivered part is charged
            assert upstream.served["ok"] == 0  # the upstream stream was cut, not finished
            metrics = httpx.get(srv.url + "/metrics").text
            assert 'status="499"} 1' in metrics


def test_images_go_only_to_vision_models() -> None:
    provider = ScriptedProvider({"text-only": "no eyes", "eyes": "a red square"})
    pool = provider.pool(prices={"text-only": 0.1, "eyes": 5.0})
    pool = pool.replace("eyes", supports_vision=True)
    router = dummy_router({"text-only": 0.9, "eyes": 0.5}, {"text-only": 1e-6, "eyes": 1e-4}, pool)
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}
    with running(ServeConfig(routers={"auto": router})) as srv:
        client = _client(srv.url)
        plain = [{"role": "user", "content": "What is this?"}]
        assert client.chat.completions.create(model="llmrouter/auto", messages=plain).model == (
            "text-only"
        )
        with_image = [
            {"role": "user", "content": [{"type": "text", "text": "What is this?"}, image]}
        ]
        resp = client.chat.completions.create(model="llmrouter/auto", messages=with_image)
        assert resp.model == "eyes" and resp.choices[0].message.content == "a red square"
    assert not any(c.model == "text-only" and c.messages == with_image for c in provider.calls)


class _PerUserRouter:
    """A router taking per-user feedback as the project's personalized router does
    (``supports_feedback``, ``feedback(user, query, model, rating=, preferred_over=)``)."""

    supports_feedback = True

    def __init__(self, base: Any) -> None:
        self.base = base
        self.models_ = base.models_
        self.pool_ = base.pool_
        self.events: list[tuple[Any, ...]] = []

    def route(self, query: str, **kwargs: Any) -> Any:
        return self.base.route(query, **kwargs)

    def feedback(
        self, user: str, query: str, model: str, rating: Any = None, preferred_over: Any = None
    ) -> None:
        self.events.append((user, query, model, rating, preferred_over))


def test_per_user_feedback_reaches_a_router_that_takes_it() -> None:
    provider = ScriptedProvider({"a": "x", "b": "y"})
    router = _PerUserRouter(
        dummy_router({"a": 0.9, "b": 0.5}, {"a": 1e-5, "b": 1e-6}, provider.pool())
    )
    with running(ServeConfig(routers={"mine": router})) as srv:
        url = srv.url + "/v1/feedback"
        good = {"model": "llmrouter/mine", "query": "hello?", "answered_by": "a"}
        ok = httpx.post(url, json={**good, "user": "alice", "preferred_over": "b"})
        assert ok.status_code == 200, ok.text
        ok = httpx.post(url, json={**good, "user": "alice", "rating": 0.25})
        assert ok.status_code == 200, ok.text
        for bad, param in (
            ({**good, "rating": 1.0}, "user"),
            ({**good, "user": "alice", "rating": 3}, "rating"),
            ({**good, "user": "alice"}, "rating"),
            ({**good, "user": "alice", "preferred_over": "a"}, "preferred_over"),
            ({**good, "user": "alice", "answered_by": "nobody", "rating": 1}, "answered_by"),
        ):
            resp = httpx.post(url, json=bad)
            assert resp.status_code == 400 and resp.json()["error"]["param"] == param
        assert httpx.post(url, json={**good, "model": "llmrouter/x"}).status_code == 404
    assert router.events == [
        ("alice", "hello?", "a", None, "b"),
        ("alice", "hello?", "a", 0.25, None),
    ]


def test_scored_feedback_reaches_an_online_router(arc: RoutingData) -> None:
    import numpy as np

    import llmrouter_core as lr

    router = lr.get_router("bandit").fit(arc.split("train").subset(np.arange(120)))
    before = router.scorer_.n_feedback_
    with running(ServeConfig(routers={"bandit": router})) as srv:
        body = {
            "model": "llmrouter/bandit",
            "query": arc.queries[0],
            "answered_by": router.models_[0],
            "score": 1.0,
        }
        assert httpx.post(srv.url + "/v1/feedback", json=body).status_code == 200
        bad_score = httpx.post(srv.url + "/v1/feedback", json={**body, "score": -1})
        assert bad_score.status_code == 400
    assert router.scorer_.n_feedback_ == before + 1
