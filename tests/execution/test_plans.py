"""Plans carried out by the executor (:mod:`llmrouter_core.execution.plans`): the generic
:class:`CascadePolicy` and :class:`FanOutPolicy` on any router, over scripted models, in
``complete`` / ``acomplete`` / ``stream`` / ``astream``: which calls are made, which answer is
kept, what every stage costs, and how failures, budgets and caps are handled."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from llmrouter_core.decision import CascadePlan, CascadeStage, Decision, FanOutPlan
from llmrouter_core.execution import (
    AllModelsFailedError,
    Budget,
    ExecutionResult,
    Executor,
    InvalidRequestError,
    PoolOrderRouter,
    StreamChunk,
)
from llmrouter_core.policy import CascadePolicy, FanOutPolicy
from llmrouter_core.testing import ScriptedProvider, dummy_router

MODELS = ("small", "medium", "large")
QUALITY = {"small": 0.5, "medium": 0.7, "large": 0.9}
COST = {"small": 1e-6, "medium": 5e-6, "large": 2e-5}
PRICES = {"small": 1.0, "medium": 5.0, "large": 20.0}  # USD per 1M tokens
ANSWERS = {"small": "4", "medium": "four", "large": "The answer is 4"}
QUERY = "What is 2 + 2?"
MODES = ("complete", "acomplete", "stream", "astream")


def _tokens(text: str) -> int:  # the scripted provider's token count
    return max(1, len(text.split()))


def model(
    name: str, verdicts: Any = "Correct", *, fail: BaseException | None = None, delay: float = 0.0
) -> Callable[[list[dict[str, Any]]], str]:
    """A scripted model: answers questions with its answer (or raises ``fail``), and
    verification requests with ``verdicts`` (one verdict, or a list consumed in order)."""
    queue = list(verdicts) if isinstance(verdicts, list) else None

    def reply(messages: list[dict[str, Any]]) -> str:
        if "Proposed answer:" in str(messages[-1]["content"]):
            return queue.pop(0) if queue else str(verdicts)
        time.sleep(delay)
        if fail is not None:
            raise fail
        return ANSWERS[name]

    return reply


def setup(budget: Any = None, **scripts: Any) -> tuple[ScriptedProvider, Executor]:
    provider = ScriptedProvider({m: scripts.get(m, model(m)) for m in MODELS})
    router = dummy_router(QUALITY, COST, provider.pool(prices=PRICES))
    return provider, Executor(router, max_retries=0, budget=budget)


def run(ex: Executor, mode: str, **kwargs: Any) -> tuple[ExecutionResult, list[StreamChunk]]:
    """The request in one of the four ways; the result and the chunks streamed."""
    if mode == "complete":
        return ex.complete(QUERY, **kwargs), []
    if mode == "acomplete":
        return asyncio.run(ex.acomplete(QUERY, **kwargs)), []
    if mode == "stream":
        items: list[Any] = list(ex.stream(QUERY, **kwargs))
    else:

        async def collect() -> list[Any]:
            return [item async for item in ex.astream(QUERY, **kwargs)]

        items = asyncio.run(collect())
    assert isinstance(items[-1], ExecutionResult)
    assert all(isinstance(c, StreamChunk) for c in items[:-1])
    return items[-1], items[:-1]


def call_cost(provider: ScriptedProvider, k: int, reply: str) -> float:
    """USD of scripted call ``k`` that answered ``reply`` (tokens x the model's price)."""
    call = provider.calls[k]
    n_in = sum(_tokens(str(m.get("content", ""))) for m in call.messages)
    return (n_in + _tokens(reply)) * PRICES[call.model] / 1e6


# -- the cascade -------------------------------------------------------------------------------


def test_the_generic_cascade_is_the_frontier_below_the_knobs_pick() -> None:
    _, ex = setup()
    d = ex.route(QUERY, policy=CascadePolicy(max_stages=3))
    assert isinstance(d.plan, CascadePlan) and d.plan.acceptor == "verify"
    assert [(s.model, s.threshold) for s in d.plan.stages] == [
        ("small", 0.7),
        ("medium", 0.9),
        ("large", None),
    ]
    assert ex.route(QUERY).plan is None  # the router's own policy otherwise


@pytest.mark.parametrize("mode", MODES)
def test_the_first_answer_the_verifier_accepts_is_kept(mode: str) -> None:
    provider, ex = setup()
    res, chunks = run(ex, mode, policy=CascadePolicy(max_stages=3))
    assert res.model == "small" and res.answer == "4"
    # One answer, then four self-verifications by the same model (AutoMix's defaults).
    assert [c.model for c in provider.calls] == ["small"] * 5
    assert [c.stream for c in provider.calls] == [False] * 5
    verify = provider.calls[1]
    assert "Proposed answer: 4" in verify.messages[-1]["content"]
    assert verify.params.get("max_tokens") == 16 and verify.params.get("temperature") == 1.0
    (step,) = res.steps
    assert (step.model, step.outcome, step.score, step.threshold) == ("small", "accepted", 1.0, 0.7)
    assert step.verdicts == (True,) * 4
    expected = call_cost(provider, 0, "4") + sum(
        call_cost(provider, k, "Correct") for k in (1, 2, 3, 4)
    )
    assert res.cost == pytest.approx(expected) and step.cost == pytest.approx(expected)
    assert res.cost == pytest.approx(sum(a.cost for a in res.attempts))
    assert len(res.attempts) == 5 and not res.fell_back
    if mode in ("stream", "astream"):  # accepted before the last stage: one chunk
        assert [c.text for c in chunks] == ["4"]


@pytest.mark.parametrize("mode", MODES)
def test_rejected_answers_escalate_and_every_call_is_charged(mode: str) -> None:
    provider, ex = setup(
        budget=Budget(1.0),
        small=model("small", "Incorrect"),
        medium=model("medium", ["Correct", "Incorrect", "Correct", "Incorrect"]),
    )
    res, chunks = run(ex, mode, policy=CascadePolicy(max_stages=3))
    assert res.model == "large" and res.answer == ANSWERS["large"]
    assert [c.model for c in provider.calls] == ["small"] * 5 + ["medium"] * 5 + ["large"]
    assert [(s.model, s.outcome, s.score, s.threshold) for s in res.steps] == [
        ("small", "escalated", 0.0, 0.7),
        ("medium", "escalated", 0.5, 0.9),
        ("large", "accepted", None, None),
    ]
    costs = [call_cost(provider, k, _reply(c)) for k, c in enumerate(provider.calls)]
    assert res.cost == pytest.approx(sum(costs))
    assert [s.cost for s in res.steps] == pytest.approx(
        [sum(costs[:5]), sum(costs[5:10]), costs[10]]
    )
    assert ex.budget is not None and ex.budget.spent == pytest.approx(res.cost)  # type: ignore[union-attr]
    if mode in ("stream", "astream"):  # the last stage streams for real
        assert provider.calls[-1].stream
        assert "".join(c.text for c in chunks) == ANSWERS["large"] and len(chunks) > 1


def _reply(call: Any) -> str:
    """What a scripted model answered to ``call`` (for the cost of the tests above)."""
    if "Proposed answer:" in str(call.messages[-1]["content"]):
        return "Incorrect" if call.model == "small" else "Correct"  # same token count
    return ANSWERS[call.model]


@pytest.mark.parametrize("mode", MODES)
def test_a_failing_stage_is_recorded_and_the_cascade_goes_on(mode: str, litellm: Any) -> None:
    fault = litellm.BadRequestError("content filter", llm_provider="scripted", model="small")
    _, ex = setup(small=model("small", fail=fault))
    res, _ = run(ex, mode, policy=CascadePolicy(max_stages=3))
    assert [(s.model, s.outcome) for s in res.steps] == [
        ("small", "failed"),
        ("medium", "accepted"),
    ]
    assert "content filter" in (res.steps[0].error or "") and res.fell_back
    assert res.steps[0].cost == 0.0 and res.model == "medium"
    assert [a.outcome for a in res.attempts if a.model == "small"] == ["error"]


@pytest.mark.parametrize("mode", MODES)
def test_when_the_last_stage_fails_the_best_scored_answer_is_kept(mode: str, litellm: Any) -> None:
    fault = litellm.BadRequestError("too long", llm_provider="scripted", model="large")
    _, ex = setup(
        small=model("small", "Incorrect"),
        medium=model("medium", ["Correct", "Correct", "Incorrect", "Incorrect"]),
        large=model("large", fail=fault),
    )
    res, chunks = run(ex, mode, policy=CascadePolicy(max_stages=3))
    assert res.model == "medium" and res.answer == "four"
    assert [(s.model, s.outcome, s.score) for s in res.steps] == [
        ("small", "answered", 0.0),
        ("medium", "accepted", 0.5),
        ("large", "failed", None),
    ]
    if mode in ("stream", "astream"):
        assert [c.text for c in chunks] == ["four"]
    everything = {m: model(m, fail=fault) for m in MODELS}
    _, ex = setup(**everything)
    with pytest.raises(AllModelsFailedError) as err:
        run(ex, mode, policy=CascadePolicy(max_stages=3))
    assert [a.model for a in err.value.attempts] == list(MODELS)


def test_thresholds_outside_0_1_decide_without_asking_the_acceptor() -> None:
    provider, ex = setup()
    plan = CascadePlan(
        (CascadeStage("small", 2.0), CascadeStage("medium", 0.0), CascadeStage("large")), "verify"
    )
    decision = Decision(
        model="small",
        ranked=MODELS,
        quality=QUALITY,
        cost=COST,
        cost_weight=0.0,
        router="by hand",
        plan=plan,
    )
    res = ex.complete(QUERY, decision=decision)
    assert [c.model for c in provider.calls] == ["small", "medium"]  # no verification
    assert [(s.outcome, s.score) for s in res.steps] == [("escalated", None), ("accepted", None)]
    assert res.model == "medium" and res.decision is decision


def test_the_cap_holds_over_every_stage_and_verification() -> None:
    provider, ex = setup(small=model("small", "Incorrect"))
    # The medium model's bound fits the cap on its own (the large one's does not: it is left
    # out before routing), but not once the small model's answer and verifications are paid.
    cap = 1.05 * float(ex.cost_bound(QUERY, "medium"))  # type: ignore[arg-type]
    res = ex.complete(QUERY, policy=CascadePolicy(max_stages=3), max_cost=cap)
    assert res.decision is not None and res.decision.plan is not None
    assert res.decision.plan.models == ("small", "medium") and "large" in res.excluded
    assert [(s.model, s.outcome) for s in res.steps] == [
        ("small", "accepted"),
        ("medium", "failed"),
    ]
    assert "max_cost" in (res.steps[1].error or "")
    assert res.model == "small" and res.cost <= cap
    assert [c.model for c in provider.calls] == ["small"] * 5


def test_an_acceptor_is_resolved_by_the_router_before_any_call() -> None:
    provider, ex = setup()
    with pytest.raises(ValueError, match="no cascade acceptor 'frugalgpt'"):
        ex.complete(QUERY, policy=CascadePolicy(acceptor="frugalgpt"))
    assert provider.calls == []
    plain = Executor(PoolOrderRouter(ex.pool), max_retries=0)
    decision = ex.route(QUERY, policy=CascadePolicy())
    with pytest.raises(InvalidRequestError, match="acceptor"):
        plain.complete(QUERY, decision=decision)
    with pytest.raises(InvalidRequestError, match="not several"):
        ex.complete(QUERY, policy=CascadePolicy(), model="small")


# -- fan-out -------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_fan_out_keeps_the_best_predicted_answer_and_pays_for_all(mode: str) -> None:
    provider, ex = setup()
    res, chunks = run(ex, mode, policy=FanOutPolicy(k=2))
    assert isinstance(res.decision.plan, FanOutPlan)  # type: ignore[union-attr]
    assert sorted(c.model for c in provider.calls) == ["large", "medium"]
    assert res.model == "large" and res.answer == ANSWERS["large"]
    assert [(s.model, s.outcome, s.score) for s in res.steps] == [
        ("large", "accepted", 0.9),
        ("medium", "answered", 0.7),
    ]
    expected = {
        c.model: call_cost(provider, k, ANSWERS[c.model]) for k, c in enumerate(provider.calls)
    }
    assert res.cost == pytest.approx(sum(expected.values()))
    assert [s.cost for s in res.steps] == pytest.approx([expected["large"], expected["medium"]])
    if mode in ("stream", "astream"):
        assert [c.text for c in chunks] == [ANSWERS["large"]]


@pytest.mark.parametrize("mode", ["complete", "acomplete"])
def test_fan_out_calls_every_model_at_once(mode: str, litellm: Any) -> None:
    from dataclasses import replace

    from scripted import register_scripted

    script = register_scripted(litellm, "planprobe")
    script.delay = 0.2
    _, ex = setup()
    pool = type(ex.pool)(replace(s, litellm_model=f"planprobe/{s.name}") for s in ex.pool)
    ex = Executor(ex.router, pool=pool, max_retries=0)
    res, _ = run(ex, mode, policy=FanOutPolicy(k=3))
    assert script.max_in_flight == 3  # all three calls overlapped
    assert res.model == "large" and len(res.steps) == 3


def test_fan_out_first_takes_the_fastest_answer(litellm: Any) -> None:
    _, ex = setup(large=model("large", delay=0.4), medium=model("medium", delay=0.2))
    start = time.perf_counter()
    res = ex.complete(QUERY, policy=FanOutPolicy(k=3, aggregate="first"))
    assert time.perf_counter() - start < 0.55  # concurrent, not 0.6 s one after another
    assert res.model == "small"  # every call is awaited, and counted
    assert [s.outcome for s in res.steps] == ["answered", "answered", "accepted"]
    assert res.cost == pytest.approx(sum(s.cost for s in res.steps))


@pytest.mark.parametrize("mode", ["complete", "acomplete"])
def test_fan_out_keeps_an_answer_when_a_model_fails(mode: str, litellm: Any) -> None:
    fault = litellm.BadRequestError("no", llm_provider="scripted", model="large")
    _, ex = setup(large=model("large", fail=fault))
    res, _ = run(ex, mode, policy=FanOutPolicy(k=2))
    assert res.model == "medium" and res.fell_back
    assert [(s.model, s.outcome) for s in res.steps] == [
        ("large", "failed"),
        ("medium", "accepted"),
    ]


def test_fan_out_threads_share_the_budget() -> None:
    budget = Budget(1.0)
    provider, ex = setup(budget=budget)
    results = []
    lock = threading.Lock()

    def work() -> None:
        res = ex.complete(QUERY, policy=FanOutPolicy(k=3))
        with lock:
            results.append(res)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 4 and len(provider.calls) == 12
    assert budget.spent == pytest.approx(sum(r.cost for r in results))


def test_requests_routed_together_keep_their_own_policy() -> None:
    provider, ex = setup()
    fan = FanOutPolicy(k=2)

    async def three() -> list[ExecutionResult]:
        return list(
            await asyncio.gather(
                ex.acomplete(QUERY, policy=fan),
                ex.acomplete(QUERY, policy=fan),
                ex.acomplete(QUERY),
            )
        )

    a, b, plain = asyncio.run(three())
    assert isinstance(a.decision.plan, FanOutPlan) and a.decision == b.decision  # type: ignore[union-attr]
    assert plain.decision is not None and plain.decision.plan is None and not plain.steps
    assert len(provider.calls) == 5
