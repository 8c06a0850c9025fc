"""``RoutedLLM``: a LlamaIndex LLM that routes each call to a model of a pool."""

from __future__ import annotations

import json
import logging
import uuid
import warnings
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from llama_index.core.base.llms.generic_utils import (
    achat_to_completion_decorator,
    astream_chat_to_completion_decorator,
    chat_to_completion_decorator,
    stream_chat_to_completion_decorator,
)
from llama_index.core.base.llms.types import (
    ChatMessage,
    ChatResponse,
    ChatResponseAsyncGen,
    ChatResponseGen,
    CompletionResponse,
    CompletionResponseAsyncGen,
    CompletionResponseGen,
    ImageBlock,
    LLMMetadata,
    MessageRole,
    TextBlock,
    ToolCallBlock,
)
from llama_index.core.bridge.pydantic import Field, PrivateAttr
from llama_index.core.constants import DEFAULT_CONTEXT_WINDOW, DEFAULT_NUM_OUTPUTS
from llama_index.core.llms.callbacks import llm_chat_callback, llm_completion_callback
from llama_index.core.llms.function_calling import FunctionCallingLLM
from llama_index.core.llms.llm import ToolSelection
from llama_index.core.types import PydanticProgramMode

from llmrouter_core.execution import NoToolModelError
from llmrouter_core.integration import build_executor, renamed_options, send_feedback

__all__ = ["RoutedLLM", "from_execution_result", "to_openai_messages"]

logger = logging.getLogger(__name__)

_ROLE_MAP = {
    "chatbot": "assistant",
    "model": "assistant",
    "developer": "system",
    "function": "tool",
}


class RoutedLLM(FunctionCallingLLM):
    """A LlamaIndex function-calling LLM whose every call is routed by a trained router.

    A thin layer over :class:`llmrouter_core.execution.Executor`: the router picks the model
    (or ``model`` pins one), requests with tools only go to models that support tools,
    failures are retried and fall back down the ranking, and budgets are enforced. Each
    response's ``additional_kwargs`` carry the model that answered, its USD cost, the token
    counts and the routing decision; ``raw`` is the answering model's LiteLLM response. The
    message's ``additional_kwargs`` carry the model and cost too (an agent's output is the
    message).

    ``metadata`` describes the pool: the context window is the smallest one among the pool
    models that may answer (so a prompt packed to it fits any of them). It is always a
    function-calling model; a call with tools when no pool model supports tools
    (:attr:`tool_models` is empty) raises
    :class:`~llmrouter_core.execution.NoToolModelError`, and structured outputs of such a
    pool are then prompted for (``pydantic_program_mode="llm"``).

    The options shared by the three adapters mean the same in each (see
    :mod:`llmrouter_core.integration`); ``fixed_model`` is the deprecated old name of
    ``model``.

    Args:
        router: A trained router, the path of a saved router directory, or an
            :class:`~llmrouter_core.execution.Executor`.
        pool: Execution pool: a ``Pool`` or a pool file (default: the router's).
        budget: A spend limit shared by every call.
        cost_weight: lambda in utility = quality - lambda x cost (USD); ``None``: the
            router's default.
        model: Call this pool model every time instead of routing (``model=`` in a call
            does it for that call).
        max_cost: Per-call cap in USD.
        routing_text: What the router reads: ``"last_user"`` (default),
            ``"conversation"``, ``"retrieval"`` (the current query and the
            ``retrieval_top_k`` earlier user turns most similar to it) or a callable
            ``messages -> str``.
        retrieval_top_k: Earlier turns the ``"retrieval"`` routing text reads.
        temperature: Sampling temperature sent to the models.
        max_tokens: Output token limit sent to the models.
        user: Who asks: a personalized router routes with this user's profile (per call:
            ``chat(messages, user=...)``); see :meth:`feedback`.
        additional_kwargs: Further LiteLLM arguments of every call.
        executor_options: Further :class:`~llmrouter_core.execution.Executor` arguments.
        trust_endpoints: Use the endpoints and key variables saved with a router directory.
        **kwargs: LlamaIndex LLM options (``callback_manager``, ``system_prompt``, ...).

    Example:
        >>> from llama_index.core import Settings                           # doctest: +SKIP
        >>> from llama_index.llms.llmrouter import RoutedLLM                # doctest: +SKIP
        >>> Settings.llm = RoutedLLM(router="runs/my-router", cost_weight=50.0)  # doctest: +SKIP
        >>> r = Settings.llm.complete("What is the capital of France?")     # doctest: +SKIP
        >>> r.text, r.additional_kwargs["model"], r.additional_kwargs["cost"]  # doctest: +SKIP
    """

    router_path: str | None = Field(default=None, description="Path of the saved router.")
    cost_weight: float | None = Field(
        default=None, ge=0, description="lambda of utility = quality - lambda x cost (USD)."
    )
    model: str | None = Field(default=None, description="Pool model to call, no routing.")
    max_cost: float | None = Field(default=None, ge=0, description="Per-call cap in USD.")
    temperature: float | None = Field(default=None, description="Sampling temperature.")
    max_tokens: int | None = Field(default=None, gt=0, description="Output token limit.")
    user: str | None = Field(
        default=None, description="Who asks (a personalized router reads their profile)."
    )
    additional_kwargs: dict[str, Any] = Field(
        default_factory=dict, description="Further LiteLLM arguments of every call."
    )

    _executor: Any = PrivateAttr(default=None)

    def __init__(
        self,
        router: Any,
        *,
        pool: Any = None,
        budget: Any = None,
        cost_weight: float | None = None,
        model: str | None = None,
        max_cost: float | None = None,
        routing_text: Any = None,
        retrieval_top_k: int = 3,
        temperature: float | None = None,
        max_tokens: int | None = None,
        additional_kwargs: Mapping[str, Any] | None = None,
        executor_options: Mapping[str, Any] | None = None,
        trust_endpoints: bool = False,
        **kwargs: Any,
    ) -> None:
        if model is not None:
            kwargs["model"] = model
        model = renamed_options(kwargs, "RoutedLLM").pop("model", None)  # or fixed_model=
        executor, path = build_executor(
            router,
            pool=pool,
            budget=budget,
            cost_weight=cost_weight,
            model=model,
            max_cost=max_cost,
            routing_text=routing_text,
            retrieval_top_k=retrieval_top_k,
            options=executor_options,
            trust_endpoints=trust_endpoints,
            owner="RoutedLLM",
        )
        if not _capable(executor, [model] if model else executor.models, "tools"):
            # Structured outputs by prompting, not by a tool call no pool model can make.
            kwargs.setdefault("pydantic_program_mode", PydanticProgramMode.LLM)
        super().__init__(
            router_path=path,
            cost_weight=cost_weight,
            model=model,
            max_cost=max_cost,
            temperature=temperature,
            max_tokens=max_tokens,
            additional_kwargs=dict(additional_kwargs or {}),
            **kwargs,
        )
        self._executor = executor

    @classmethod
    def class_name(cls) -> str:
        return "llmrouter_routed_llm"

    # -- the pool ---------------------------------------------------------------------------
    @property
    def executor(self) -> Any:
        """The :class:`~llmrouter_core.execution.Executor` behind this LLM."""
        return self._executor

    @property
    def router(self) -> Any:
        """The router deciding each call."""
        return self._executor.router

    @property
    def fixed_model(self) -> str | None:
        """Deprecated: the old name of :attr:`model`."""
        warnings.warn(
            "RoutedLLM.fixed_model is deprecated; use model", DeprecationWarning, stacklevel=2
        )
        return self.model

    def _candidates(self) -> list[str]:
        return [self.model] if self.model else list(self._executor.models)

    @property
    def tool_models(self) -> list[str]:
        """The pool models that may answer a request with tools."""
        return _capable(self._executor, self._candidates(), "tools")

    @property
    def metadata(self) -> LLMMetadata:
        ex = self._executor
        windows = [ex.context_window(m) for m in self._candidates()]
        known = [w for w in windows if w]
        name = self.model or f"llmrouter/{getattr(self.router, 'name', '') or 'router'}"
        return LLMMetadata(
            context_window=min(known) if known else DEFAULT_CONTEXT_WINDOW,
            num_output=self.max_tokens or DEFAULT_NUM_OUTPUTS,
            is_chat_model=True,
            # It is a FunctionCallingLLM: with tools, a pool without tool-capable models fails
            # with NoToolModelError, which names them (see tool_models).
            is_function_calling_model=True,
            model_name=name,
        )

    # -- calls ------------------------------------------------------------------------------
    def _call_args(self, messages: Sequence[ChatMessage], kwargs: dict[str, Any]) -> dict:
        args: dict[str, Any] = {**self.additional_kwargs}
        if self.temperature is not None:
            args["temperature"] = self.temperature
        if self.max_tokens is not None:
            args["max_tokens"] = self.max_tokens
        args.update(kwargs)
        args.pop("parallel_tool_calls", None)  # enforced here, not by every provider
        if args.get("tool_choice") in (None, "auto"):
            args.pop("tool_choice", None)
        if not args.get("tools"):
            args.pop("tools", None)
        args.setdefault("model", self.model)
        args.setdefault("cost_weight", self.cost_weight)
        args.setdefault("max_cost", self.max_cost)
        args.setdefault("user", self.user)
        return {"messages": to_openai_messages(messages), **args}

    def feedback(
        self,
        response: Any,
        query: str,
        *,
        rating: float | None = None,
        preferred_over: str | None = None,
        user: str | None = None,
    ) -> Any:
        """Give a personalized router a user's feedback on one answer, in one call.

        Args:
            response: The ``ChatResponse`` / ``CompletionResponse`` of this LLM (or the name
                of the pool model that answered).
            query: The query that was answered.
            rating: The user's rating of the answer, in [0, 1].
            preferred_over: Another pool model whose answer the user liked less.
            user: Who gives it (default: this LLM's ``user``).
        """
        extra = getattr(response, "additional_kwargs", None) or {}
        model = response if isinstance(response, str) else extra.get("model")
        return send_feedback(
            self._executor,
            user=user or self.user,
            query=query,
            model=model,
            rating=rating,
            preferred_over=preferred_over,
        )

    @llm_chat_callback()
    def chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        result = self._executor.complete(**self._call_args(messages, kwargs))
        return from_execution_result(result)

    @llm_chat_callback()
    async def achat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        result = await self._executor.acomplete(**self._call_args(messages, kwargs))
        return from_execution_result(result)

    @llm_chat_callback()
    def stream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseGen:
        args = self._call_args(messages, kwargs)

        def gen() -> ChatResponseGen:
            from llmrouter_core.execution import StreamChunk

            text = ""
            for item in self._executor.stream(**args):
                if isinstance(item, StreamChunk):
                    delta = item.text
                    text += delta
                    yield ChatResponse(
                        message=ChatMessage(role=MessageRole.ASSISTANT, content=text),
                        delta=delta,
                        additional_kwargs={"model": item.model},
                    )
                else:
                    yield from_execution_result(item, streamed_text=text)

        return gen()

    @llm_chat_callback()
    async def astream_chat(
        self, messages: Sequence[ChatMessage], **kwargs: Any
    ) -> ChatResponseAsyncGen:
        args = self._call_args(messages, kwargs)

        async def gen() -> ChatResponseAsyncGen:
            from llmrouter_core.execution import StreamChunk

            text = ""
            async for item in self._executor.astream(**args):
                if isinstance(item, StreamChunk):
                    text += item.text
                    yield ChatResponse(
                        message=ChatMessage(role=MessageRole.ASSISTANT, content=text),
                        delta=item.text,
                        additional_kwargs={"model": item.model},
                    )
                else:
                    yield from_execution_result(item, streamed_text=text)

        return gen()

    @llm_completion_callback()
    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        return chat_to_completion_decorator(self.chat)(prompt, **kwargs)

    @llm_completion_callback()
    async def acomplete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponse:
        return await achat_to_completion_decorator(self.achat)(prompt, **kwargs)

    @llm_completion_callback()
    def stream_complete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponseGen:
        return stream_chat_to_completion_decorator(self.stream_chat)(prompt, **kwargs)

    @llm_completion_callback()
    async def astream_complete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponseAsyncGen:
        return await astream_chat_to_completion_decorator(self.astream_chat)(prompt, **kwargs)

    # -- tools ------------------------------------------------------------------------------
    def _prepare_chat_with_tools(
        self,
        tools: Sequence[Any],
        user_msg: str | ChatMessage | None = None,
        chat_history: list[ChatMessage] | None = None,
        verbose: bool = False,
        allow_parallel_tool_calls: bool = False,
        tool_required: bool = False,
        **kwargs: Any,
    ) -> dict[str, Any]:
        specs = [tool.metadata.to_openai_tool(skip_length_check=True) for tool in tools]
        if specs and not self.tool_models:
            raise NoToolModelError(self._candidates())
        messages = list(chat_history or [])
        if isinstance(user_msg, str):
            user_msg = ChatMessage(role=MessageRole.USER, content=user_msg)
        if user_msg is not None:
            messages.append(user_msg)
        out: dict[str, Any] = {"messages": messages, "tools": specs or None, **kwargs}
        if tool_required and specs:
            out["tool_choice"] = "required"
        return out

    def _validate_chat_with_tools_response(
        self,
        response: ChatResponse,
        tools: Sequence[Any],
        allow_parallel_tool_calls: bool = False,
        **kwargs: Any,
    ) -> ChatResponse:
        if not allow_parallel_tool_calls:
            _keep_first_tool_call(response.message)
        return response

    def get_tool_calls_from_response(
        self,
        response: ChatResponse,
        error_on_no_tool_call: bool = True,
        **kwargs: Any,
    ) -> list[ToolSelection]:
        selections = []
        for block in response.message.blocks:
            if not isinstance(block, ToolCallBlock):
                continue
            args = block.tool_kwargs
            if isinstance(args, str):
                try:
                    args = json.loads(args) if args.strip() else {}
                except ValueError:
                    args = {}
            selections.append(
                ToolSelection(
                    tool_id=block.tool_call_id or f"call_{uuid.uuid4().hex[:12]}",
                    tool_name=block.tool_name,
                    tool_kwargs=args if isinstance(args, dict) else {},
                )
            )
        if not selections and error_on_no_tool_call:
            raise ValueError(
                f"expected at least one tool call, the model "
                f"{response.additional_kwargs.get('model', '?')} answered with text only"
            )
        return selections


# -- conversions --------------------------------------------------------------------------


def to_openai_messages(messages: Sequence[ChatMessage]) -> list[dict[str, Any]]:
    """LlamaIndex chat messages as OpenAI-style dicts (text, images, tool calls, results)."""
    out: list[dict[str, Any]] = []
    for message in messages:
        role = message.role.value if isinstance(message.role, MessageRole) else str(message.role)
        role = _ROLE_MAP.get(role, role)
        texts: list[str] = []
        parts: list[dict[str, Any]] = []
        calls: list[dict[str, Any]] = []
        for block in message.blocks:
            if isinstance(block, TextBlock):
                texts.append(block.text)
                parts.append({"type": "text", "text": block.text})
            elif isinstance(block, ImageBlock):
                parts.append({"type": "image_url", "image_url": {"url": _image_url(block)}})
            elif isinstance(block, ToolCallBlock):
                args = block.tool_kwargs
                calls.append(
                    {
                        "id": block.tool_call_id or f"call_{uuid.uuid4().hex[:12]}",
                        "type": "function",
                        "function": {
                            "name": block.tool_name,
                            "arguments": args if isinstance(args, str) else json.dumps(args),
                        },
                    }
                )
        if not calls:
            calls = [_tool_call_dict(c) for c in message.additional_kwargs.get("tool_calls") or []]
        has_image = any(p["type"] != "text" for p in parts)
        content: Any = parts if has_image else "\n".join(texts)
        entry: dict[str, Any] = {"role": role, "content": content}
        if calls:
            entry["tool_calls"] = calls
            if not texts and not has_image:
                entry["content"] = None
        if role == "tool":
            call_id = message.additional_kwargs.get("tool_call_id")
            if call_id:
                entry["tool_call_id"] = call_id
            name = message.additional_kwargs.get("name")
            if name:
                entry["name"] = name
        out.append(entry)
    return out


def from_execution_result(result: Any, *, streamed_text: str | None = None) -> ChatResponse:
    """A LlamaIndex chat response of an :class:`~llmrouter_core.execution.ExecutionResult`."""
    from llmrouter_core.execution.executor import StreamedResponse

    text = result.answer if streamed_text is None else streamed_text
    if isinstance(result.response, StreamedResponse):
        calls = result.response.tool_calls(fill_ids=True)
    else:
        calls = [_tool_call_dict(c) for c in result.tool_calls]
    blocks: list[Any] = [TextBlock(text=text)] if text else []
    for call in calls:
        fn = call["function"]
        blocks.append(
            ToolCallBlock(
                tool_call_id=call["id"],
                tool_name=fn["name"] or "",
                tool_kwargs=_parse_args(fn["arguments"]),
            )
        )
    message = ChatMessage(role=MessageRole.ASSISTANT, blocks=blocks)
    # On the message too: an agent's output (AgentOutput.response) is the message.
    message.additional_kwargs.update(model=result.model, cost=result.known_cost)
    if calls:
        message.additional_kwargs["tool_calls"] = calls
    return ChatResponse(
        message=message,
        raw=result.response,
        delta="" if streamed_text is not None else None,
        additional_kwargs={
            "model": result.model,
            "cost": result.known_cost,
            "prompt_tokens": result.input_tokens,
            "completion_tokens": result.output_tokens,
            "total_tokens": result.input_tokens + result.output_tokens,
            "decision": None if result.decision is None else result.decision.to_dict(),
            "fell_back": result.fell_back,
        },
    )


# -- helpers ------------------------------------------------------------------------------


def _capable(
    executor: Any, models: Sequence[str], capability: Literal["tools", "json_schema"]
) -> list[str]:
    return list(executor.capable(capability, models))


def _image_url(block: ImageBlock) -> str:
    if block.url:
        return str(block.url)
    data = block.resolve_image(as_base64=True).read().decode("ascii")
    return f"data:{block.image_mimetype or 'image/png'};base64,{data}"


def _tool_call_dict(call: Any) -> dict[str, Any]:
    """An OpenAI tool call dict from a dict or a LiteLLM/OpenAI object."""
    if hasattr(call, "model_dump"):
        call = call.model_dump()
    call = dict(call) if isinstance(call, Mapping) else {}
    fn = call.get("function") or {}
    if hasattr(fn, "model_dump"):
        fn = fn.model_dump()
    args = fn.get("arguments")
    return {
        "id": call.get("id") or f"call_{uuid.uuid4().hex[:12]}",
        "type": "function",
        "function": {
            "name": fn.get("name"),
            "arguments": args if isinstance(args, str) else json.dumps(args or {}),
        },
    }


def _parse_args(arguments: Any) -> dict[str, Any] | str:
    if isinstance(arguments, dict):
        return arguments
    try:
        value = json.loads(arguments) if arguments else {}
    except (TypeError, ValueError):
        return str(arguments)
    return value if isinstance(value, dict) else str(arguments)


def _keep_first_tool_call(message: ChatMessage) -> None:
    seen = False
    kept = []
    for block in message.blocks:
        if isinstance(block, ToolCallBlock):
            if seen:
                continue
            seen = True
        kept.append(block)
    message.blocks = kept
    calls = message.additional_kwargs.get("tool_calls")
    if calls and len(calls) > 1:
        message.additional_kwargs["tool_calls"] = calls[:1]
