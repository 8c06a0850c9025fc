"""Flows through ``llmrouter serve``: ``"llmrouter": {"flow": ...}`` runs the agentic or the
multi-round flow with the key's executor (its budget applies to every call of the flow)."""

from __future__ import annotations

import json

import httpx
import openai
import pytest
from serve_helpers import running

from llmrouter_core.flows import concat_answer
from llmrouter_core.pool import Pool
from llmrouter_core.serving import ApiKey, KeyRing, ServeConfig, hash_key
from llmrouter_core.testing import ScriptedProvider, dummy_router

pytestmark = pytest.mark.allow_hosts(["127.0.0.1"])

KEY = "sk-test-flow-0123456789abcdefghijklmn"
QUERY = "Two questions.\n1. What is the boiling point of water?\n2. Who wrote Hamlet?"


def _setup(budget: float | None = None) -> tuple[ScriptedProvider, ServeConfig]:
    provider = ScriptedProvider(
        {
            "cheap": "cheap answer",
            "strong": "strong answer",
            "policy": [
                "<search>strong: Who wrote Hamlet?</search>",
                "<answer>Shakespeare</answer>",
            ],
        }
    )
    pool: Pool = provider.pool(prices={"cheap": 1.0, "strong": 30.0, "policy": 2.0})
    router = dummy_router({"cheap": 0.6, "strong": 0.9}, {"cheap": 1e-5, "strong": 3e-4}, pool)
    keys = KeyRing([ApiKey("team", hash_key(KEY), budget=budget)])
    return provider, ServeConfig(routers={"auto": router}, pool=pool, keys=keys)


def _client(url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=url + "/v1", api_key=KEY, max_retries=0, timeout=30)


def test_agentic_flow_answers_every_part_with_its_steps_and_cost() -> None:
    provider, config = _setup()
    with running(config) as srv:
        raw = _client(srv.url).chat.completions.with_raw_response.create(
            model="llmrouter/auto:cost_weight=inf",
            messages=[{"role": "user", "content": QUERY}],
            extra_body={"llmrouter": {"flow": "agentic", "explain": True}},
        )
        resp = raw.parse()
        ext = resp.model_extra["llmrouter"]  # type: ignore[index]
        # Each numbered part was routed (cost_weight=inf: the cheap model) and answered.
        assert resp.choices[0].message.content == concat_answer(["cheap answer"] * 2)
        assert resp.model == "cheap" and ext["models"] == ["cheap"] and ext["flow"] == "agentic"
        calls = [s for s in ext["steps"] if s["role"] == "call"]
        # Each part keeps the question's preamble as context.
        assert [c["prompt"] for c in calls] == [
            "Two questions.\n\nWhat is the boiling point of water?",
            "Two questions.\n\nWho wrote Hamlet?",
        ]
        assert ext["cost"] == pytest.approx(sum(c["cost"] for c in calls))
        assert float(raw.headers["x-llmrouter-cost"]) == pytest.approx(ext["cost"])
        assert resp.usage is not None and resp.usage.model_extra["cost"] == ext["cost"]  # type: ignore[index]
    sent = [c for c in provider.calls if c.model == "cheap"]
    assert len(sent) == 2 and not [c for c in provider.calls if c.model == "strong"]


def test_multi_round_flow_streams_its_answer_with_usage_and_cost() -> None:
    provider, config = _setup()
    with running(config) as srv:
        stream = _client(srv.url).chat.completions.create(
            model="llmrouter/auto",
            messages=[{"role": "user", "content": "Who wrote Hamlet?"}],
            stream=True,
            stream_options={"include_usage": True},
            extra_body={"llmrouter": {"flow": {"name": "multi_round", "policy_model": "policy"}}},
        )
        chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Shakespeare"
    final = next(c for c in chunks if c.choices and c.choices[0].finish_reason == "stop")
    ext = final.model_extra["llmrouter"]  # type: ignore[index]
    assert ext["models"] == ["policy", "strong"] and final.model == "policy+strong"
    usage = chunks[-1].usage
    assert usage is not None and usage.model_extra["cost"] == ext["cost"] > 0  # type: ignore[index]
    assert [c.model for c in provider.calls] == ["policy", "strong", "policy"]


def test_a_flow_is_refused_by_the_keys_budget_and_bad_flows_get_400() -> None:
    provider, config = _setup(budget=1e-9)  # less than any call costs
    with running(config) as srv:
        msgs = [{"role": "user", "content": QUERY}]
        with pytest.raises(openai.RateLimitError) as info:
            _client(srv.url).chat.completions.create(
                model="llmrouter/auto", messages=msgs, extra_body={"llmrouter": {"flow": "agentic"}}
            )
        assert info.value.body["code"] == "insufficient_quota"  # type: ignore[index]
        assert provider.calls == []  # no call started without room in the budget
        headers = {"authorization": f"Bearer {KEY}"}
        for flow, fragment in [
            ("recursive", "'flow' must be one of"),
            ({"name": "multi_round"}, "needs a 'policy_model'"),
            ({"name": "agentic", "rounds": 3}, "unknown agentic option(s) rounds"),
        ]:
            body = {"model": "llmrouter/auto", "messages": msgs, "llmrouter": {"flow": flow}}
            r = httpx.post(srv.url + "/v1/chat/completions", json=body, headers=headers)
            assert r.status_code == 400 and fragment in r.json()["error"]["message"], r.text
        body = {"model": "cheap", "messages": msgs, "llmrouter": {"flow": "agentic"}}
        r = httpx.post(srv.url + "/v1/chat/completions", content=json.dumps(body), headers=headers)
        assert r.status_code == 400 and "routed models" in r.json()["error"]["message"]


@pytest.mark.parametrize(
    ("query", "flow", "streamed_by"),
    [
        # One part: its call's reply is the answer.
        ("Who wrote Hamlet?", "agentic", "cheap"),
        # Two parts answered whole, then the LLM aggregation streams.
        (QUERY, {"name": "agentic", "aggregate": "llm", "aggregate_model": "strong"}, "strong"),
    ],
)
def test_an_agentic_flow_streams_the_call_that_makes_its_answer(
    query: str, flow: object, streamed_by: str
) -> None:
    provider, config = _setup()
    with running(config) as srv:
        stream = _client(srv.url).chat.completions.create(
            model="llmrouter/auto:cost_weight=inf",
            messages=[{"role": "user", "content": query}],
            stream=True,
            stream_options={"include_usage": True},
            extra_body={"llmrouter": {"flow": flow}},
        )
        chunks = list(stream)
    pieces = [
        c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content
    ]
    # The reply arrives word by word, as the model streamed it, not as one piece at the end.
    assert pieces == [f"{streamed_by}", " answer"]
    final = next(c for c in chunks if c.choices and c.choices[0].finish_reason == "stop")
    ext = final.model_extra["llmrouter"]  # type: ignore[index]
    assert ext["flow"] == "agentic" and streamed_by in ext["models"]
    usage = chunks[-1].usage
    assert usage is not None and usage.model_extra["cost"] == ext["cost"] > 0  # type: ignore[index]
    assert [c.stream for c in provider.calls if c.model == streamed_by] == [True]
    assert not [c for c in provider.calls if c.model != streamed_by and c.stream]


def test_a_flow_stream_cut_after_its_text_began_ends_with_an_error_event() -> None:
    from serve_helpers import running_app, upstream_spec

    from llmrouter_core.execution import PoolOrderRouter
    from llmrouter_core.testing.upstream import Behaviour, FakeUpstream

    upstream = FakeUpstream({"cut": Behaviour(rate_disconnect=1.0)})
    with running_app(upstream.app) as up_url:
        router = PoolOrderRouter(Pool([upstream_spec("cut", up_url)]))
        with running(ServeConfig(routers={"first": router})) as srv:
            body = {
                "model": "llmrouter/first",
                "messages": [{"role": "user", "content": "Say something."}],
                "stream": True,
                "llmrouter": {"flow": "agentic"},
            }
            with httpx.stream("POST", srv.url + "/v1/chat/completions", json=body) as r:
                assert r.status_code == 200
                events = [json.loads(line[6:]) for line in r.iter_lines() if line[6:7] == "{"]
            # The server keeps serving.
            assert httpx.get(srv.url + "/health").status_code == 200
    texts = [e["choices"][0]["delta"].get("content") for e in events if e.get("choices")]
    assert "w0" in texts  # the text that was streamed before the cut
    assert events[-1]["error"]["code"] == "upstream_error"
    assert "after 2 characters" in events[-1]["error"]["message"]
