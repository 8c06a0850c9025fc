"""What the framework adapters share: one option vocabulary and one way to build an executor.

The LangChain/LangGraph (``RoutedChatModel``), LlamaIndex (``RoutedLLM``) and DSPy
(``RoutedLM``) adapters take the same options for the same concepts:

| option | meaning |
|---|---|
| ``router`` | a fitted router, the directory of a saved one, or an ``Executor`` |
| ``pool`` | the pool the models are called through (default: the router's) |
| ``budget`` | a spend limit shared by every call (USD, ``Budget``, ``BudgetManager``) |
| ``cost_weight`` | lambda in utility = quality - lambda x cost (USD); ``None``: the default |
| ``model`` | call this pool model every time instead of routing (a pin) |
| ``max_cost`` | per-call cap in USD |
| ``routing_text`` | what the router reads (see :func:`routing_text_function`) |
| ``temperature``, ``max_tokens`` | sent with every call |
| ``executor_options`` | further ``Executor`` arguments |
| ``trust_endpoints`` | use the endpoints saved with a router directory (``load_router``) |
| ``user`` | who asks (a personalized router routes with their profile; budgets per user) |

:func:`build_executor` turns ``router`` (with ``pool``, ``budget``, ``routing_text``,
``executor_options`` and ``trust_endpoints``) into an executor, with the checks every adapter
needs; :func:`renamed_options` keeps the options' old names working for one release.
:func:`user_from_metadata` reads the user from a framework's run metadata, and
:func:`send_feedback` is the one call that gives a personalized router a user's feedback on
an answer.
"""

from __future__ import annotations

import dataclasses
import os
import warnings
from collections.abc import Callable, Mapping, MutableMapping, Sequence
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

from llmrouter_core.decision import Decision
from llmrouter_core.errors import MissingToolCallError, NotFittedError, UnknownModelError
from llmrouter_core.policy.base import check_cost_weight

if TYPE_CHECKING:
    from llmrouter_core.execution import Executor
    from llmrouter_core.policy import FanOutPolicy

__all__ = [
    "RENAMED_OPTIONS",
    "ROUTING_TEXTS",
    "TEXT_ONLY_PROVIDERS",
    "BuiltExecutor",
    "ToolCallWarning",
    "build_executor",
    "check_tool_call",
    "fan_out_decision",
    "renamed_options",
    "retrieval_routing_text",
    "routing_text_function",
    "send_feedback",
    "user_from_metadata",
]

#: Metadata keys that name the user a call is for (LangChain copies ``configurable`` values
#: into the run's metadata), first found wins.
USER_KEYS = ("user_id", "user")

#: Old option names of the adapters -> their names now. The old ones keep working, with a
#: ``DeprecationWarning``, until the next release.
RENAMED_OPTIONS: Mapping[str, str] = {
    "fixed_model": "model",  # LlamaIndex's RoutedLLM, DSPy's RoutedLM
    "routing_input": "routing_text",  # LangChain's RoutedChatModel
}

#: The named forms of ``routing_text`` (a callable ``messages -> str`` is the other form).
ROUTING_TEXTS = ("last_user", "conversation", "retrieval")

#: What the executor takes as its ``routing_text``.
ExecutorRoutingText = Literal["last_user", "conversation"] | Callable[[list[dict[str, Any]]], str]


class BuiltExecutor(NamedTuple):
    """What :func:`build_executor` returns."""

    executor: Executor
    #: The router directory it loaded (``None`` when given a router object or an executor).
    path: str | None


def renamed_options(
    options: MutableMapping[str, Any], owner: str, *, stacklevel: int = 3
) -> MutableMapping[str, Any]:
    """``options`` with each old option name (:data:`RENAMED_OPTIONS`) replaced by its new
    one, warning (``DeprecationWarning``) for each old name used.

    Args:
        options: Keyword arguments as given (changed in place and returned).
        owner: What was called, for the messages (e.g. ``"RoutedLLM"``).
        stacklevel: Of the warning; the default points at the caller of a function that
            calls this one directly.

    Raises:
        TypeError: Both an old name and its new one are given.

    Example:
        >>> import warnings
        >>> with warnings.catch_warnings(record=True) as caught:
        ...     warnings.simplefilter("always")
        ...     renamed_options({"fixed_model": "gpt-4o"}, "RoutedLLM")
        {'model': 'gpt-4o'}
        >>> str(caught[0].message)
        'RoutedLLM(fixed_model=...) is deprecated; use model=... instead'
    """
    for old, new in RENAMED_OPTIONS.items():
        if old not in options:
            continue
        if new in options:
            raise TypeError(f"{owner}: give {new}= only ({old}= is its deprecated old name)")
        warnings.warn(
            f"{owner}({old}=...) is deprecated; use {new}=... instead",
            DeprecationWarning,
            stacklevel=stacklevel,
        )
        options[new] = options.pop(old)
    return options


def retrieval_routing_text(messages: Sequence[Mapping[str, Any]], top_k: int) -> str:
    """The current query and the ``top_k`` earlier turns most similar to it (cosine of
    hashed TF-IDF over the earlier user messages), as the router reads them.

    Example:
        >>> msgs = [{"role": "user", "content": "Tell me about Paris"},
        ...         {"role": "assistant", "content": "Paris is the capital of France."},
        ...         {"role": "user", "content": "How big is it?"}]
        >>> [line for line in retrieval_routing_text(msgs, 1).splitlines() if line]
        ['Tell me about Paris', 'Paris is the capital of France.', 'How big is it?']
    """
    from llmrouter_core.execution import Conversation, content_text

    def text(message: Mapping[str, Any]) -> str:
        return content_text(message.get("content"))

    messages = list(messages)
    users = [i for i, m in enumerate(messages) if m.get("role") == "user"]
    if not users:
        return Conversation.routing_text([dict(m) for m in messages[-1:]])
    last = users[-1]
    conversation = Conversation("retrieval", top_k=top_k)
    for k, i in enumerate(users[:-1]):
        end = users[k + 1]
        answer = next((text(m) for m in messages[i + 1 : end] if m.get("role") == "assistant"), "")
        conversation.add(text(messages[i]), answer)
    return Conversation.routing_text(conversation.messages_for(text(messages[last])))


def routing_text_function(routing_text: Any, retrieval_top_k: int = 3) -> ExecutorRoutingText:
    """``routing_text`` as the executor takes it: ``"last_user"``, ``"conversation"`` or a
    callable (``"retrieval"`` becomes one that reads the ``retrieval_top_k`` earlier user
    turns most similar to the current one).

    Raises:
        ValueError: Not one of :data:`ROUTING_TEXTS` nor a callable, or ``retrieval_top_k``
            is below 1.
    """
    if callable(routing_text):
        return routing_text  # type: ignore[no-any-return]
    if routing_text not in ROUTING_TEXTS:
        raise ValueError(
            "routing_text must be 'last_user', 'conversation', 'retrieval' or a callable "
            f"messages -> str, got {routing_text!r}"
        )
    if not isinstance(retrieval_top_k, int) or retrieval_top_k < 1:
        raise ValueError(f"retrieval_top_k must be an integer >= 1, got {retrieval_top_k!r}")
    if routing_text == "last_user":
        return "last_user"
    if routing_text == "conversation":
        return "conversation"
    top_k = retrieval_top_k

    def retrieval(messages: list[dict[str, Any]]) -> str:
        return retrieval_routing_text(messages, top_k)

    retrieval.__qualname__ = f"retrieval_routing_text[top_k={top_k}]"
    return retrieval


def build_executor(
    router: Any,
    *,
    pool: Any = None,
    budget: Any = None,
    cost_weight: float | None = None,
    model: str | None = None,
    max_cost: float | None = None,
    routing_text: Any = None,
    retrieval_top_k: int = 3,
    options: Mapping[str, Any] | None = None,
    trust_endpoints: bool = False,
    owner: str = "the routed model",
) -> BuiltExecutor:
    """The executor behind an adapter, from the adapter's options.

    Args:
        router: A fitted router, the directory of a saved one (loaded with
            ``trust_endpoints``), or an :class:`~llmrouter_core.execution.Executor` (used as
            it is: ``pool``, ``budget``, ``routing_text`` and ``options`` then belong to it and
            must not be given).
        pool: The pool the models are called through: a ``Pool`` or a pool file (default:
            the router's).
        budget: A spend limit shared by every call.
        cost_weight: Checked only: the adapters send it with each call (so it applies to an
            executor given as ``router`` too, and executors differing only in it are one).
        model: A pinned pool model: checked to be in the pool.
        max_cost: A per-call cap in USD: checked.
        routing_text: What the router reads (see :func:`routing_text_function`; ``None``:
            ``"last_user"``, or the ``routing_text`` in ``options``).
        retrieval_top_k: Earlier turns the ``"retrieval"`` routing text reads.
        options: Further :class:`~llmrouter_core.execution.Executor` arguments (never
            ``cost_weight``: that is an option of its own).
        trust_endpoints: Use the endpoints, key variables and headers saved with a router
            directory.
        owner: The adapter's name, for the messages.

    Returns:
        ``(executor, path)``: ``path`` is the router directory loaded, else ``None``.

    Raises:
        NotFittedError: No router was given.
        UnknownModelError: ``model`` is not a pool model.
        ValueError: A bad ``cost_weight``, ``max_cost`` or ``routing_text``, or options that
            belong to the executor given.
    """
    from llmrouter_core.execution import Executor
    from llmrouter_core.pool import Pool

    opts = dict(options or {})
    if cost_weight is not None:
        check_cost_weight(cost_weight)
    if max_cost is not None and not (isinstance(max_cost, int | float) and max_cost >= 0):
        raise ValueError(f"max_cost must be a number of USD >= 0, got {max_cost!r}")
    if "cost_weight" in opts:
        raise ValueError(f"give cost_weight as {owner}(cost_weight=...), not in executor_options")
    if "routing_text" in opts:
        if routing_text is not None:
            raise ValueError(f"give routing_text once: as {owner}(routing_text=...)")
        routing_text = opts.pop("routing_text")
    if router is None or (isinstance(router, str) and not router.strip()):
        raise NotFittedError(
            f"{owner} needs a trained router: pass a fitted router, the directory of a saved "
            "one, or an Executor"
        )
    path: str | None = None
    if isinstance(router, Executor):
        given = [
            name
            for name, value in (("pool", pool), ("budget", budget), ("routing_text", routing_text))
            if value is not None
        ] + sorted(opts)
        if given:
            raise ValueError(
                f"{', '.join(given)} belong to the Executor given as router; set them on it, "
                "or pass the router itself"
            )
        executor = router
    else:
        if isinstance(router, str | os.PathLike):
            from llmrouter_core.persistence import load_router

            path = os.fspath(router)
            router = load_router(path, trust_endpoints=trust_endpoints)
        if isinstance(pool, str | os.PathLike):
            pool = Pool.from_file(os.fspath(pool))
        text = routing_text_function(
            "last_user" if routing_text is None else routing_text, retrieval_top_k
        )
        executor = Executor(router, pool=pool, budget=budget, routing_text=text, **opts)
    if model is not None and model not in executor.models:
        raise UnknownModelError(
            f"model {model!r} is not in the pool; it has: {', '.join(executor.models)}"
        )
    return BuiltExecutor(executor, path)


#: This package's in-process providers whose models answer with text only: declared
#: tool-capable in a pool, they still never call a tool.
TEXT_ONLY_PROVIDERS = ("replay", "local")


class ToolCallWarning(UserWarning):
    """A call with tools was answered without a tool call where one was needed."""


def check_tool_call(
    result: Any,
    *,
    tools: Sequence[Any] | None,
    tool_choice: Any = None,
    strict: bool = False,
    stacklevel: int = 3,
) -> str | None:
    """Check that a call with ``tools`` got the tool call it needed.

    A tool call is needed when ``tool_choice`` required one (``"required"``, ``"any"`` or a
    named tool, as ``with_structured_output`` does); an answer of a model served by one of
    :data:`TEXT_ONLY_PROVIDERS` (``replay/``, ``local/``), which can never call a tool, is
    flagged too, as the tools were silently ignored.

    Args:
        result: The :class:`~llmrouter_core.execution.ExecutionResult`.
        tools: The tools sent (nothing is checked without tools).
        tool_choice: The tool choice sent (OpenAI's form).
        strict: Raise instead of warning.
        stacklevel: Of the warning.

    Returns:
        ``None`` if all is well, else the message (also issued as a :class:`ToolCallWarning`).

    Raises:
        MissingToolCallError: With ``strict``, when a needed tool call is missing.
    """
    if not tools or result.tool_calls:
        return None
    required = tool_choice in ("required", "any") or isinstance(tool_choice, Mapping)
    provider = str(result.litellm_model).partition("/")[0]
    if provider not in TEXT_ONLY_PROVIDERS and not required:
        return None
    why = (
        f"{provider}/ models answer with text only"
        if provider in TEXT_ONLY_PROVIDERS
        else "the call required one"
    )
    message = (
        f"{result.model} answered without calling a tool ({why}); its text answer is "
        "returned as it is"
    )
    if strict:
        raise MissingToolCallError(message)
    warnings.warn(message, ToolCallWarning, stacklevel=stacklevel)
    return message


def fan_out_decision(decision: Decision, policy: FanOutPolicy) -> Decision:
    """``decision`` with the :class:`~llmrouter_core.decision.FanOutPlan` that ``policy``
    makes of its ranking (the ranking the executor or adapter already restricted to the
    models that can take the request), for frameworks that run the plan's calls themselves
    (LangGraph's parallel nodes).

    Example:
        >>> from llmrouter_core.policy import FanOutPolicy
        >>> d = Decision(model="b", ranked=("b", "c", "a"), quality={}, cost={},
        ...              cost_weight=0.0, router="demo")
        >>> fan_out_decision(d, FanOutPolicy(k=2)).plan.models
        ('b', 'c')
    """
    import numpy as np

    from llmrouter_core.policy import RouteContext

    ranked = _Ranked(decision)
    planner = dataclasses.replace(policy, inner=ranked)
    context = RouteContext(models=tuple(decision.ranked), router=decision.router)
    none = np.empty((1, 0))
    return planner.decide(none, none, context)[0]


class _Ranked:
    """A policy that returns a decision already made (so a plan policy ranks as it did)."""

    def __init__(self, decision: Decision) -> None:
        self.decision = decision

    def decide(self, quality: Any, cost: Any, context: Any) -> list[Decision]:
        return [self.decision]


def user_from_metadata(metadata: Mapping[str, Any] | None) -> str | None:
    """The user named in run metadata (``user_id`` or ``user``), or ``None``."""
    if not metadata:
        return None
    for key in USER_KEYS:
        value = metadata.get(key)
        if isinstance(value, str) and value.strip():
            return value
    return None


def send_feedback(
    router: Any,
    *,
    user: str | None,
    query: str | None,
    model: str | None,
    rating: float | None = None,
    preferred_over: str | None = None,
) -> Any:
    """Give ``router`` (a router or an executor) one user's feedback on ``model``'s answer
    to ``query``; returns the stored event.

    Raises:
        TypeError: The router does not take per-user feedback (it is not personalized).
        DataError: No user, no query or no model is known for the answer, or the rating is
            not in [0, 1].
    """
    from llmrouter_core.errors import DataError

    target = getattr(router, "router", router)  # an Executor holds its router
    if not getattr(target, "supports_feedback", False):
        raise TypeError(
            f"the {getattr(target, 'name', type(target).__name__)} router does not take "
            "per-user feedback; use a personalized router (get_router('personalized', ...))"
        )
    for what, value in (("user", user), ("query", query), ("model", model)):
        if not isinstance(value, str) or not value.strip():
            raise DataError(
                f"feedback needs the {what} of the answer; pass {what}=... (it is known only "
                "for answers of calls that named it)"
            )
    return target.feedback(user, query, model, rating=rating, preferred_over=preferred_over)
