"""``RoutedChatModel``: a LangChain chat model that sends every call to the right model of a
pool, as a trained router decides.

The model is a thin translation layer: routing, capability checks, retries, fallbacks,
budgets and cost accounting all happen in :class:`llmrouter_core.execution.Executor`.
"""

from __future__ import annotations

import functools
import inspect
import logging
import warnings
from collections.abc import AsyncIterator, Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from operator import itemgetter
from typing import Any, Literal

from langchain_core.callbacks import (
    AsyncCallbackManager,
    AsyncCallbackManagerForChainRun,
    AsyncCallbackManagerForLLMRun,
    BaseCallbackManager,
    CallbackManager,
    CallbackManagerForChainRun,
    CallbackManagerForLLMRun,
)
from langchain_core.language_models import BaseChatModel, LangSmithParams, LanguageModelInput
from langchain_core.language_models.chat_models import generate_from_stream
from langchain_core.language_models.model_profile import ModelProfile
from langchain_core.messages import LC_ID_PREFIX, AIMessage, AIMessageChunk, BaseMessage
from langchain_core.output_parsers import JsonOutputParser, PydanticOutputParser
from langchain_core.output_parsers.openai_tools import (
    JsonOutputKeyToolsParser,
    PydanticToolsParser,
)
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable, RunnableConfig, RunnableMap, RunnablePassthrough
from langchain_core.runnables.config import ensure_config
from langchain_core.utils import from_env
from langchain_core.utils.function_calling import convert_to_json_schema, convert_to_openai_tool
from langchain_core.utils.pydantic import is_basemodel_subclass
from pydantic import ConfigDict, Field, PrivateAttr, SecretStr

from langchain_llmrouter._convert import (
    finish_reason,
    response_tool_calls,
    stream_tool_call_chunks,
    to_openai_messages,
    usage_metadata,
)
from llmrouter_core.decision import Decision
from llmrouter_core.errors import NotFittedError
from llmrouter_core.execution import (
    ExecutionResult,
    Executor,
    NoEligibleModelError,
    StreamChunk,
)
from llmrouter_core.execution._support import routing_text as _routing_text
from llmrouter_core.integration import (
    build_executor,
    check_tool_call,
    renamed_options,
    send_feedback,
    user_from_metadata,
)
from llmrouter_core.pool import estimate_tokens

__all__ = ["ROUTER_ENV", "RoutedChatModel", "RoutingInput", "RoutingText"]

logger = logging.getLogger(__name__)

#: Environment variable naming the saved router to load when ``router`` is not given.
ROUTER_ENV = "LLMROUTER_ROUTER"

#: What the router reads: the last user message, the whole conversation, the current query
#: with the earlier turns most similar to it, or a callable ``messages -> str``.
RoutingText = Literal["last_user", "conversation", "retrieval"]
#: The old name of :data:`RoutingText`.
RoutingInput = RoutingText

# Fields that are Executor arguments (field -> Executor argument): with an Executor given as
# ``router``, they must be left at their defaults.
_EXECUTOR_FIELDS = {
    "api_key": "keys",
    "max_retries": "max_retries",
    "timeout": "timeout",
    "fallback": "fallback",
    "limit_max_tokens": "limit_max_tokens",
}

# Call-time keyword arguments consumed here (the rest go to LiteLLM).
_OWN_KWARGS = (
    "model",
    "decision",
    "cost_weight",
    "max_cost",
    "user",
    "tools",
    "response_format",
)


@dataclass
class _Call:
    """One request, translated for the executor."""

    messages: list[dict[str, Any]]
    kwargs: dict[str, Any]
    model: str | None
    decision: Decision | None
    routing_text: str | None = None


class RoutedChatModel(BaseChatModel):
    """A chat model that routes each call to a model of a pool and answers with it.

    Use it wherever a LangChain chat model goes (chains, ``create_agent``, LangGraph nodes):
    ``invoke``, ``ainvoke``, ``stream``, ``astream``, ``batch`` and ``astream_events`` work as
    usual, with real token streaming from the chosen model. Each answer's
    ``response_metadata`` names the model that answered (``model_name``) and carries the
    routing ``decision``, the ``cost`` in USD and every attempt; ``usage_metadata`` holds its
    tokens. Calls with tools (``bind_tools``) or a JSON schema (``with_structured_output``)
    go only to pool models that support them; images only to models that accept images.

    The options shared by the three adapters (``router``, ``pool``, ``budget``,
    ``cost_weight``, ``model``, ``max_cost``, ``routing_text``, ``temperature``,
    ``max_tokens``, ``executor_options``, ``trust_endpoints``) mean the same in each; see
    :mod:`llmrouter_core.integration`. ``routing_input`` is the deprecated old name of
    ``routing_text``.

    Args:
        router: A fitted router, the directory of a saved one, or an
            :class:`~llmrouter_core.execution.Executor` (default: the ``LLMROUTER_ROUTER``
            environment variable).
        pool: The pool used to call the models (a :class:`~llmrouter_core.Pool` or a pool
            file); default: the router's.
        model: Always call this pool model instead of routing (``model=`` at call time does
            the same for one call).
        cost_weight: lambda in utility = quality - lambda x cost (USD); ``None`` = the
            router's default, ``math.inf`` = the cheapest capable model.
        budget: A spend limit shared by every call: USD, a ``Budget``, or a ``BudgetManager``
            (one budget per ``user``).
        max_cost: Per-call cap in USD.
        user: Who asks: whose budget to charge (with a ``BudgetManager``) and whose profile
            a personalized router reads. Per call: ``invoke(..., user=...)`` or
            ``config={"configurable": {"user_id": ...}}`` (or ``metadata``).
        api_key: API keys in ``API_KEYS`` format (default: the ``API_KEYS`` environment
            variable).
        routing_text: ``"last_user"``, ``"conversation"``, ``"retrieval"`` (the current
            query and the ``retrieval_top_k`` earlier turns most similar to it) or a callable
            ``messages -> str``.
        fallback: On failure, fall back down the decision's ranking.
        executor_options: Further :class:`~llmrouter_core.execution.Executor` arguments
            (``backoff``, ``max_price``, ...; those with a field of their own go there).
        trust_endpoints: Use the endpoints and key variables saved with a router directory.
        strict_tool_calls: A call with tools answered without the tool call it needed (a
            required tool choice, as ``with_structured_output`` sends, or a ``replay/`` or
            ``local/`` model, which answers with text only) raises
            :class:`~llmrouter_core.errors.MissingToolCallError`. Without it the answer
            is returned with the problem in ``response_metadata["warnings"]`` and a
            :class:`~llmrouter_core.integration.ToolCallWarning` is issued.

    Example:
        >>> from langchain_llmrouter import RoutedChatModel            # doctest: +SKIP
        >>> llm = RoutedChatModel(router="routers/knn", cost_weight=200.0)  # doctest: +SKIP
        >>> msg = llm.invoke("What is the capital of France?")         # doctest: +SKIP
        >>> msg.response_metadata["model_name"], msg.response_metadata["cost"]  # doctest: +SKIP
    """

    router: Any = Field(default_factory=from_env(ROUTER_ENV, default=None))
    pool: Any = None
    model: str | None = None
    cost_weight: float | None = None
    budget: Any = None
    max_cost: float | None = None
    user: str | None = None
    api_key: SecretStr | None = None
    temperature: float | None = None
    max_tokens: int | None = None
    stop: list[str] | None = Field(default=None, alias="stop_sequences")
    timeout: float | None = None
    max_retries: int = 2
    streaming: bool = False
    fallback: bool = True
    routing_text: RoutingText | Callable[[list[dict[str, Any]]], str] = "last_user"
    retrieval_top_k: int = 3
    limit_max_tokens: int = 1024
    model_kwargs: dict[str, Any] = Field(default_factory=dict)
    executor_options: dict[str, Any] = Field(default_factory=dict)
    trust_endpoints: bool = False
    strict_tool_calls: bool = False

    model_config = ConfigDict(populate_by_name=True, protected_namespaces=())

    _router: Any = PrivateAttr(default=None)
    _executor: Executor | None = PrivateAttr(default=None)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**renamed_options(kwargs, "RoutedChatModel"))
        # Built after validation so configuration errors surface as this package's own
        # exception types (pydantic would rewrap some of them).
        self._setup()

    # -- construction ------------------------------------------------------------------------
    def _setup(self) -> None:
        router = self.router
        if router is None or (isinstance(router, str) and not router.strip()):
            raise NotFittedError(
                "RoutedChatModel needs a trained router: pass router=<router object, saved "
                f"router directory or Executor>, or set {ROUTER_ENV}"
            )
        clash = sorted(set(self.executor_options) & set(_EXECUTOR_FIELDS.values()))
        if clash:
            raise ValueError(
                f"give {', '.join(clash)} as RoutedChatModel options, not in executor_options"
            )
        fields = {
            "keys": self.api_key.get_secret_value() if self.api_key is not None else None,
            "max_retries": self.max_retries,
            "timeout": self.timeout if self.timeout else 60.0,
            "fallback": self.fallback,
            "limit_max_tokens": self.limit_max_tokens,
        }
        if isinstance(router, Executor):  # only what was set explicitly belongs to it
            fields = {
                arg: fields[name]
                for name, arg in _EXECUTOR_FIELDS.items()
                if name in self.model_fields_set
            }
        given = "routing_text" in self.model_fields_set or not isinstance(router, Executor)
        executor, _ = build_executor(
            router,
            pool=self.pool,
            budget=self.budget,
            cost_weight=self.cost_weight,
            model=self.model,
            max_cost=self.max_cost,
            routing_text=self.routing_text if given else None,
            retrieval_top_k=self.retrieval_top_k,
            options={**fields, **self.executor_options},
            trust_endpoints=self.trust_endpoints,
            owner="RoutedChatModel",
        )
        self._router = executor.router
        self._executor = executor
        if self.profile is None:
            self.profile = self._pool_profile()

    @property
    def routing_input(self) -> Any:
        """Deprecated: the old name of :attr:`routing_text`."""
        warnings.warn(
            "RoutedChatModel.routing_input is deprecated; use routing_text",
            DeprecationWarning,
            stacklevel=2,
        )
        return self.routing_text

    # -- properties --------------------------------------------------------------------------
    # Cached in the instance dict: pydantic's lookup of private attributes is slow, and these
    # are read on every call.
    @functools.cached_property
    def executor(self) -> Executor:
        """The executor that routes and calls the models."""
        if self._executor is None:
            raise NotFittedError("RoutedChatModel is not set up (it has no executor)")
        return self._executor

    @property
    def router_(self) -> Any:
        """The loaded router."""
        return self._router

    @functools.cached_property
    def _call_defaults(self) -> dict[str, Any]:
        """LiteLLM arguments of every call (a call's own arguments override them)."""
        out: dict[str, Any] = {}
        if self.temperature is not None:
            out["temperature"] = self.temperature
        if self.max_tokens is not None:
            out["max_tokens"] = self.max_tokens
        out.update(self.model_kwargs)
        return out

    @functools.cached_property
    def models(self) -> tuple[str, ...]:
        """The pool models this model routes between."""
        return self.executor.models

    @property
    def _llm_type(self) -> str:
        return "llmrouter"

    @functools.cached_property
    def _router_label(self) -> str:
        router = self.router_
        name = getattr(router, "name", "") or type(router).__name__
        return f"llmrouter:{name}"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {
            "router": self._router_label,
            "models": list(self.models),
            "model": self.model,
            "cost_weight": self.cost_weight,
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
        }

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> LangSmithParams:
        model = kwargs.get("model")
        params = LangSmithParams(
            ls_provider="llmrouter",
            ls_model_name=model if isinstance(model, str) else (self.model or self._router_label),
            ls_model_type="chat",
        )
        temperature = kwargs.get("temperature", self.temperature)
        if isinstance(temperature, int | float):
            params["ls_temperature"] = temperature
        max_tokens = kwargs.get("max_tokens", self.max_tokens)
        if isinstance(max_tokens, int):
            params["ls_max_tokens"] = max_tokens
        stop = stop or self.stop
        if stop:
            params["ls_stop"] = stop
        return params

    def _resolve_model_profile(self) -> ModelProfile | None:
        return self._pool_profile() if self._executor is not None else None

    def _pool_profile(self) -> ModelProfile:
        """What every pool model supports (a call may still use a capability that only some
        models have: it is then routed among those)."""
        specs = [self.executor.pool[m] for m in self.models]
        windows = [self.executor.context_window(s.name) for s in specs]
        tools = all(self.executor.supports(s.name, "tools") for s in specs)
        profile = ModelProfile(
            text_inputs=True,
            text_outputs=True,
            image_inputs=all(self.executor.supports(s.name, "vision") for s in specs),
            tool_calling=tools,
            tool_choice=tools,
            tool_call_streaming=tools,
            structured_output=all(self.executor.supports(s.name, "json_schema") for s in specs),
        )
        if windows and all(w is not None for w in windows):
            profile["max_input_tokens"] = min(w for w in windows if w is not None)
        return profile

    def get_num_tokens(self, text: str) -> int:
        """Estimated tokens of ``text`` (4 characters per token; no tokenizer download)."""
        return estimate_tokens(text)

    # -- the user of a call ------------------------------------------------------------------
    def _with_user(self, config: RunnableConfig | None, kwargs: dict[str, Any]) -> dict[str, Any]:
        """``kwargs`` with the user named by the run's config (``configurable`` or
        ``metadata`` ``user_id``; a LangGraph node's config too) unless the call names one."""
        if kwargs.get("user") is not None:
            return kwargs
        merged = ensure_config(config)
        user = user_from_metadata(merged.get("configurable")) or user_from_metadata(
            merged.get("metadata")
        )
        return kwargs if user is None else {**kwargs, "user": user}

    def invoke(
        self,
        input: LanguageModelInput,
        config: RunnableConfig | None = None,
        *,
        stop: list[str] | None = None,
        **kwargs: Any,
    ) -> AIMessage:
        return super().invoke(input, config, stop=stop, **self._with_user(config, kwargs))

    async def ainvoke(
        self,
        input: LanguageModelInput,
        config: RunnableConfig | None = None,
        *,
        stop: list[str] | None = None,
        **kwargs: Any,
    ) -> AIMessage:
        return await super().ainvoke(input, config, stop=stop, **self._with_user(config, kwargs))

    def stream(
        self,
        input: LanguageModelInput,
        config: RunnableConfig | None = None,
        *,
        stop: list[str] | None = None,
        **kwargs: Any,
    ) -> Iterator[AIMessageChunk]:
        yield from super().stream(input, config, stop=stop, **self._with_user(config, kwargs))

    async def astream(
        self,
        input: LanguageModelInput,
        config: RunnableConfig | None = None,
        *,
        stop: list[str] | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[AIMessageChunk]:
        async for chunk in super().astream(
            input, config, stop=stop, **self._with_user(config, kwargs)
        ):
            yield chunk

    # -- routing -----------------------------------------------------------------------------
    def route(
        self,
        input: LanguageModelInput,
        *,
        tools: Sequence[Any] | None = None,
        response_format: Any = None,
        cost_weight: float | None = None,
        max_cost: float | None = None,
        user: str | None = None,
    ) -> Decision:
        """The decision a call with ``input`` would act on, without calling any model.

        Args:
            input: What ``invoke`` takes (a string, messages, a prompt value).
            tools: Tools the call would bind (only models that support tools are ranked).
            response_format: An OpenAI ``response_format`` the call would use.
            cost_weight: lambda for this decision (default: the model's).
            max_cost: Per-call cap in USD (default: the model's).
            user: Whose budget applies.
        """
        messages = self._convert_input(input).to_messages()
        kwargs: dict[str, Any] = {
            "cost_weight": cost_weight,
            "max_cost": max_cost,
            "user": user,
            "response_format": response_format,
        }
        if tools:
            kwargs["tools"] = [convert_to_openai_tool(t) for t in tools]
        call = self._prepare(messages, None, kwargs)
        if call.decision is not None:
            return call.decision
        rest = {k: v for k, v in call.kwargs.items() if k != "model"}
        return self.executor.route(call.messages, **rest)

    def feedback(
        self,
        message: BaseMessage,
        *,
        rating: float | None = None,
        preferred_over: str | None = None,
        user: str | None = None,
    ) -> Any:
        """Give a personalized router the user's feedback on one answer of this model, in
        one call: the query, the model and the user are read from the answer's
        ``response_metadata`` (``user`` overrides it).

        Args:
            message: The ``AIMessage`` this model returned (also from a LangGraph state).
            rating: The user's rating of the answer, in [0, 1].
            preferred_over: Another pool model whose answer the user liked less.
            user: Who gives it (default: the user the call was made for).

        Raises:
            TypeError: The router is not personalized.
            DataError: The answer names no user and none is given, or a bad rating.
        """
        meta = getattr(message, "response_metadata", None) or {}
        return send_feedback(
            self.executor,
            user=user or meta.get("user"),
            query=meta.get("routing_text"),
            model=meta.get("model_name"),
            rating=rating,
            preferred_over=preferred_over,
        )

    def _decide(self, call: _Call) -> Decision | None:
        """Route ``call`` (``None`` when a model is forced)."""
        if call.model is not None:
            return None
        kwargs = {k: v for k, v in call.kwargs.items() if k != "model"}
        return self.executor.route(call.messages, **kwargs)

    def _prepare(
        self, messages: Sequence[BaseMessage], stop: list[str] | None, kwargs: Mapping[str, Any]
    ) -> _Call:
        rest = dict(kwargs)
        for key in ("ls_structured_output_format", "structured_output_format", "stream"):
            rest.pop(key, None)
        own = {key: rest.pop(key, None) for key in _OWN_KWARGS}
        rest = {**self._call_defaults, **rest}
        model = own["model"] or self.model
        stop = stop or self.stop
        if stop:
            rest["stop"] = list(stop)
        msgs = to_openai_messages(messages)
        exec_kwargs: dict[str, Any] = {
            "tools": own["tools"],
            "response_format": own["response_format"],
            "model": model,
            "max_cost": own["max_cost"] if own["max_cost"] is not None else self.max_cost,
            "user": own["user"] if own["user"] is not None else self.user,
            "cost_weight": (
                own["cost_weight"] if own["cost_weight"] is not None else self.cost_weight
            ),
            **rest,
        }
        call = _Call(msgs, exec_kwargs, model, own["decision"])
        if msgs:
            call.routing_text = _routing_text(msgs, self.executor.routing_text)
        required = self._required(msgs, own["response_format"])
        if required is not None and model is None:
            allowed, why = required
            decision = call.decision or self._decide(call)
            assert decision is not None
            call.decision = _restrict(decision, allowed, why)
        return call

    def _required(
        self, messages: list[dict[str, Any]], response_format: Any
    ) -> tuple[frozenset[str], str] | None:
        """Models that can take this request, for the capability the executor does not check
        itself (JSON mode; it checks tools, JSON schemas and images); ``None`` if every model
        can."""
        json_mode = (
            isinstance(response_format, Mapping) and response_format.get("type") == "json_object"
        )
        if not json_mode:
            return None
        allowed = {m for m in self.models if self.executor.supports(m, "json_schema")}
        return frozenset(allowed), "support JSON output"

    # -- tracing -----------------------------------------------------------------------------
    def _child_name(self, call: _Call) -> tuple[str, Decision | None]:
        if call.model is not None:
            return call.model, None
        decision = call.decision or self._decide(call)
        assert decision is not None
        return decision.model, decision

    def _child_meta(self, name: str, decision: Decision | None) -> tuple[dict[str, Any], Any]:
        spec = self.executor.pool[name]
        provider = spec.litellm_model.partition("/")[0] if "/" in spec.litellm_model else ""
        metadata = {
            "ls_model_name": name,
            "ls_provider": provider or "litellm",
            "litellm_model": spec.litellm_model,
        }
        inputs = {"decision": decision.to_dict() if decision is not None else {"model": name}}
        return metadata, inputs

    def _start_child(
        self, run_manager: CallbackManagerForLLMRun | None, call: _Call
    ) -> CallbackManagerForChainRun | None:
        """Open a child run named after the routed model (a chain run: it carries no tokens,
        so token streams and usage callbacks do not see the answer twice)."""
        if run_manager is None or not run_manager.inheritable_handlers:
            return None
        name, decision = self._child_name(call)
        call.decision = decision
        metadata, inputs = self._child_meta(name, decision)
        manager = CallbackManager(handlers=[], parent_run_id=run_manager.run_id)
        _inherit(manager, run_manager, metadata)
        return manager.on_chain_start(None, inputs, name=name)

    async def _astart_child(
        self, run_manager: AsyncCallbackManagerForLLMRun | None, call: _Call
    ) -> AsyncCallbackManagerForChainRun | None:
        if run_manager is None or not run_manager.inheritable_handlers:
            return None
        name, decision = self._child_name(call)
        call.decision = decision
        metadata, inputs = self._child_meta(name, decision)
        manager = AsyncCallbackManager(handlers=[], parent_run_id=run_manager.run_id)
        _inherit(manager, run_manager, metadata)
        return await manager.on_chain_start(None, inputs, name=name)

    # -- results -----------------------------------------------------------------------------
    def _check_tools(self, call: _Call | None, result: ExecutionResult) -> list[str]:
        """Warnings about the answer: a call with tools answered without the tool call it
        needed (an error with ``strict_tool_calls``)."""
        if call is None:
            return []
        message = check_tool_call(
            result,
            tools=call.kwargs.get("tools"),
            tool_choice=call.kwargs.get("tool_choice"),
            strict=self.strict_tool_calls,
            stacklevel=6,
        )
        return [] if message is None else [message]

    @staticmethod
    def _metadata(
        result: ExecutionResult, call: _Call | None = None, warnings: list[str] | None = None
    ) -> dict[str, Any]:
        return {
            "user": None if call is None else call.kwargs.get("user"),
            "routing_text": None if call is None else call.routing_text,
            "warnings": list(warnings or []),
            "model_name": result.model,
            "litellm_model": result.litellm_model,
            "finish_reason": finish_reason(result.response),
            "cost": result.known_cost,
            "cost_source": result.cost_source,
            "fell_back": result.fell_back,
            "decision": result.decision.to_dict() if result.decision is not None else None,
            "attempts": [a.to_dict() for a in result.attempts],
        }

    def _message(self, result: ExecutionResult, call: _Call | None = None) -> AIMessage:
        tool_calls, invalid = response_tool_calls(result.tool_calls)
        return AIMessage(
            content=result.answer,
            tool_calls=tool_calls,
            invalid_tool_calls=invalid,
            usage_metadata=usage_metadata(result.input_tokens, result.output_tokens),
            response_metadata=self._metadata(result, call, self._check_tools(call, result)),
        )

    def _last_chunk(
        self, result: ExecutionResult, run_id: str | None, call: _Call | None = None
    ) -> ChatGenerationChunk:
        chunks = getattr(result.response, "chunks", ())
        return ChatGenerationChunk(
            message=AIMessageChunk(
                content="",
                id=run_id,
                tool_call_chunks=stream_tool_call_chunks(chunks),
                usage_metadata=usage_metadata(result.input_tokens, result.output_tokens),
                response_metadata=self._metadata(result, call, self._check_tools(call, result)),
                chunk_position="last",
            )
        )

    @staticmethod
    def _child_outputs(result: ExecutionResult) -> dict[str, Any]:
        return {
            "model": result.model,
            "litellm_model": result.litellm_model,
            "cost": result.known_cost,
            "input_tokens": result.input_tokens,
            "output_tokens": result.output_tokens,
            "fell_back": result.fell_back,
            "attempts": [a.to_dict() for a in result.attempts],
        }

    # -- LangChain hooks ---------------------------------------------------------------------
    def _should_stream(
        self,
        *,
        async_api: bool,
        run_manager: CallbackManagerForLLMRun | AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> bool:
        # Inside invoke, streaming (e.g. for LangGraph's "messages" mode) happens in
        # _generate, which holds the run manager, so the routed model's child run is traced.
        if run_manager is not None:
            return False
        return super()._should_stream(async_api=async_api, run_manager=run_manager, **kwargs)

    def _wants_stream(
        self,
        async_api: bool,
        run_manager: CallbackManagerForLLMRun | AsyncCallbackManagerForLLMRun | None,
        kwargs: Mapping[str, Any],
    ) -> bool:
        return run_manager is not None and BaseChatModel._should_stream(
            self, async_api=async_api, run_manager=run_manager, **kwargs
        )

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        if self._wants_stream(False, run_manager, kwargs):
            return generate_from_stream(
                self._iter_chunks(messages, stop, run_manager, kwargs, emit_tokens=True)
            )
        call = self._prepare(messages, stop, kwargs)
        child = self._start_child(run_manager, call)
        try:
            result = self.executor.complete(call.messages, decision=call.decision, **call.kwargs)
        except BaseException as exc:
            if child is not None:
                child.on_chain_error(exc)
            raise
        if child is not None:
            child.on_chain_end(self._child_outputs(result))
        return ChatResult(generations=[ChatGeneration(message=self._message(result, call))])

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        if self._wants_stream(True, run_manager, kwargs):
            chunks = [
                chunk
                async for chunk in self._aiter_chunks(
                    messages, stop, run_manager, kwargs, emit_tokens=True
                )
            ]
            return generate_from_stream(iter(chunks))
        call = self._prepare(messages, stop, kwargs)
        child = await self._astart_child(run_manager, call)
        try:
            result = await self.executor.acomplete(
                call.messages, decision=call.decision, **call.kwargs
            )
        except BaseException as exc:
            if child is not None:
                await child.on_chain_error(exc)
            raise
        if child is not None:
            await child.on_chain_end(self._child_outputs(result))
        return ChatResult(generations=[ChatGeneration(message=self._message(result, call))])

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        # LangChain reports these chunks to the callbacks itself.
        yield from self._iter_chunks(messages, stop, run_manager, kwargs, emit_tokens=False)

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        async for chunk in self._aiter_chunks(
            messages, stop, run_manager, kwargs, emit_tokens=False
        ):
            yield chunk

    def _iter_chunks(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None,
        run_manager: CallbackManagerForLLMRun | None,
        kwargs: Mapping[str, Any],
        *,
        emit_tokens: bool,
    ) -> Iterator[ChatGenerationChunk]:
        call = self._prepare(messages, stop, kwargs)
        child = self._start_child(run_manager, call)
        emit = run_manager if emit_tokens else None
        run_id = f"{LC_ID_PREFIX}-{emit.run_id}" if emit is not None else None
        try:
            for item in self.executor.stream(call.messages, decision=call.decision, **call.kwargs):
                if isinstance(item, StreamChunk):
                    chunk = ChatGenerationChunk(
                        message=AIMessageChunk(content=item.text, id=run_id)
                    )
                    if emit is not None:
                        emit.on_llm_new_token(item.text, chunk=chunk)
                    yield chunk
                    continue
                last = self._last_chunk(item, run_id, call)
                if emit is not None:
                    emit.on_llm_new_token("", chunk=last)
                if child is not None:
                    child.on_chain_end(self._child_outputs(item))
                    child = None
                yield last
        except BaseException as exc:
            if child is not None:
                child.on_chain_error(exc)
            raise

    async def _aiter_chunks(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None,
        run_manager: AsyncCallbackManagerForLLMRun | None,
        kwargs: Mapping[str, Any],
        *,
        emit_tokens: bool,
    ) -> AsyncIterator[ChatGenerationChunk]:
        call = self._prepare(messages, stop, kwargs)
        child = await self._astart_child(run_manager, call)
        emit = run_manager if emit_tokens else None
        run_id = f"{LC_ID_PREFIX}-{emit.run_id}" if emit is not None else None
        try:
            async for item in self.executor.astream(
                call.messages, decision=call.decision, **call.kwargs
            ):
                if isinstance(item, StreamChunk):
                    chunk = ChatGenerationChunk(
                        message=AIMessageChunk(content=item.text, id=run_id)
                    )
                    if emit is not None:
                        await emit.on_llm_new_token(item.text, chunk=chunk)
                    yield chunk
                    continue
                last = self._last_chunk(item, run_id, call)
                if emit is not None:
                    await emit.on_llm_new_token("", chunk=last)
                if child is not None:
                    await child.on_chain_end(self._child_outputs(item))
                    child = None
                yield last
        except BaseException as exc:
            if child is not None:
                await child.on_chain_error(exc)
            raise

    # -- tools and structured output -------------------------------------------------------
    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable[..., Any] | Any],
        *,
        tool_choice: str | bool | dict[str, Any] | None = None,
        strict: bool | None = None,
        parallel_tool_calls: bool | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        """Bind tools: calls are then routed only among pool models that support tools.

        Args:
            tools: LangChain tools, functions, pydantic classes or OpenAI tool dicts.
            tool_choice: ``"auto"``, ``"none"``, ``"any"``/``"required"``/``True`` (must call
                a tool), or a tool name (must call that tool).
            strict: Ask for strict schema adherence in each tool definition.
            parallel_tool_calls: Allow several tool calls in one answer.
            **kwargs: Further call arguments.
        """
        formatted = [convert_to_openai_tool(t, strict=strict) for t in tools]
        choice = _tool_choice(tool_choice, formatted)
        if choice is not None:
            kwargs["tool_choice"] = choice
        if parallel_tool_calls is not None:
            kwargs["parallel_tool_calls"] = parallel_tool_calls
        return super().bind(tools=formatted, **kwargs)

    def with_structured_output(
        self,
        schema: dict[str, Any] | type,
        *,
        method: Literal["function_calling", "json_schema", "json_mode"] = "function_calling",
        include_raw: bool = False,
        strict: bool | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, dict[str, Any] | Any]:
        """Answers parsed into ``schema`` (a pydantic class, TypedDict or JSON schema).

        Args:
            schema: The output schema.
            method: ``"function_calling"`` (a forced tool call; routed among models that
                support tools), ``"json_schema"`` (a JSON-schema response format; routed among
                models that support it) or ``"json_mode"`` (JSON output; the schema is only
                used to parse).
            include_raw: Return ``{"raw", "parsed", "parsing_error"}`` instead of raising on
                a parsing error.
            strict: Ask for strict schema adherence.
        """
        if kwargs:
            raise ValueError(f"unsupported arguments: {sorted(kwargs)}")
        is_pydantic = isinstance(schema, type) and is_basemodel_subclass(schema)
        trace = {"kwargs": {"method": method, "strict": strict}, "schema": schema}
        llm: Runnable[LanguageModelInput, AIMessage]
        parser: Runnable[Any, Any]
        if method == "function_calling":
            tool = convert_to_openai_tool(schema, strict=strict)
            name = tool["function"]["name"]
            llm = self.bind_tools(
                [schema], tool_choice=name, strict=strict, ls_structured_output_format=trace
            )
            parser = (
                PydanticToolsParser(tools=[schema], first_tool_only=True)  # type: ignore[list-item]
                if is_pydantic
                else JsonOutputKeyToolsParser(key_name=name, first_tool_only=True)
            )
        elif method == "json_schema":
            json_schema = convert_to_json_schema(schema)
            response_format: dict[str, Any] = {
                "type": "json_schema",
                "json_schema": {
                    "name": json_schema.get("title", "output"),
                    "description": json_schema.get("description", ""),
                    "schema": json_schema,
                },
            }
            if strict is not None:
                response_format["json_schema"]["strict"] = strict
            llm = self.bind(response_format=response_format, ls_structured_output_format=trace)
            parser = (
                PydanticOutputParser(pydantic_object=schema)  # type: ignore[arg-type]
                if is_pydantic
                else JsonOutputParser()
            )
        elif method == "json_mode":
            llm = self.bind(
                response_format={"type": "json_object"}, ls_structured_output_format=trace
            )
            parser = (
                PydanticOutputParser(pydantic_object=schema)  # type: ignore[arg-type]
                if is_pydantic
                else JsonOutputParser()
            )
        else:
            raise ValueError(
                f"unknown method {method!r}; use 'function_calling', 'json_schema' or 'json_mode'"
            )
        if not include_raw:
            return llm | parser
        parsed = RunnablePassthrough.assign(
            parsed=itemgetter("raw") | parser, parsing_error=lambda _: None
        )
        none = RunnablePassthrough.assign(parsed=lambda _: None)
        return RunnableMap(raw=llm) | parsed.with_fallbacks([none], exception_key="parsing_error")


# LangChain inspects the signature of _generate on every call to see whether it takes a run
# manager; a precomputed signature makes that lookup free.
for _hook in (RoutedChatModel._generate, RoutedChatModel._agenerate):
    _hook.__signature__ = inspect.signature(_hook)  # type: ignore[union-attr]


# -- helpers --------------------------------------------------------------------------------


def _inherit(
    manager: BaseCallbackManager,
    run_manager: CallbackManagerForLLMRun | AsyncCallbackManagerForLLMRun,
    metadata: dict[str, Any],
) -> None:
    """Give a child run the handlers, tags and metadata its parent passes down."""
    manager.set_handlers(run_manager.inheritable_handlers)
    manager.add_tags(run_manager.inheritable_tags)
    manager.add_metadata(run_manager.inheritable_metadata)
    manager.add_tags(["llmrouter"], inherit=False)
    manager.add_metadata(metadata, inherit=False)


def _tool_choice(choice: Any, tools: Sequence[Mapping[str, Any]]) -> Any:
    if choice is None or choice is False:
        return None
    names = [t["function"]["name"] for t in tools if "function" in t]
    if choice is True:
        if len(names) == 1:
            return {"type": "function", "function": {"name": names[0]}}
        return "required"
    if isinstance(choice, str):
        if choice in ("auto", "none", "required"):
            return choice
        if choice == "any":
            return "required"
        if choice not in names:
            raise ValueError(f"tool_choice {choice!r} is not a bound tool; tools: {names}")
        return {"type": "function", "function": {"name": choice}}
    if isinstance(choice, Mapping):
        return dict(choice)
    raise ValueError(f"unsupported tool_choice {choice!r}")


def _restrict(decision: Decision, allowed: Collection[str], why: str) -> Decision:
    """``decision`` restricted to ``allowed`` models (the ranking is by utility, so its first
    allowed model is the best allowed one)."""
    ranked = tuple(m for m in decision.ranked if m in allowed)
    if not ranked:
        raise NoEligibleModelError({m: f"does not {why}" for m in decision.ranked})
    if ranked == decision.ranked:
        return decision
    return replace(
        decision,
        model=ranked[0],
        ranked=ranked,
        reason=f"{decision.reason}; among the models that {why}",
    )
