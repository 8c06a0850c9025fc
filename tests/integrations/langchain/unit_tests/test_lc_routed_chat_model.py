"""RoutedChatModel on a real kNN router (RouterBench) and real recorded answers (replay); tool
calls and JSON answers come from the scripted stand-in (rule-based, not a language model)."""

from __future__ import annotations

import asyncio
import math
from dataclasses import replace
from typing import Any

import lc_testkit as kit
import pytest
from langchain_core.callbacks import get_usage_metadata_callback
from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage
from langchain_core.tools import tool
from langchain_llmrouter import RoutedChatModel
from langchain_llmrouter.chat_models import ROUTER_ENV
from pydantic import BaseModel

from llmrouter_core.errors import NotFittedError, PersistenceError, UnknownModelError
from llmrouter_core.execution import BudgetExceededError, Executor, NoEligibleModelError
from llmrouter_core.execution._support import supports
from llmrouter_core.integration import retrieval_routing_text
from llmrouter_core.pool import Pool


@tool
def get_weather(city: str) -> str:
    """Current weather in a city."""
    return f"It is sunny in {city}."


class Answer(BaseModel):
    """The answer to a multiple-choice question."""

    choice: str
    explanation: str


@pytest.fixture(scope="module")
def prompts(rb_test: Any) -> list[str]:
    """Six real RouterBench test prompts, two of each task."""
    out: list[str] = []
    for task in sorted(set(rb_test.tasks)):
        rows = [i for i, t in enumerate(rb_test.tasks) if t == task]
        out += [rb_test.queries[i] for i in rows[:2]]
    return out


@pytest.fixture(scope="module")
def llm(router: Any, replay: Pool) -> RoutedChatModel:
    return RoutedChatModel(router=router, pool=replay)


def capable(model: RoutedChatModel, capability: str) -> set[str]:
    ex = model.executor
    return {m for m in ex.models if supports(ex._litellm, ex.pool[m], capability)}  # type: ignore[arg-type]


# -- answers, metadata, streaming ----------------------------------------------------------


def test_invoke_answers_with_the_routed_models_recorded_response(
    llm: RoutedChatModel, router: Any, prompts: list[str]
) -> None:
    for prompt in prompts:
        expected = router.route(prompt)
        msg = llm.invoke(prompt)
        text, cost = kit.recorded(prompt, expected.model)
        assert isinstance(msg, AIMessage)
        assert msg.response_metadata["model_name"] == expected.model
        assert msg.response_metadata["decision"] == expected.to_dict()
        assert msg.response_metadata["litellm_model"] == f"replay/{expected.model}"
        assert msg.content == text
        assert msg.response_metadata["cost"] == pytest.approx(cost)
        usage = msg.usage_metadata
        assert usage is not None and usage["input_tokens"] > 0 and usage["output_tokens"] > 0
        assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]


def test_stream_delivers_the_same_answer_in_pieces(
    llm: RoutedChatModel, prompts: list[str]
) -> None:
    prompt = max(prompts, key=lambda p: len(llm.invoke(p).text))
    full = llm.invoke(prompt)
    chunks = list(llm.stream(prompt))
    assert len(chunks) > 2
    assert all(isinstance(c, AIMessageChunk) for c in chunks)
    assert "".join(c.text for c in chunks) == full.content
    # Usage and metadata arrive once, on the last chunk.
    assert [c.usage_metadata is not None for c in chunks].count(True) == 1
    assert chunks[-1].chunk_position == "last"
    merged = chunks[0]
    for c in chunks[1:]:
        merged = merged + c
    assert merged.response_metadata["model_name"] == full.response_metadata["model_name"]
    assert merged.response_metadata["cost"] == pytest.approx(full.response_metadata["cost"])
    assert merged.usage_metadata == full.usage_metadata


def test_async_and_batch_match_invoke(llm: RoutedChatModel, prompts: list[str]) -> None:
    expected = [llm.invoke(p) for p in prompts[:3]]
    batched = llm.batch(prompts[:3])
    abatched = asyncio.run(llm.abatch(prompts[:3]))
    single = asyncio.run(llm.ainvoke(prompts[0]))

    async def collect() -> str:
        return "".join([c.text async for c in llm.astream(prompts[1])])

    streamed = asyncio.run(collect())
    for want, got, agot in zip(expected, batched, abatched, strict=True):
        assert got.content == want.content == agot.content
        assert got.response_metadata["model_name"] == want.response_metadata["model_name"]
    assert single.content == expected[0].content
    assert streamed == expected[1].content


def test_cost_weight_trades_quality_for_cost(router: Any, replay: Pool, prompts: list[str]) -> None:
    quality = RoutedChatModel(router=router, pool=replay, cost_weight=0.0)
    cheap = RoutedChatModel(router=router, pool=replay, cost_weight=math.inf)
    spent = {"quality": 0.0, "cheap": 0.0}
    for prompt in prompts:
        q_msg, c_msg = quality.invoke(prompt), cheap.invoke(prompt)
        assert (
            c_msg.response_metadata["model_name"]
            == router.route(prompt, cost_weight=math.inf).model
        )
        spent["quality"] += q_msg.response_metadata["cost"]
        spent["cheap"] += c_msg.response_metadata["cost"]
        # A call-time cost weight overrides the model's.
        assert quality.invoke(prompt, cost_weight=math.inf).content == c_msg.content
    assert spent["cheap"] < spent["quality"]


def test_model_argument_forces_a_pool_model(
    llm: RoutedChatModel, router: Any, prompts: list[str]
) -> None:
    prompt = prompts[0]
    other = next(m for m in router.models_ if m != router.route(prompt).model)
    msg = llm.invoke(prompt, model=other)
    assert msg.response_metadata["model_name"] == other
    assert msg.response_metadata["decision"]["router"] == "forced"
    assert msg.content == kit.recorded(prompt, other)[0]
    fixed = RoutedChatModel(router=router, pool=llm.executor.pool, model=other)
    assert fixed.invoke(prompt).response_metadata["model_name"] == other
    with pytest.raises(UnknownModelError):
        llm.invoke(prompt, model="no-such-model")


# -- capabilities ----------------------------------------------------------------------------


def test_bind_tools_routes_only_to_models_that_support_tools(
    router: Any, tool_pool: Pool, prompts: list[str]
) -> None:
    llm = RoutedChatModel(router=router, pool=tool_pool)
    tool_models = capable(llm, "tools")
    assert set(tool_models) < set(router.models_)
    bound = llm.bind_tools([get_weather], tool_choice="any")
    # The restriction matters: some prompts' first choice cannot call tools.
    assert any(router.route(p).model not in tool_models for p in prompts)
    for prompt in prompts:
        ranked = router.route(prompt).ranked
        msg = bound.invoke(prompt)
        assert msg.response_metadata["model_name"] == next(m for m in ranked if m in tool_models)
        assert [c["name"] for c in msg.tool_calls] == ["get_weather"]
        assert isinstance(msg.tool_calls[0]["args"]["city"], str)
        # Without tools, the same prompt goes to the router's first choice.
        assert llm.invoke(prompt).response_metadata["model_name"] == ranked[0]


def test_tool_calls_stream_and_name_the_requested_tool(router: Any, tool_pool: Pool) -> None:
    @tool
    def add(a: int, b: int) -> int:
        """Add two integers."""
        return a + b

    llm = RoutedChatModel(router=router, pool=tool_pool)
    bound = llm.bind_tools([get_weather, add], tool_choice="add")
    full = None
    for chunk in bound.stream("What is 12 plus 30?"):
        full = chunk if full is None else full + chunk
    assert full is not None
    assert full.tool_calls == [
        {
            "name": "add",
            "args": {"a": 12, "b": 30},
            "id": full.tool_calls[0]["id"],
            "type": "tool_call",
        }
    ]
    assert full.response_metadata["finish_reason"] == "tool_calls"
    with pytest.raises(ValueError, match="not a bound tool"):
        llm.bind_tools([add], tool_choice="missing")


@pytest.mark.parametrize("method", ["function_calling", "json_schema"])
def test_structured_output_routes_to_capable_models(
    router: Any, tool_pool: Pool, method: str, prompts: list[str]
) -> None:
    llm = RoutedChatModel(router=router, pool=tool_pool)
    need = "tools" if method == "function_calling" else "json_schema"
    models = capable(llm, need)
    structured = llm.with_structured_output(Answer, method=method, include_raw=True)  # type: ignore[arg-type]
    out = structured.invoke("Pick 'B' because 'it is larger'.")
    assert isinstance(out, dict) and out["parsing_error"] is None
    assert out["parsed"] == Answer(choice="B", explanation="it is larger")
    assert out["raw"].response_metadata["model_name"] in models


def test_json_mode_and_images_go_only_to_capable_models(
    router: Any, replay: Pool, prompts: list[str]
) -> None:
    vision = "claude-v2"
    pool = replace_spec(replay, vision, supports_vision=True)
    llm = RoutedChatModel(router=router, pool=pool)
    prompt = prompts[0]
    image = HumanMessage(
        content=[
            {"type": "text", "text": prompt},
            {"type": "image", "base64": "iVBORw0KGgo=", "mime_type": "image/png"},
        ]
    )
    msg = llm.invoke([image])
    assert msg.response_metadata["model_name"] == vision
    assert msg.content == kit.recorded(prompt, vision)[0]
    # the executor leaves out the models that do not accept images, before routing
    assert msg.response_metadata["decision"]["ranked"] == [vision]
    blind = RoutedChatModel(router=router, pool=replay)
    with pytest.raises(NoEligibleModelError, match="accept images"):
        blind.invoke([image])
    with pytest.raises(NoEligibleModelError, match="JSON"):
        blind.invoke(prompt, response_format={"type": "json_object"})


def replace_spec(pool: Pool, name: str, **changes: Any) -> Pool:
    return Pool(replace(s, **changes) if s.name == name else s for s in pool)


def test_profile_is_what_every_pool_model_supports(
    router: Any, replay: Pool, tool_pool: Pool
) -> None:
    mixed = RoutedChatModel(router=router, pool=tool_pool).profile
    assert mixed is not None and mixed["tool_calling"] is False
    assert mixed["structured_output"] is False and mixed["image_inputs"] is False
    all_tools = Pool(
        replace(s, supports_tools=True, supports_json_schema=True, context_window=4096 + i)
        for i, s in enumerate(tool_pool)
    )
    full = RoutedChatModel(router=router, pool=all_tools).profile
    assert full is not None
    assert full["tool_calling"] is True and full["structured_output"] is True
    assert full["max_input_tokens"] == 4096


# -- routing text ----------------------------------------------------------------------------


def test_routing_text_selects_what_the_router_reads(router: Any, replay: Pool) -> None:
    plants = "How do plants turn sunlight into sugar with chlorophyll?"
    code = "Write a python list comprehension that squares even numbers."
    now = "Why is chlorophyll green in plants?"
    conversation = [
        HumanMessage(plants),
        AIMessage("By photosynthesis."),
        HumanMessage(code),
        AIMessage("[x * x for x in xs if x % 2 == 0]"),
        HumanMessage(now),
    ]
    last = RoutedChatModel(router=router, pool=replay)
    whole = RoutedChatModel(router=router, pool=replay, routing_text="conversation")
    retrieval = RoutedChatModel(
        router=router, pool=replay, routing_text="retrieval", retrieval_top_k=1
    )
    custom = RoutedChatModel(
        router=router, pool=replay, routing_text=lambda msgs: str(msgs[0]["content"])
    )
    assert last.route(conversation) == router.route(now)
    texts = [str(m.content) for m in conversation]
    assert whole.route(conversation) == router.route("\n\n".join(texts))
    # Retrieval keeps the earlier turn about the same subject, not the unrelated one.
    text = retrieval_routing_text(
        [
            {
                "role": m.type.replace("human", "user").replace("ai", "assistant"),
                "content": m.content,
            }
            for m in conversation
        ],
        1,
    )
    assert plants in text and now in text and code not in text
    assert retrieval.route(conversation) == router.route(text)
    assert custom.route(conversation) == router.route(plants)
    with pytest.raises(ValueError, match="routing_text"):
        RoutedChatModel(router=router, pool=replay, routing_text="everything")


def test_routing_input_is_the_deprecated_name_of_routing_text(router: Any, replay: Pool) -> None:
    with pytest.warns(DeprecationWarning, match=r"routing_input=.*use routing_text="):
        old = RoutedChatModel(router=router, pool=replay, routing_input="conversation")
    assert old.routing_text == "conversation"
    with pytest.warns(DeprecationWarning, match="use routing_text"):
        assert old.routing_input == "conversation"
    with pytest.raises(TypeError, match="routing_text= only"):
        RoutedChatModel(
            router=router, pool=replay, routing_input="conversation", routing_text="last_user"
        )


def test_an_executor_is_a_router_with_its_own_setup(
    router: Any, replay: Pool, prompts: list[str]
) -> None:
    executor = Executor(router, pool=replay, routing_text="conversation", max_retries=0)
    llm = RoutedChatModel(router=executor, cost_weight=math.inf, temperature=0.0)
    assert llm.executor is executor and llm.router_ is router
    msg = llm.invoke(prompts[0])
    cheapest = router.route(prompts[0], cost_weight=math.inf).model
    assert msg.response_metadata["model_name"] == cheapest  # the model's options still apply
    for clash in (
        {"pool": replay},
        {"budget": 1.0},
        {"max_retries": 1},
        {"routing_text": "last_user"},
    ):
        with pytest.raises(ValueError, match="belong to the Executor"):
            RoutedChatModel(router=executor, **clash)
    with pytest.raises(ValueError, match="not in executor_options"):
        RoutedChatModel(router=router, pool=replay, executor_options={"timeout": 5.0})
    custom = RoutedChatModel(router=router, pool=replay, executor_options={"backoff": 0.0})
    assert custom.executor.backoff == 0.0


# -- budgets, fallbacks, errors -------------------------------------------------------------


def test_budget_caps_the_spend(router: Any, replay: Pool, prompts: list[str]) -> None:
    costs = [kit.recorded(p, router.route(p).model)[1] for p in prompts]
    limit = sum(costs[:2]) * 1.01
    llm = RoutedChatModel(router=router, pool=replay, budget=limit)
    spent = 0.0
    with pytest.raises(BudgetExceededError):
        for prompt in prompts * 3:
            spent += llm.invoke(prompt).response_metadata["cost"]
    assert spent <= limit
    assert llm.executor.budget is not None and llm.executor.budget.spent == pytest.approx(spent)


def test_a_failing_model_falls_back_down_the_ranking(
    router: Any, replay: Pool, prompts: list[str]
) -> None:
    prompt = prompts[0]
    ranked = router.route(prompt).ranked
    broken = replace_spec(
        replay,
        ranked[0],
        extra={"litellm_kwargs": {"mock_response": Exception("upstream is down")}},
    )
    llm = RoutedChatModel(router=router, pool=broken, max_retries=0)
    msg = llm.invoke(prompt)
    meta = msg.response_metadata
    assert meta["model_name"] == ranked[1] and meta["fell_back"] is True
    assert [a["outcome"] for a in meta["attempts"]] == ["error", "success"]
    assert msg.content == kit.recorded(prompt, ranked[1])[0]


def test_configuration_errors_are_clear(
    router: Any, replay: Pool, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(ROUTER_ENV, raising=False)
    with pytest.raises(NotFittedError, match=ROUTER_ENV):
        RoutedChatModel(pool=replay)
    with pytest.raises(PersistenceError):
        RoutedChatModel(router=str(tmp_path / "missing"))
    with pytest.raises(UnknownModelError):
        RoutedChatModel(router=router, pool=replay, model="gpt-5")


def test_router_loads_from_a_saved_directory(
    router: Any, replay: Pool, tmp_path: Any, prompts: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    router.save(tmp_path / "router")
    from_path = RoutedChatModel(router=str(tmp_path / "router"), pool=replay)
    monkeypatch.setenv(ROUTER_ENV, str(tmp_path / "router"))
    from_env = RoutedChatModel(pool=replay)
    for prompt in prompts:
        assert from_path.route(prompt) == router.route(prompt) == from_env.route(prompt)


def test_stop_sequences_reach_the_model(router: Any, tool_pool: Pool) -> None:
    llm = RoutedChatModel(router=router, pool=tool_pool, model="gpt-4-1106-preview")
    text = llm.invoke("alpha beta gamma delta").text
    assert "gamma" in text
    assert "gamma" not in llm.invoke("alpha beta gamma delta", stop=["gamma"]).text
    stopped = RoutedChatModel(
        router=router, pool=tool_pool, model="gpt-4-1106-preview", stop=["beta"]
    )
    assert "beta" not in stopped.invoke("alpha beta gamma delta").text


# -- tracing ---------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["invoke", "stream", "ainvoke", "astream"])
def test_callbacks_show_the_routed_model_as_a_child_run(
    llm: RoutedChatModel, prompts: list[str], mode: str
) -> None:
    prompt = prompts[1]
    recorder = kit.Recorder()
    config = {"callbacks": [recorder]}
    if mode == "invoke":
        msg = llm.invoke(prompt, config)
    elif mode == "ainvoke":
        msg = asyncio.run(llm.ainvoke(prompt, config))
    elif mode == "stream":
        msg = AIMessage(content="".join(c.text for c in llm.stream(prompt, config)))
    else:

        async def run() -> str:
            return "".join([c.text async for c in llm.astream(prompt, config)])

        msg = AIMessage(content=asyncio.run(run()))
    model = llm.route(prompt).model
    assert msg.content == kit.recorded(prompt, model)[0]
    assert len(recorder.chat_runs) == 1
    if mode in ("invoke", "ainvoke"):
        [child] = recorder.chains
        assert child["name"] == model and child["parent"] == recorder.chat_runs[0]
        assert child["metadata"]["ls_model_name"] == model
        assert child["inputs"]["decision"]["model"] == model
        assert child["outputs"]["model"] == model and child["outputs"]["cost"] > 0
    else:
        # LangChain gives _stream no run manager on this path: the answer's metadata (not a
        # child run) names the model, and tokens are reported once each.
        assert recorder.chains == []
        assert recorder.tokens >= 2


def test_usage_is_counted_once(llm: RoutedChatModel, prompts: list[str]) -> None:
    with get_usage_metadata_callback() as cb:
        msg = llm.invoke(prompts[2])
    model = msg.response_metadata["model_name"]
    assert msg.usage_metadata is not None
    assert cb.usage_metadata == {model: msg.usage_metadata}


def test_astream_events_reports_tokens_and_the_answering_model(
    llm: RoutedChatModel, prompts: list[str]
) -> None:
    prompt = prompts[4]

    async def collect() -> list[dict[str, Any]]:
        return [e async for e in llm.astream_events(prompt, version="v2")]

    events = asyncio.run(collect())
    kinds = [e["event"] for e in events]
    assert kinds[0] == "on_chat_model_start" and kinds[-1] == "on_chat_model_end"
    streamed = "".join(
        e["data"]["chunk"].text for e in events if e["event"] == "on_chat_model_stream"
    )
    model = llm.route(prompt).model
    assert streamed == kit.recorded(prompt, model)[0]
    assert events[-1]["data"]["output"].response_metadata["model_name"] == model
