"""RoutedLLM: LlamaIndex calls routed by a trained router, answered by real recorded responses
(replay), by a scripted tool-calling stand-in (agents), and by a local model (query engine)."""

from __future__ import annotations

import asyncio
import math
from typing import Any

import pytest
from llama_index.core.base.llms.types import ChatMessage, MessageRole, ToolCallBlock
from llama_index.core.llms.function_calling import FunctionCallingLLM
from llama_index.core.tools import FunctionTool
from llama_index.llms.llmrouter import RoutedLLM, to_openai_messages

from llmrouter_core.errors import UnknownModelError
from llmrouter_core.execution import NoEligibleModelError

TOOL_MODELS = ("gpt-4-1106-preview", "gpt-3.5-turbo-1106")  # scripted in the tool pool

WEIGHT = 200.0


def _expected(router: Any, data: Any, row: int, weight: float = WEIGHT) -> tuple[str, str, float]:
    """(model, recorded answer, recorded cost) the routed call must produce."""
    model = router.route(data.queries[row], cost_weight=weight).model
    j = data.models.index(model)
    return model, data.responses[row, j], float(data.costs[row, j])


@pytest.fixture()
def llm(knn_router: Any, replay_pool: Any) -> RoutedLLM:
    return RoutedLLM(knn_router, pool=replay_pool, cost_weight=WEIGHT)


def test_is_a_function_calling_llm_and_importable_from_the_namespace(llm: RoutedLLM) -> None:
    import llama_index.llms.llmrouter as pkg

    assert isinstance(llm, FunctionCallingLLM)
    assert pkg.__all__ == sorted(pkg.__all__)
    assert RoutedLLM.class_name() == "llmrouter_routed_llm"


def test_complete_and_chat_answer_with_the_routed_models_recorded_response(
    llm: RoutedLLM, knn_router: Any, rb_test_rows: tuple[Any, list[int]]
) -> None:
    data, rows = rb_test_rows
    models = set()
    for row in rows[:6]:
        model, answer, cost = _expected(knn_router, data, row)
        done = llm.complete(data.queries[row])
        assert done.text == answer
        assert done.additional_kwargs["model"] == model
        assert done.additional_kwargs["cost"] == pytest.approx(cost)
        assert done.additional_kwargs["decision"]["model"] == model
        chat = llm.chat([ChatMessage(role=MessageRole.USER, content=data.queries[row])])
        assert chat.message.content == answer
        assert chat.message.role == MessageRole.ASSISTANT
        models.add(model)
    assert models, "no call was made"


def test_streaming_and_async_twins_give_the_same_answer(
    llm: RoutedLLM, knn_router: Any, rb_test_rows: tuple[Any, list[int]]
) -> None:
    data, rows = rb_test_rows
    row = rows[0]
    model, answer, cost = _expected(knn_router, data, row)
    pieces = list(llm.stream_complete(data.queries[row]))
    assert "".join(p.delta or "" for p in pieces) == answer
    assert pieces[-1].text == answer
    assert pieces[-1].additional_kwargs["model"] == model
    assert pieces[-1].additional_kwargs["cost"] == pytest.approx(cost)
    if len(answer) > 30:
        assert len(pieces) > 2  # delivered in pieces, not at the end

    chat_pieces = list(llm.stream_chat([ChatMessage(role="user", content=data.queries[row])]))
    assert chat_pieces[-1].message.content == answer

    async def run() -> tuple[Any, Any, list[Any], list[Any]]:
        done = await llm.acomplete(data.queries[row])
        chat = await llm.achat([ChatMessage(role="user", content=data.queries[row])])
        gen = await llm.astream_complete(data.queries[row])
        stream = [p async for p in gen]
        cgen = await llm.astream_chat([ChatMessage(role="user", content=data.queries[row])])
        cstream = [p async for p in cgen]
        return done, chat, stream, cstream

    done, chat, stream, cstream = asyncio.run(run())
    assert done.text == answer and done.additional_kwargs["model"] == model
    assert chat.message.content == answer
    assert "".join(p.delta or "" for p in stream) == answer
    assert cstream[-1].message.content == answer


def test_cost_weight_and_a_pinned_model_steer_the_choice(
    knn_router: Any, replay_pool: Any, rb_test_rows: tuple[Any, list[int]]
) -> None:
    data, rows = rb_test_rows
    cheap = RoutedLLM(knn_router, pool=replay_pool, cost_weight=math.inf)
    row = rows[1]
    # math.inf: the cheapest model for the query, by the router's own cost prediction.
    predicted = knn_router.route(data.queries[row], cost_weight=math.inf).model
    assert cheap.complete(data.queries[row]).additional_kwargs["model"] == predicted

    fixed = RoutedLLM(knn_router, pool=replay_pool, model="claude-v2")
    j = data.models.index("claude-v2")
    out = fixed.complete(data.queries[row])
    assert out.text == data.responses[row, j]
    assert out.additional_kwargs["cost"] == pytest.approx(data.costs[row, j])
    assert fixed.metadata.model_name == "claude-v2"
    # model= in a call pins that call only.
    k = data.models.index("gpt-4-1106-preview")
    once = cheap.complete(data.queries[row], model="gpt-4-1106-preview")
    assert once.text == data.responses[row, k]


def test_fixed_model_is_the_deprecated_name_of_model(knn_router: Any, replay_pool: Any) -> None:
    with pytest.warns(DeprecationWarning, match=r"fixed_model=.*use model="):
        old = RoutedLLM(knn_router, pool=replay_pool, fixed_model="claude-v2")
    assert old.model == "claude-v2"
    with pytest.warns(DeprecationWarning, match="use model"):
        assert old.fixed_model == "claude-v2"
    with pytest.raises(TypeError, match="model= only"):
        RoutedLLM(knn_router, pool=replay_pool, model="claude-v2", fixed_model="claude-v2")


def test_routing_text_and_an_executor_as_router(
    knn_router: Any, replay_pool: Any, rb_test_rows: tuple[Any, list[int]]
) -> None:
    from llama_index.core.base.llms.types import ChatMessage, MessageRole

    from llmrouter_core.execution import Executor

    data, rows = rb_test_rows
    first, now = data.queries[rows[0]], data.queries[rows[2]]
    messages = [
        ChatMessage(role=MessageRole.USER, content=first),
        ChatMessage(role=MessageRole.ASSISTANT, content="..."),
        ChatMessage(role=MessageRole.USER, content=now),
    ]
    custom = RoutedLLM(knn_router, pool=replay_pool, routing_text=lambda msgs: first)
    answer = custom.chat(messages)
    assert answer.additional_kwargs["decision"] == knn_router.route(first).to_dict()
    whole = RoutedLLM(knn_router, pool=replay_pool, routing_text="conversation")
    decision = whole.chat(messages).additional_kwargs["decision"]
    assert decision == knn_router.route("\n\n".join([first, "...", now])).to_dict()

    executor = Executor(knn_router, pool=replay_pool, routing_text="conversation")
    given = RoutedLLM(executor, cost_weight=WEIGHT)
    assert given.executor is executor and given.router_path is None
    for clash in ({"pool": replay_pool}, {"budget": 1.0}, {"routing_text": "last_user"}):
        with pytest.raises(ValueError, match="belong to the Executor"):
            RoutedLLM(executor, **clash)
    with pytest.raises(ValueError, match="routing_text must be"):
        RoutedLLM(knn_router, pool=replay_pool, routing_text="everything")


def test_metadata_reflects_the_pool(knn_router: Any, replay_pool: Any, tool_pool: Any) -> None:
    from dataclasses import replace

    from llama_index.core.constants import DEFAULT_CONTEXT_WINDOW

    from llmrouter_core.execution import PoolOrderRouter
    from llmrouter_core.pool import ModelSpec, Pool

    # Recorded answers: no window is known and no tool call can come back, whatever LiteLLM's
    # table says of the original models.
    replayed = RoutedLLM(knn_router, pool=replay_pool)
    meta = replayed.metadata
    assert meta.context_window == DEFAULT_CONTEXT_WINDOW
    assert meta.is_chat_model
    assert meta.is_function_calling_model and replayed.tool_models == []
    # Called through OpenAI, LiteLLM's table applies: it knows the windows of the two OpenAI
    # models only, and the smallest one bounds prompts.
    openai = Pool(replace(s, litellm_model=f"openai/{s.name}") for s in replay_pool)
    meta = RoutedLLM(knn_router, pool=openai).metadata
    assert meta.context_window == 16385
    # gpt-3.5/4 accept tools
    assert set(RoutedLLM(knn_router, pool=openai).tool_models) >= {"gpt-4-1106-preview"}
    fixed = RoutedLLM(knn_router, pool=openai, model="gpt-4-1106-preview")
    assert fixed.metadata.context_window == 128000

    plain = Pool(
        [
            ModelSpec("small", litellm_model="replay/small", context_window=2048),
            ModelSpec("big", litellm_model="replay/big", context_window=32000),
        ]
    )
    meta = RoutedLLM(PoolOrderRouter(plain)).metadata
    assert meta.context_window == 2048
    assert RoutedLLM(PoolOrderRouter(plain)).tool_models == []
    assert set(RoutedLLM(knn_router, pool=tool_pool).tool_models) == set(TOOL_MODELS)


def test_works_as_settings_llm(
    llm: RoutedLLM, knn_router: Any, rb_test_rows: tuple[Any, list[int]]
) -> None:
    from llama_index.core import Settings

    data, rows = rb_test_rows
    previous = Settings._llm
    try:
        Settings.llm = llm
        assert Settings.llm is llm
        _, answer, _ = _expected(knn_router, data, rows[2])
        assert Settings.llm.complete(data.queries[rows[2]]).text == answer
    finally:
        Settings._llm = previous


def _multiply_tool(calls: list[tuple[int, int]]) -> FunctionTool:
    def multiply(a: int, b: int) -> int:
        """Multiply two integers and return the product."""
        calls.append((a, b))
        return a * b

    return FunctionTool.from_defaults(fn=multiply)


@pytest.fixture()
def chat_events() -> Any:
    """The ChatResponses LlamaIndex's instrumentation reports (LLMChatEndEvent)."""
    from llama_index.core.instrumentation import get_dispatcher
    from llama_index.core.instrumentation.event_handlers import BaseEventHandler
    from llama_index.core.instrumentation.events.llm import LLMChatEndEvent

    seen: list[Any] = []

    class Collect(BaseEventHandler):
        @classmethod
        def class_name(cls) -> str:
            return "CollectChatEnd"

        def handle(self, event: Any, **kwargs: Any) -> None:
            if isinstance(event, LLMChatEndEvent) and event.response is not None:
                seen.append(event.response)

    dispatcher = get_dispatcher()
    handler = Collect()
    dispatcher.add_event_handler(handler)
    yield seen
    dispatcher.event_handlers.remove(handler)


@pytest.mark.parametrize("streaming", [True, False])
def test_function_agent_completes_a_tool_task(
    knn_router: Any, tool_pool: Any, streaming: bool, chat_events: list[Any]
) -> None:
    from llama_index.core.agent.workflow import FunctionAgent

    calls: list[tuple[int, int]] = []
    llm = RoutedLLM(knn_router, pool=tool_pool, cost_weight=WEIGHT)
    agent = FunctionAgent(
        tools=[_multiply_tool(calls)],
        llm=llm,
        streaming=streaming,
        system_prompt="Use the tools to compute.",
    )

    async def run() -> Any:
        return await agent.run(user_msg="What is 37 times 91?")

    output = asyncio.run(run())
    assert calls == [(37, 91)], "the agent did not call the Python tool with the model's args"
    assert "3367" in str(output)
    assert output.tool_calls and output.tool_calls[0].tool_output.content == "3367"
    # Both turns (tool call, then answer) went to a tool-capable model, chosen by the router
    # among the tool-capable models only; each turn's cost is accounted.
    final = [r for r in chat_events if "model" in r.additional_kwargs]
    assert len(final) == 2
    for response in final:
        assert response.additional_kwargs["model"] in TOOL_MODELS
        assert set(response.additional_kwargs["decision"]["ranked"]) == set(TOOL_MODELS)
        assert response.additional_kwargs["cost"] > 0
    assert final[0].message.blocks[-1].tool_name == "multiply"


def test_predict_and_call_and_tool_call_parsing(knn_router: Any, tool_pool: Any) -> None:
    calls: list[tuple[int, int]] = []
    llm = RoutedLLM(knn_router, pool=tool_pool)
    tool = _multiply_tool(calls)
    response = llm.chat_with_tools([tool], user_msg="Multiply 6 by 7", tool_required=True)
    selections = llm.get_tool_calls_from_response(response)
    assert [(s.tool_name, s.tool_kwargs) for s in selections] == [("multiply", {"a": 6, "b": 7})]
    assert response.additional_kwargs["cost"] > 0
    assert str(llm.predict_and_call([tool], user_msg="Multiply 6 by 7")) == "42"
    assert calls == [(6, 7)]

    text_only = llm.chat([ChatMessage(role="user", content="Say hi")])
    with pytest.raises(ValueError, match="text only"):
        llm.get_tool_calls_from_response(text_only)
    assert llm.get_tool_calls_from_response(text_only, error_on_no_tool_call=False) == []


def test_tools_without_a_tool_capable_model_fail_clearly(knn_router: Any, replay_pool: Any) -> None:
    from llmrouter_core.execution import PoolOrderRouter
    from llmrouter_core.pool import ModelSpec, Pool

    pool = Pool([ModelSpec("small", litellm_model="replay/small")])
    llm = RoutedLLM(PoolOrderRouter(pool))
    assert llm.tool_models == []
    with pytest.raises(NoEligibleModelError, match="no pool model supports tools"):
        llm.chat_with_tools([_multiply_tool([])], user_msg="Multiply 2 by 3")


def test_react_agent_completes_a_tool_task(knn_router: Any, scripted_pool: Any) -> None:
    from llama_index.core.agent.workflow import ReActAgent

    calls: list[tuple[int, int]] = []
    llm = RoutedLLM(knn_router, pool=scripted_pool, cost_weight=WEIGHT)
    agent = ReActAgent(tools=[_multiply_tool(calls)], llm=llm)

    async def run() -> Any:
        return await agent.run(user_msg="What is 12 times 12?")

    output = asyncio.run(run())
    assert calls == [(12, 12)]
    assert "144" in str(output)


def test_query_engine_over_a_local_index(monkeypatch: pytest.MonkeyPatch) -> None:
    from llmrouter_core.providers.local import default_local_pool, local_models_available

    if "smollm2-135m" not in local_models_available():
        pytest.skip("the local SmolLM2 model is not installed (extra 'local')")
    from llama_index.core import Document, SummaryIndex

    from llmrouter_core.execution import PoolOrderRouter

    llm = RoutedLLM(PoolOrderRouter(default_local_pool()), max_tokens=24)
    docs = [
        Document(text="The lighthouse of Varn was built in 1872 and is painted red."),
        Document(text="Varn is a fishing town on the northern coast."),
    ]
    index = SummaryIndex.from_documents(docs)
    seen: list[Any] = []
    original = llm.executor.complete

    def spy(*args: Any, **kwargs: Any) -> Any:
        result = original(*args, **kwargs)
        seen.append((kwargs["messages"], result))
        return result

    monkeypatch.setattr(llm.executor, "complete", spy)
    response = index.as_query_engine(llm=llm).query("When was the lighthouse of Varn built?")
    assert seen, "the query engine did not call the routed LLM"
    messages, result = seen[-1]
    prompt = " ".join(str(m["content"]) for m in messages)
    assert "1872" in prompt and "When was the lighthouse" in prompt  # retrieved context sent
    assert result.model == "smollm2-135m"  # the pool's first model, a real local LLM
    assert str(response) == result.answer.strip() or str(response) == result.answer
    assert {n.node.get_content() for n in response.source_nodes} == {d.text for d in docs}


def test_message_conversion_keeps_tool_calls_and_results() -> None:
    assistant = ChatMessage(
        role=MessageRole.ASSISTANT,
        blocks=[
            ToolCallBlock(tool_call_id="c1", tool_name="multiply", tool_kwargs={"a": 2, "b": 3})
        ],
    )
    tool = ChatMessage(
        role=MessageRole.TOOL,
        content="6",
        additional_kwargs={"tool_call_id": "c1", "name": "multiply"},
    )
    system = ChatMessage(role=MessageRole.SYSTEM, content="Be brief.")
    out = to_openai_messages([system, assistant, tool])
    assert out[0] == {"role": "system", "content": "Be brief."}
    assert out[1]["role"] == "assistant" and out[1]["content"] is None
    assert out[1]["tool_calls"][0]["function"] == {
        "name": "multiply",
        "arguments": '{"a": 2, "b": 3}',
    }
    assert out[2] == {"role": "tool", "content": "6", "tool_call_id": "c1", "name": "multiply"}


def test_bad_input_raises_one_clear_error(knn_router: Any, replay_pool: Any, tmp_path: Any) -> None:
    from llmrouter_core.errors import NotFittedError, PersistenceError

    with pytest.raises(UnknownModelError, match="not in the pool"):
        RoutedLLM(knn_router, pool=replay_pool, model="gpt-5")
    with pytest.raises(PersistenceError):
        RoutedLLM(tmp_path / "missing")
    import llmrouter_core as lr

    with pytest.raises(NotFittedError):
        RoutedLLM(lr.get_router("knn"))
    with pytest.raises(ValueError):
        RoutedLLM(knn_router, pool=replay_pool, cost_weight=-1.0)


def test_loads_a_saved_router_by_path(
    knn_router: Any, replay_pool: Any, tmp_path: Any, rb_test_rows: tuple[Any, list[int]]
) -> None:
    data, rows = rb_test_rows
    knn_router.save(tmp_path / "router")
    llm = RoutedLLM(str(tmp_path / "router"), pool=replay_pool, cost_weight=WEIGHT)
    assert llm.router_path == str(tmp_path / "router")
    _, answer, _ = _expected(knn_router, data, rows[3])
    assert llm.complete(data.queries[rows[3]]).text == answer
