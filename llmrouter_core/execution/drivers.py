"""Drivers of the attempt loop: they perform its actions and feed the outcomes back.

Each driver only does I/O (call LiteLLM, sleep, wait for budget room) and reports what happened
to the :class:`~llmrouter_core.execution.attempts.AttemptLoop`, which makes every decision;
an exception that is not an ``Exception`` (``KeyboardInterrupt``, ``asyncio.CancelledError``,
``GeneratorExit``) is reported with ``aborted`` and propagates unchanged.

* :func:`run_complete`: ``litellm.completion``, ``time.sleep``, blocking budget waits;
* :func:`run_acomplete`: ``litellm.acompletion``, ``asyncio.sleep``, async budget waits;
* :func:`run_stream` / :func:`run_astream`: the same, streaming :class:`StreamChunk` items
  and ending with the :class:`ExecutionResult`.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

from llmrouter_core.execution.attempts import Action, Admit, AttemptLoop, Call, Finish, Sleep
from llmrouter_core.execution.budget import Reservation
from llmrouter_core.execution.results import ExecutionResult, StreamChunk

__all__ = ["StreamedResponse", "run_acomplete", "run_astream", "run_complete", "run_stream"]


def run_complete(loop: AttemptLoop, completion: Callable[..., Any]) -> ExecutionResult:
    """Execute ``loop`` with a blocking ``completion`` (``litellm.completion``)."""
    action: Action = loop.start()
    try:
        while True:
            if isinstance(action, Call):
                try:
                    response = completion(**action.kwargs)
                except Exception as exc:  # every failure is the loop's to judge
                    action = loop.failed(exc)
                else:
                    action = loop.answered(response)
            elif isinstance(action, Admit):
                action = loop.admitted(_admit(action))
            elif isinstance(action, Sleep):
                time.sleep(action.seconds)
                action = loop.slept()
            else:
                return _outcome(action)
    except BaseException:
        loop.aborted(None)
        raise


async def run_acomplete(
    loop: AttemptLoop, acompletion: Callable[..., Awaitable[Any]]
) -> ExecutionResult:
    """Execute ``loop`` with ``acompletion`` (``litellm.acompletion``)."""
    action: Action = loop.start(defer_settlements=True)
    try:
        while True:
            await _asettle(loop)
            if isinstance(action, Call):
                try:
                    response = await acompletion(**action.kwargs)
                except Exception as exc:
                    action = loop.failed(exc)
                else:
                    action = loop.answered(response)
            elif isinstance(action, Admit):
                action = loop.admitted(await _aadmit(action))
            elif isinstance(action, Sleep):
                await asyncio.sleep(action.seconds)
                action = loop.slept()
            else:
                return _outcome(action)
    except BaseException:
        loop.aborted(None)
        raise


def run_stream(
    loop: AttemptLoop, completion: Callable[..., Any]
) -> Iterator[StreamChunk | ExecutionResult]:
    """Execute ``loop`` streaming with a blocking ``completion``."""
    action: Action = loop.start()
    delivered: list[str] = []
    try:
        while True:
            if isinstance(action, Call):
                chunks: list[Any] = []
                delivered = []
                try:
                    for chunk in completion(**action.kwargs):
                        chunks.append(chunk)
                        text = delta_text(chunk)
                        if text:
                            delivered.append(text)
                            yield StreamChunk(text, action.model)
                except Exception as exc:
                    action = loop.failed(exc, "".join(delivered))
                else:
                    action = loop.answered(stream_response(chunks), "".join(delivered))
            elif isinstance(action, Admit):
                action = loop.admitted(_admit(action))
            elif isinstance(action, Sleep):
                time.sleep(action.seconds)
                action = loop.slept()
            else:
                yield _outcome(action)
                return
    except BaseException:  # GeneratorExit too: the caller stopped reading
        loop.aborted("".join(delivered))
        raise


async def run_astream(
    loop: AttemptLoop, acompletion: Callable[..., Awaitable[Any]]
) -> AsyncGenerator[StreamChunk | ExecutionResult, None]:
    """Execute ``loop`` streaming with ``acompletion``."""
    action: Action = loop.start(defer_settlements=True)
    delivered: list[str] = []
    try:
        while True:
            await _asettle(loop)
            if isinstance(action, Call):
                chunks: list[Any] = []
                delivered = []
                try:
                    async for chunk in await acompletion(**action.kwargs):
                        chunks.append(chunk)
                        text = delta_text(chunk)
                        if text:
                            delivered.append(text)
                            yield StreamChunk(text, action.model)
                except Exception as exc:
                    action = loop.failed(exc, "".join(delivered))
                else:
                    action = loop.answered(stream_response(chunks), "".join(delivered))
            elif isinstance(action, Admit):
                action = loop.admitted(await _aadmit(action))
            elif isinstance(action, Sleep):
                await asyncio.sleep(action.seconds)
                action = loop.slept()
            else:
                yield _outcome(action)
                return
    except BaseException:  # GeneratorExit and CancelledError too
        loop.aborted("".join(delivered))
        raise


def _outcome(action: Finish) -> ExecutionResult:
    if action.error is not None:
        raise action.error
    assert action.result is not None
    return action.result


def _admit(action: Admit) -> Reservation | None:
    budget: Any = action.budget
    # A budget that can wait says so with an async twin (see BudgetLike).
    if action.timeout > 0 and hasattr(budget, "atry_reserve"):
        return budget.try_reserve(action.amount, timeout=action.timeout)  # type: ignore[no-any-return]
    return action.budget.try_reserve(action.amount)


async def _asettle(loop: AttemptLoop) -> None:
    """Settle (or release) the holds ``loop`` listed, with the budget's async twins
    (``asettle`` / ``arelease``, a budget kept in a shared store) when it has them."""
    budget: Any = loop.plan.budget
    pending = loop.unsettled
    while pending:
        reservation, amount = pending[0]
        twin = getattr(budget, "arelease" if amount is None else "asettle", None)
        if twin is not None:
            await (twin(reservation) if amount is None else twin(reservation, amount))
        elif amount is None:
            budget.release(reservation)
        else:
            budget.settle(reservation, amount)
        pending.pop(0)  # only once done: an abort meanwhile settles what is left


async def _aadmit(action: Admit) -> Reservation | None:
    wait = getattr(action.budget, "atry_reserve", None)
    if action.timeout > 0 and wait is not None:
        return await wait(action.amount, timeout=action.timeout)  # type: ignore[no-any-return]
    return action.budget.try_reserve(action.amount)


# -- streamed responses ------------------------------------------------------------------------


@dataclass(frozen=True)
class StreamedResponse:
    """The ``response`` of a streamed :class:`ExecutionResult`: the LiteLLM chunks and the
    usage they reported."""

    chunks: tuple[Any, ...]
    usage: Any = None

    def tool_calls(self, *, fill_ids: bool = False) -> list[dict[str, Any]]:
        """The tool calls assembled from the chunks' deltas, in index order, as OpenAI-style
        dicts ``{"id", "type", "function": {"name", "arguments"}}`` (arguments: the JSON text).

        Args:
            fill_ids: Give a call whose chunks carried no id a fresh ``call_...`` id.

        Example:
            >>> from types import SimpleNamespace as NS
            >>> def chunk(**call):
            ...     delta = NS(tool_calls=[NS(**call)])
            ...     return NS(choices=[NS(delta=delta)])
            >>> fn = NS(name="add", arguments='{"a": ')
            >>> parts = [chunk(index=0, id="c1", function=fn),
            ...          chunk(index=0, id=None, function=NS(name=None, arguments="1}"))]
            >>> StreamedResponse(tuple(parts)).tool_calls()[0]["function"]
            {'name': 'add', 'arguments': '{"a": 1}'}
        """
        calls: dict[int, dict[str, Any]] = {}
        for chunk in self.chunks:
            try:
                deltas = chunk.choices[0].delta.tool_calls or []
            except (AttributeError, IndexError, TypeError):
                continue
            for delta in deltas:
                index = int(getattr(delta, "index", 0) or 0)
                entry = calls.setdefault(
                    index,
                    {"id": None, "type": "function", "function": {"name": "", "arguments": ""}},
                )
                if getattr(delta, "id", None):
                    entry["id"] = delta.id
                fn = getattr(delta, "function", None)
                if fn is not None:
                    if getattr(fn, "name", None):
                        entry["function"]["name"] = fn.name
                    if getattr(fn, "arguments", None):
                        entry["function"]["arguments"] += fn.arguments
        out = [calls[i] for i in sorted(calls)]
        if fill_ids:
            for call in out:
                call["id"] = call["id"] or f"call_{uuid.uuid4().hex[:12]}"
        return out


def stream_response(chunks: list[Any]) -> StreamedResponse:
    """The :class:`StreamedResponse` of ``chunks`` (usage from the last chunk that has it)."""
    usage = None
    for chunk in reversed(chunks):
        usage = getattr(chunk, "usage", None)
        if usage is not None:
            break
    return StreamedResponse(tuple(chunks), usage)


def delta_text(chunk: Any) -> str:
    """The text a stream chunk adds ("" if none)."""
    try:
        content = chunk.choices[0].delta.content
    except (AttributeError, IndexError, TypeError):
        return ""
    return content if isinstance(content, str) else ""
