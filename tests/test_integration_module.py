"""What the adapters share (``llmrouter_core.integration``): the option vocabulary, the one
``build_executor`` and its checks, the fan-out plan for frameworks that run it themselves; and
the core's scripted provider they test with (several providers side by side, tool calls)."""

from __future__ import annotations

import json
import warnings
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from llmrouter_core.decision import Decision, FanOutPlan
from llmrouter_core.errors import NotFittedError, UnknownModelError
from llmrouter_core.execution import Executor, StreamedResponse
from llmrouter_core.integration import (
    RENAMED_OPTIONS,
    build_executor,
    fan_out_decision,
    renamed_options,
    retrieval_routing_text,
    routing_text_function,
)
from llmrouter_core.policy import FanOutPolicy
from llmrouter_core.pool import Pool
from llmrouter_core.testing import ScriptedCall, ScriptedProvider, ScriptedReply, dummy_router

QUALITY = {"small": 0.6, "large": 0.9}
COST = {"small": 1e-5, "large": 1e-3}


@pytest.fixture()
def provider() -> ScriptedProvider:
    return ScriptedProvider({"small": "small says 4", "large": "large says 4"})


@pytest.fixture()
def router(provider: ScriptedProvider) -> Any:
    return dummy_router(QUALITY, COST, provider.pool(prices={"small": 0.1, "large": 10.0}))


# -- the vocabulary --------------------------------------------------------------------------


def test_old_option_names_warn_and_become_the_new_ones() -> None:
    assert dict(RENAMED_OPTIONS) == {"fixed_model": "model", "routing_input": "routing_text"}
    with pytest.warns(DeprecationWarning, match=r"^X\(fixed_model=\.\.\.\) .*use model="):
        assert renamed_options({"fixed_model": "a", "cost_weight": 1.0}, "X") == {
            "cost_weight": 1.0,
            "model": "a",
        }
    with pytest.warns(DeprecationWarning, match="use routing_text="):
        assert renamed_options({"routing_input": "conversation"}, "X") == {
            "routing_text": "conversation"
        }
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert renamed_options({"model": "a"}, "X") == {"model": "a"}
    with pytest.raises(TypeError, match="model= only"):
        renamed_options({"model": "a", "fixed_model": "b"}, "X")


def test_the_warning_points_at_the_callers_line() -> None:
    def adapter(**kwargs: Any) -> Any:
        return renamed_options(kwargs, "Adapter")

    with pytest.warns(DeprecationWarning) as caught:
        adapter(fixed_model="a")
    assert caught[0].filename == __file__


def test_routing_text_forms() -> None:
    assert routing_text_function("last_user") == "last_user"
    assert routing_text_function("conversation") == "conversation"
    custom = len
    assert routing_text_function(custom) is custom
    messages = [
        {"role": "user", "content": "How do plants make sugar from sunlight?"},
        {"role": "assistant", "content": "Photosynthesis."},
        {"role": "user", "content": "Write a python loop over a list."},
        {"role": "assistant", "content": "for x in xs: ..."},
        {"role": "user", "content": "Why are plants green in sunlight?"},
    ]
    retrieval = routing_text_function("retrieval", 1)
    assert callable(retrieval)
    text = retrieval(messages)
    assert text == retrieval_routing_text(messages, 1)
    assert "plants make sugar" in text and "python" not in text and "green" in text
    with pytest.raises(ValueError, match="routing_text must be"):
        routing_text_function("everything")
    with pytest.raises(ValueError, match="retrieval_top_k"):
        routing_text_function("retrieval", 0)


# -- build_executor --------------------------------------------------------------------------


def test_build_executor_from_a_router_a_directory_or_an_executor(
    router: Any, provider: ScriptedProvider, tmp_path: Path
) -> None:
    executor, path = build_executor(router, routing_text="conversation", options={"timeout": 5})
    assert path is None and executor.router is router
    assert executor.routing_text == "conversation" and executor.timeout == 5.0
    assert executor.complete("What is 2 + 2?").answer == "large says 4"

    # A directory: loaded, endpoints saved with it used only when trusted.
    endpoint = Pool(replace(s, api_base="http://127.0.0.1:9/v1") for s in router.pool_)
    router.pool_ = endpoint
    router.save(tmp_path / "router")
    loaded, path = build_executor(tmp_path / "router")
    assert path == str(tmp_path / "router")
    assert all(s.api_base is None for s in loaded.pool)
    trusted, _ = build_executor(str(tmp_path / "router"), trust_endpoints=True)
    assert all(s.api_base == "http://127.0.0.1:9/v1" for s in trusted.pool)

    # A pool file is a pool.
    (tmp_path / "pool.json").write_text(json.dumps(provider.pool().to_dict()))
    from_file, _ = build_executor(router, pool=str(tmp_path / "pool.json"))
    assert all(s.api_base is None for s in from_file.pool)

    ready = Executor(router, pool=provider.pool())
    assert build_executor(ready, cost_weight=5.0, model="small").executor is ready


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"model": "gpt-5"}, UnknownModelError, "model 'gpt-5' is not in the pool"),
        ({"cost_weight": -1.0}, ValueError, "cost_weight"),
        ({"cost_weight": float("nan")}, ValueError, "cost_weight"),
        ({"cost_weight": "high"}, ValueError, "cost_weight"),
        ({"max_cost": -0.1}, ValueError, "max_cost"),
        ({"options": {"cost_weight": 1.0}}, ValueError, r"Thing\(cost_weight=\.\.\.\)"),
        (
            {"routing_text": "last_user", "options": {"routing_text": "conversation"}},
            ValueError,
            "routing_text once",
        ),
        ({"routing_text": "everything"}, ValueError, "routing_text must be"),
    ],
)
def test_build_executor_checks(router: Any, kwargs: Any, error: Any, match: str) -> None:
    with pytest.raises(error, match=match):
        build_executor(router, owner="Thing", **kwargs)


def test_options_of_an_executor_given_belong_to_it(router: Any) -> None:
    ready = Executor(router)
    for given in (
        {"pool": router.pool_},
        {"budget": 1.0},
        {"routing_text": "conversation"},
        {"options": {"timeout": 1.0}},
    ):
        with pytest.raises(ValueError, match="belong to the Executor given"):
            build_executor(ready, **given)
    for missing in (None, "", "  "):
        with pytest.raises(NotFittedError, match="Thing needs a trained router"):
            build_executor(missing, owner="Thing")


# -- fan-out ---------------------------------------------------------------------------------


def test_fan_out_decision_is_the_policys_plan_of_the_ranking(router: Any) -> None:
    decision = router.route("hello", allowed=["small", "large"])
    planned = fan_out_decision(decision, FanOutPolicy(k=1, aggregate="first"))
    assert planned.plan == FanOutPlan(("large",), "first")
    assert planned.ranked == decision.ranked and planned.model == decision.model
    assert "fan out to large" in planned.reason
    # The same plan as routing with the policy.
    assert fan_out_decision(decision, FanOutPolicy(k=2)) == router.route(
        "hello", policy=FanOutPolicy(k=2)
    )
    # A ranking the adapter restricted (e.g. to tool-capable models) stays restricted.
    only = replace(decision, model="small", ranked=("small",))
    assert fan_out_decision(only, FanOutPolicy(k=2)).plan == FanOutPlan(("small",))
    pool_order = Decision("b", ("b", "a"), {}, {}, 0.0, "pool-order")
    assert fan_out_decision(pool_order, FanOutPolicy(k=3)).plan == FanOutPlan(("b", "a"))


# -- the scripted provider -------------------------------------------------------------------


class Rules:
    """A responder: calls the first tool when given tools, else echoes ``stop``."""

    def __init__(self) -> None:
        self.seen: list[ScriptedCall] = []

    def respond(self, call: ScriptedCall) -> ScriptedReply | str:
        self.seen.append(call)
        tools = call.params.get("tools")
        if tools:
            name = tools[0]["function"]["name"]
            return ScriptedReply("", [{"function": {"name": name, "arguments": '{"x": 1}'}}])
        return f"stop={call.params.get('stop')}"


TOOL = {"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}


def test_providers_of_different_models_answer_side_by_side(router: Any) -> None:
    first = Executor(router)
    other = ScriptedProvider({"helper": "helper here"})  # claims only "helper"
    helper = dummy_router({"helper": 0.5}, {"helper": 1e-5}, other.pool())
    assert Executor(helper).complete("hi").answer == "helper here"
    assert first.complete("hi").answer == "large says 4"  # still answered by its provider
    assert [c.model for c in other.calls] == ["helper"]


@pytest.mark.parametrize("stream", [False, True])
def test_a_responder_reads_the_request_and_calls_tools(stream: bool) -> None:
    rules = Rules()
    provider = ScriptedProvider({"agent": rules, "plain": ScriptedReply("just text")})
    pool = provider.pool(supports_tools=True)
    router = dummy_router({"agent": 0.9, "plain": 0.5}, {"agent": 1e-5, "plain": 1e-5}, pool)
    executor = Executor(router)

    def run(*args: Any, **kwargs: Any) -> Any:
        if not stream:
            return executor.complete(*args, **kwargs)
        *_, result = executor.stream(*args, **kwargs)
        return result

    result = run("Look it up", tools=[TOOL])
    calls = (
        result.response.tool_calls()
        if isinstance(result.response, StreamedResponse)
        else [c.model_dump() for c in result.tool_calls]
    )
    assert [c["function"]["name"] for c in calls] == ["lookup"]
    assert json.loads(calls[0]["function"]["arguments"]) == {"x": 1}
    assert calls[0]["id"]
    assert rules.seen[-1].params["tools"][0]["function"]["name"] == "lookup"
    assert rules.seen[-1].stream is stream
    assert run("hi", stop=["END"]).answer == "stop=['END']"
    assert run("hi", model="plain").answer == "just text"
