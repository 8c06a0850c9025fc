"""RoutedLM: DSPy calls routed by a trained router, answered with RouterBench's recorded
responses; history, usage tracking, caching, persistence and errors."""

from __future__ import annotations

import asyncio
import json
import logging
import math
import warnings
from typing import Any

import dspy
import numpy as np
import pytest
from dspy_llmrouter import RoutedLM, cost_meter, load_program
from dspy_llmrouter.recorded import RecordedPromptAdapter, VerifiedAnswer

from llmrouter_core.errors import LLMRouterError, UnknownModelError
from llmrouter_core.scoring.base import Tags

WEIGHT = 20.0


def _expected(router: Any, data: Any, row: int, weight: float | None = WEIGHT) -> tuple:
    """(model, recorded answer, recorded cost) the routed call must produce."""
    model = router.route(data.queries[row], cost_weight=weight).model
    j = data.models.index(model)
    return model, data.responses[row, j], float(data.costs[row, j])


@pytest.fixture()
def lm(knn_router: Any, replay_pool: Any) -> RoutedLM:
    return RoutedLM(knn_router, pool=replay_pool, cost_weight=WEIGHT)


def _qa() -> dspy.Predict:
    return dspy.Predict("prompt -> answer")


def test_public_surface_is_pinned() -> None:
    import dspy_llmrouter

    assert dspy_llmrouter.__all__ == sorted(dspy_llmrouter.__all__)
    assert isinstance(RoutedLM, type) and issubclass(RoutedLM, dspy.LM)
    # The non-deprecated path: no BaseLM.forward override, DSPy's LiteLLM engine.
    assert "forward" not in RoutedLM.__dict__ and "aforward" not in RoutedLM.__dict__


def test_history_and_usage_record_the_answering_model_and_its_cost(
    lm: RoutedLM, knn_router: Any, mc_split: dict[str, Any]
) -> None:
    data, rows = mc_split["test"], mc_split["held_out"][:8]
    qa = _qa()
    expected = [_expected(knn_router, data, r) for r in rows]
    with dspy.context(lm=lm, adapter=RecordedPromptAdapter()), dspy.track_usage() as usage:
        answers = [qa(prompt=data.queries[r]).answer for r in rows]
    assert answers == [e[1] for e in expected]
    entries = lm.history[-len(rows) :]
    assert [e["response_model"] for e in entries] == [e[0] for e in expected]
    assert [e["cost"] for e in entries] == pytest.approx([e[2] for e in expected])
    total = usage.get_total_tokens()[lm.model]
    assert total["cost"] == pytest.approx(sum(e[2] for e in expected))
    by_model = total["by_model"]
    for model in {e[0] for e in expected}:
        assert by_model[model]["calls"] == sum(e[0] == model for e in expected)
        assert by_model[model]["cost"] == pytest.approx(
            sum(e[2] for e in expected if e[0] == model)
        )


def test_configure_context_and_set_lm(
    lm: RoutedLM, knn_router: Any, mc_split: dict[str, Any]
) -> None:
    data, row = mc_split["test"], mc_split["held_out"][0]
    prompt = data.queries[row]
    fixed = lm.copy(model="claude-instant-v1", cost_weight=None)
    assert fixed.policy == {"model": "claude-instant-v1"}
    assert fixed.model == lm.model and fixed.executor is lm.executor
    j = data.models.index("claude-instant-v1")
    routed_model, routed_answer, _ = _expected(knn_router, data, row)
    qa, other = _qa(), _qa()
    other.set_lm(fixed)
    dspy.configure(lm=lm, adapter=RecordedPromptAdapter())
    try:
        assert qa(prompt=prompt).answer == routed_answer
        assert other(prompt=prompt).answer == data.responses[row, j]  # its own LM wins
        assert fixed.history[-1]["response_model"] == "claude-instant-v1"
        with dspy.context(lm=fixed):
            assert qa(prompt=prompt).answer == data.responses[row, j]
        assert qa(prompt=prompt).answer == routed_answer
        assert lm.history[-1]["response_model"] == routed_model
    finally:
        dspy.configure(lm=None, adapter=None)


def test_async_calls(lm: RoutedLM, knn_router: Any, mc_split: dict[str, Any]) -> None:
    data, row = mc_split["test"], mc_split["held_out"][1]
    model, answer, cost = _expected(knn_router, data, row)

    async def run() -> Any:
        with dspy.context(lm=lm, adapter=RecordedPromptAdapter()):
            return await _qa().acall(prompt=data.queries[row])

    assert asyncio.run(run()).answer == answer
    assert lm.history[-1]["response_model"] == model
    assert lm.history[-1]["cost"] == pytest.approx(cost)


def test_streaming_through_litellm(lm: RoutedLM, knn_router: Any, mc_split: dict[str, Any]) -> None:
    import litellm

    data, row = mc_split["test"], mc_split["held_out"][2]
    _, answer, cost = _expected(knn_router, data, row)
    chunks = list(
        litellm.completion(
            model=lm.model,
            stream=True,
            cost_weight=WEIGHT,
            messages=[{"role": "user", "content": data.queries[row]}],
        )
    )
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == answer
    assert litellm.stream_chunk_builder(chunks).usage.cost == pytest.approx(cost)

    async def run() -> list[Any]:
        program = dspy.streamify(_qa())
        with dspy.context(lm=lm, adapter=RecordedPromptAdapter()):
            return [item async for item in program(prompt=data.queries[row])]

    items = asyncio.run(run())
    assert isinstance(items[-1], dspy.Prediction) and items[-1].answer == answer
    assert lm.history[-1]["cost"] == pytest.approx(cost)


def test_no_deprecated_dspy_interface_is_used(lm: RoutedLM, mc_split: dict[str, Any]) -> None:
    data, row = mc_split["test"], mc_split["held_out"][3]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with dspy.context(lm=lm, adapter=RecordedPromptAdapter()):
            _qa()(prompt=data.queries[row])
            asyncio.run(_qa().acall(prompt=data.queries[row]))
    deprecated = [
        w
        for w in caught
        if issubclass(w.category, DeprecationWarning)
        and ("dspy" in w.filename or "DSPy" in str(w.message))
    ]
    assert not deprecated, [str(w.message) for w in deprecated]


def test_deterministic_router_is_cached_and_the_key_follows_the_policy(
    lm: RoutedLM, knn_router: Any, replay_pool: Any, mc_split: dict[str, Any]
) -> None:
    data, row = mc_split["test"], mc_split["held_out"][4]
    assert lm.cache and lm.routing_deterministic
    qa = _qa()
    with dspy.context(lm=lm, adapter=RecordedPromptAdapter()):
        with cost_meter() as meter:
            qa(prompt=data.queries[row])
            qa(prompt=data.queries[row])
    first, second = meter.calls
    assert not first.cached and second.cached
    assert second.cost == first.cost and second.model == first.model  # recorded, not re-paid
    assert meter.spent == pytest.approx(first.cost)
    # Same router, pool and options: same model id (a stable cache key across processes);
    # another router or pool: another id; another lambda: another request (kwargs).
    assert RoutedLM(knn_router, pool=replay_pool).model == lm.model
    import llmrouter_core as lr

    other = lr.get_router("single").fit(mc_split["train"].subset(mc_split["router"]))
    assert RoutedLM(other, pool=replay_pool).model != lm.model
    assert RoutedLM(knn_router).model != lm.model
    cheap = lm.copy(cost_weight=math.inf)
    with dspy.context(lm=cheap, adapter=RecordedPromptAdapter()), cost_meter() as meter:
        qa(prompt=data.queries[row])
    assert not meter.calls[0].cached
    assert meter.calls[0].model == knn_router.route(data.queries[row], cost_weight=math.inf).model


class CoinFlipRouter:
    """A router whose decisions are random: it must never be bypassed by DSPy's cache."""

    name = "coin-flip"
    tags = Tags(deterministic=False)

    def __init__(self, pool: Any, seed: int) -> None:
        self.pool_ = pool
        self.models_ = list(pool.names)
        self._rng = np.random.default_rng(seed)

    def route(
        self, query: str, *, cost_weight: Any = None, allowed: Any = None, **kwargs: Any
    ) -> Any:
        from llmrouter_core.decision import Decision

        names = [m for m in self.models_ if allowed is None or m in allowed]
        order = list(self._rng.permutation(names))
        return Decision(
            model=order[0],
            ranked=tuple(order),
            quality={},
            cost={},
            cost_weight=0.0,
            router=self.name,
            reason="coin flip",
        )


def test_random_router_is_not_cached_by_default(
    replay_pool: Any, mc_split: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    data, row = mc_split["test"], mc_split["held_out"][5]
    lm = RoutedLM(CoinFlipRouter(replay_pool, seed=3))
    assert lm.cache is False and not lm.routing_deterministic
    qa = _qa()
    with dspy.context(lm=lm, adapter=RecordedPromptAdapter()), cost_meter() as meter:
        for _ in range(8):
            qa(prompt=data.queries[row])
    assert not any(c.cached for c in meter.calls)
    assert len({c.model for c in meter.calls}) > 1  # every call was routed again
    with caplog.at_level(logging.WARNING):
        RoutedLM(CoinFlipRouter(replay_pool, seed=3), cache=True)
    assert "cached answers skip the router" in caplog.text


@pytest.mark.parametrize(
    "tags",
    [Tags(deterministic=False), Tags(calls_models=True)],
    ids=["not-deterministic", "calls-models"],
)
def test_caching_reads_the_routers_capabilities(
    knn_router: Any, replay_pool: Any, tags: Any, tmp_path: Any
) -> None:
    import llmrouter_core as lr

    assert knn_router.tags.deterministic and not knn_router.tags.calls_models
    assert RoutedLM(knn_router, pool=replay_pool).cache is True
    knn_router.save(tmp_path / "router")
    judged = lr.load_router(tmp_path / "router")
    judged.scorer_.tags = tags  # e.g. an LLM judge: routing calls a model
    assert judged.tags == tags
    lm = RoutedLM(judged, pool=replay_pool)
    assert lm.cache is False and not lm.routing_deterministic
    assert lm.model != RoutedLM(knn_router, pool=replay_pool).model


def test_budget_makes_routing_depend_on_spend_so_no_cache(
    knn_router: Any, replay_pool: Any
) -> None:
    budgeted = RoutedLM(knn_router, pool=replay_pool, budget=1.0)
    assert budgeted.cache is False and not budgeted.routing_deterministic


def test_saved_program_keeps_its_routing_policies(
    knn_router: Any, replay_pool: Any, tmp_path: Any, mc_split: dict[str, Any]
) -> None:
    knn_router.save(tmp_path / "router")
    base = RoutedLM(str(tmp_path / "router"), pool=replay_pool, cost_weight=WEIGHT)
    program = VerifiedAnswer()
    program.draft.lm = base.copy(model="mistralai/mixtral-8x7b-chat", cost_weight=None)
    program.check.lm = base.copy(cost_weight=math.inf)
    program.arbiter.lm = base
    program.save(tmp_path / "program.json")

    with pytest.raises(ValueError, match="allow_unsafe_lm_state"):
        VerifiedAnswer().load(tmp_path / "program.json")  # DSPy refuses custom classes
    trusted = VerifiedAnswer()
    trusted.load(tmp_path / "program.json", allow_unsafe_lm_state=True)
    safe = load_program(VerifiedAnswer(), tmp_path / "program.json")
    for loaded in (trusted, safe):
        assert isinstance(loaded.draft.lm, RoutedLM)
        assert loaded.draft.lm.policy == {"model": "mistralai/mixtral-8x7b-chat"}
        assert loaded.check.lm.policy == {"cost_weight": math.inf}
        assert loaded.arbiter.lm.policy == {"cost_weight": WEIGHT}
        assert loaded.arbiter.lm.model == base.model  # same router, pool: same cache key
    row = mc_split["held_out"][6]
    prompt = mc_split["test"].queries[row]
    assert safe(prompt=prompt).answer == program(prompt=prompt).answer


def test_in_memory_router_needs_the_router_to_load(
    lm: RoutedLM, knn_router: Any, tmp_path: Any
) -> None:
    program = VerifiedAnswer()
    program.set_lm(lm)
    program.save(tmp_path / "p.json")
    with pytest.raises(LLMRouterError, match="in-memory router"):
        load_program(VerifiedAnswer(), tmp_path / "p.json")
    loaded = load_program(VerifiedAnswer(), tmp_path / "p.json", router=lm.executor)
    assert loaded.draft.lm.policy == {"cost_weight": WEIGHT}


def test_bad_input_raises_one_clear_error(
    knn_router: Any, replay_pool: Any, lm: RoutedLM, tmp_path: Any
) -> None:
    with pytest.raises(UnknownModelError, match="not in the pool"):
        RoutedLM(knn_router, pool=replay_pool, model="gpt-5")
    with pytest.raises(UnknownModelError, match="not in the pool"):
        lm.copy(model="gpt-5")
    with pytest.raises(ValueError, match="cost_weight"):
        RoutedLM(knn_router, pool=replay_pool, cost_weight=-1)
    with pytest.raises(ValueError, match="max_cost"):
        RoutedLM(knn_router, pool=replay_pool, max_cost=-0.5)
    from llmrouter_core.errors import PersistenceError

    with pytest.raises(PersistenceError):
        RoutedLM(tmp_path / "no-router")
    # A prompt no model can answer: one DSPy error that carries the executor's attempts.
    with dspy.context(lm=lm, adapter=RecordedPromptAdapter()), pytest.raises(Exception) as err:
        _qa()(prompt="A prompt that RouterBench never recorded.")
    assert "AllModelsFailedError" in str(err.value) and "not in" in str(err.value)


def test_function_calling_capability_reflects_the_pool(knn_router: Any, replay_pool: Any) -> None:
    from dataclasses import replace

    from llmrouter_core.pool import Pool

    # Recorded answers cannot call tools, although LiteLLM's table says gpt-4 can.
    assert not RoutedLM(knn_router, pool=replay_pool).supports_function_calling
    assert not RoutedLM(knn_router, pool=replay_pool).supports_response_schema
    # The pool's own flags count; through another provider LiteLLM's table does too.
    flagged = Pool(replace(s, supports_tools=s.name == "claude-v2") for s in replay_pool)
    assert RoutedLM(knn_router, pool=flagged).supports_function_calling
    assert not RoutedLM(knn_router, pool=flagged).supports_response_schema
    openai = Pool(replace(s, litellm_model=f"openai/{s.name}") for s in replay_pool)
    assert RoutedLM(knn_router, pool=openai).supports_function_calling


def test_model_pins_a_pool_model_and_lm_model_stays_the_routing_id(
    knn_router: Any, replay_pool: Any, mc_split: dict[str, Any], tmp_path: Any
) -> None:
    data, row = mc_split["test"], mc_split["held_out"][7]
    pinned = RoutedLM(knn_router, pool=replay_pool, model="claude-v2")
    assert pinned.model.startswith("llmrouter/")  # DSPy's id of the LM: the routing id
    assert pinned.policy == {"model": "claude-v2"}
    assert pinned.kwargs["pinned_model"] == "claude-v2"  # how the pin travels (cache key)
    with dspy.context(lm=pinned, adapter=RecordedPromptAdapter()):
        answer = _qa()(prompt=data.queries[row]).answer
    assert pinned.history[-1]["response_model"] == "claude-v2"
    assert answer == data.responses[row, data.models.index("claude-v2")]
    assert pinned.copy(model=None).policy == {}

    with pytest.warns(DeprecationWarning, match=r"fixed_model=.*use model="):
        old = RoutedLM(knn_router, pool=replay_pool, fixed_model="claude-v2")
    assert old.policy == pinned.policy and old.model == pinned.model
    with pytest.warns(DeprecationWarning, match="use model="):
        assert old.copy(fixed_model="gpt-4-1106-preview").policy == {"model": "gpt-4-1106-preview"}
    with pytest.raises(TypeError, match="model= only"):
        RoutedLM(knn_router, pool=replay_pool, model="claude-v2", fixed_model="claude-v2")


def test_programs_saved_with_the_old_pin_name_still_load(
    knn_router: Any, replay_pool: Any, tmp_path: Any
) -> None:
    knn_router.save(tmp_path / "router")
    base = RoutedLM(str(tmp_path / "router"), pool=replay_pool, routing_text="conversation")
    program = VerifiedAnswer()
    program.set_lm(base.copy(model="claude-v2"))
    program.save(tmp_path / "p.json")
    state = json.loads((tmp_path / "p.json").read_text())
    lm_state = state["draft.predict"]["lm"] if "draft.predict" in state else state["draft"]["lm"]
    assert lm_state["pinned_model"] == "claude-v2"
    assert lm_state["executor_options"]["routing_text"] == "conversation"
    # As an earlier version wrote it: the pin as fixed_model, routing_text among the options.
    for entry in state.values():
        if isinstance(entry, dict) and isinstance(entry.get("lm"), dict):
            entry["lm"]["fixed_model"] = entry["lm"].pop("pinned_model")
    (tmp_path / "old.json").write_text(json.dumps(state))
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        loaded = load_program(VerifiedAnswer(), tmp_path / "old.json")
    assert loaded.draft.lm.policy == {"model": "claude-v2"}
    assert loaded.draft.lm.executor.routing_text == "conversation"
    assert loaded.draft.lm.model == base.model
