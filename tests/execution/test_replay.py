"""The replay provider answers with RouterBench's recorded responses at the recorded costs, and
runs a trained router end to end with no network."""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from llmrouter_core.data import RoutingData
from llmrouter_core.execution import (
    AllModelsFailedError,
    Budget,
    BudgetExceededError,
    ExecutionResult,
    Executor,
    StreamChunk,
)
from llmrouter_core.pool import Pool
from llmrouter_core.providers.replay import (
    REPLAY_DATA_ENV,
    ReplayError,
    ReplayStore,
    register_replay_provider,
    replay_pool,
    set_replay_data,
)


@pytest.fixture()
def replaying(arc: RoutingData) -> Iterator[RoutingData]:
    register_replay_provider()
    set_replay_data(arc)
    yield arc
    set_replay_data(None)


def _recorded(data: RoutingData, i: int, model: str) -> tuple[str, float]:
    j = data.model_index(model)
    assert data.responses is not None and data.costs is not None
    return str(data.responses[i, j]), float(data.costs[i, j])


def test_litellm_replays_recorded_answers_and_costs(replaying: RoutingData, litellm: Any) -> None:
    data = replaying
    rows = [0, 17, 444, 900, 1300]
    for i in rows:
        for model in ("gpt-4-1106-preview", "meta/llama-2-70b-chat", "mistralai/mistral-7b-chat"):
            text, cost = _recorded(data, i, model)
            resp = litellm.completion(
                model=f"replay/{model}",
                messages=[{"role": "user", "content": data.queries[i]}],
            )
            assert resp.choices[0].message.content == text
            assert resp._hidden_params["response_cost"] == pytest.approx(cost)
            assert resp.usage.prompt_tokens > 0


def test_unknown_prompts_and_models_are_clear_errors(replaying: RoutingData, litellm: Any) -> None:
    with pytest.raises(litellm.NotFoundError, match="is not in"):
        litellm.completion(
            model="replay/gpt-4-1106-preview",
            messages=[{"role": "user", "content": "What is the meaning of life?"}],
        )
    with pytest.raises(litellm.NotFoundError, match="no recorded responses"):
        litellm.completion(
            model="replay/gpt-5", messages=[{"role": "user", "content": replaying.queries[0]}]
        )


def test_store_matches_prompts_exactly(arc: RoutingData) -> None:
    store = ReplayStore(arc, source="arc")
    q = arc.queries[12]
    text, cost = _recorded(arc, 12, "claude-v2")
    assert store.lookup("claude-v2", q).text == text
    # Surrounding whitespace and Windows line endings are normalised; anything else is not.
    assert store.lookup("CLAUDE-V2", "  " + q.replace("\n", "\r\n") + "\n").cost == cost
    with pytest.raises(ReplayError, match="is not in"):
        store.lookup("claude-v2", q[:-1] + "?")
    # A conversation is matched on its last user message.
    chat = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": q}]
    assert store.lookup("claude-v2", chat).text == text


def test_missing_recorded_response_is_an_error(arc: RoutingData) -> None:
    sub = arc.subset(np.arange(5))
    assert sub.responses is not None
    responses = sub.responses.copy()
    responses[2, sub.model_index("claude-v1")] = None
    sub.responses = responses
    with pytest.raises(ReplayError, match="no recorded response"):
        ReplayStore(sub).lookup("claude-v1", sub.queries[2])
    no_responses = RoutingData(query_ids=["q"], queries=["x"], models=["m"], scores=np.ones((1, 1)))
    with pytest.raises(Exception, match="no recorded responses"):
        ReplayStore(no_responses)


def test_dataset_is_named_by_the_environment(
    data_dir: Path, litellm: Any, monkeypatch: pytest.MonkeyPatch, arc: RoutingData
) -> None:
    register_replay_provider()
    set_replay_data(None)
    monkeypatch.delenv(REPLAY_DATA_ENV, raising=False)
    q = arc.split("test").queries[0]
    with pytest.raises(litellm.BadRequestError, match=REPLAY_DATA_ENV):
        litellm.completion(model="replay/claude-v1", messages=[{"role": "user", "content": q}])
    path = data_dir / "routerbench" / "arc_challenge_test.csv"
    monkeypatch.setenv(REPLAY_DATA_ENV, str(path))
    resp = litellm.completion(model="replay/claude-v1", messages=[{"role": "user", "content": q}])
    i = arc.queries.index(q)
    assert resp.choices[0].message.content == _recorded(arc, i, "claude-v1")[0]


def test_named_dataset(monkeypatch: pytest.MonkeyPatch, litellm: Any, data_dir: Path) -> None:
    register_replay_provider()
    set_replay_data(None)
    monkeypatch.setenv(REPLAY_DATA_ENV, "routerbench")
    from llmrouter_core.data import load_routerbench

    wino = load_routerbench(data_dir / "routerbench" / "winograde_test.csv", on_defect="keep")
    resp = litellm.completion(
        model="replay/gpt-3.5-turbo-1106", messages=[{"role": "user", "content": wino.queries[3]}]
    )
    assert resp.choices[0].message.content == _recorded(wino, 3, "gpt-3.5-turbo-1106")[0]


def test_trained_router_end_to_end_on_recorded_answers(
    replaying: RoutingData, knn_router: Any, arc_test: RoutingData, tmp_path: Path
) -> None:
    # A pool file whose models are called as replay/<name>.
    pool_file = tmp_path / "replay_pool.json"
    pool_file.write_text(
        json.dumps(
            {"models": [{"name": m, "litellm_model": f"replay/{m}"} for m in knn_router.models_]}
        )
    )
    pool = Pool.from_file(pool_file, fill_prices=False)
    ex = Executor(knn_router, pool=pool, keys="")
    n = 25
    total = 0.0
    scores = []
    for i in range(n):
        q = arc_test.queries[i]
        res = ex.complete(q)
        text, cost = _recorded(arc_test, i, res.model)
        assert res.model == knn_router.route(q).model
        assert res.answer == text
        assert res.cost == pytest.approx(cost) and res.cost_source == "provider"
        total += res.cost
        scores.append(arc_test.scores[i, arc_test.model_index(res.model)])
    assert total > 0 and all(not math.isnan(s) for s in scores)


def test_replay_streams_the_recorded_text(
    replaying: RoutingData, knn_router: Any, arc_test: RoutingData
) -> None:
    ex = Executor(knn_router, pool=replay_pool(knn_router.pool_), keys="")
    i = 40
    items = list(ex.stream(arc_test.queries[i], model="gpt-4-1106-preview"))
    final = items[-1]
    assert isinstance(final, ExecutionResult)
    text, cost = _recorded(arc_test, i, "gpt-4-1106-preview")
    assert "".join(c.text for c in items[:-1] if isinstance(c, StreamChunk)) == text
    assert final.answer == text and final.cost == pytest.approx(cost)


def test_unknown_prompt_through_the_executor_lists_every_model(
    replaying: RoutingData, knn_router: Any
) -> None:
    ex = Executor(knn_router, pool=replay_pool(knn_router.pool_), keys="")
    with pytest.raises(AllModelsFailedError) as info:
        ex.complete("A question nobody recorded an answer to.")
    assert {a.model for a in info.value.attempts} == set(knn_router.models_)
    assert all(a.error_type == "NotFoundError" for a in info.value.attempts)


async def test_exact_budget_under_concurrency(
    replaying: RoutingData, cheap_router: Any, arc_test: RoutingData
) -> None:
    """Replay knows each call's cost in advance, so the budget fills to the cent."""
    queries = arc_test.queries[:200]
    model = cheap_router.route(queries[0]).model
    costs = [_recorded(arc_test, i, model)[1] for i in range(len(queries))]
    limit = sum(costs[:80]) * (1 + 1e-9)  # the margin absorbs float rounding only
    budget = Budget(limit)
    ex = Executor(
        cheap_router, pool=replay_pool(cheap_router.pool_), keys="", budget=budget, fallback=False
    )

    async def one(q: str) -> ExecutionResult | BudgetExceededError:
        try:
            return await ex.acomplete(q)
        except BudgetExceededError as exc:
            return exc

    outcomes = await asyncio.gather(*(one(q) for q in queries))
    done = [o for o in outcomes if isinstance(o, ExecutionResult)]
    assert len(done) + sum(isinstance(o, BudgetExceededError) for o in outcomes) == 200
    assert budget.spent <= limit * (1 + 1e-12)
    assert budget.spent == pytest.approx(sum(r.cost for r in done))
    # Nothing that was refused would still have fitted into what is left.
    left = limit - budget.spent
    refused_costs = [
        c for c, o in zip(costs, outcomes, strict=True) if isinstance(o, BudgetExceededError)
    ]
    assert refused_costs and all(c > left - 1e-15 for c in refused_costs)
    assert len(done) >= 80  # the first 80 answers' costs make up the limit


def test_replay_models_claim_only_the_pools_capabilities(knn_router: Any, litellm: Any) -> None:
    """``replay/gpt-4-1106-preview`` plays recorded text: it cannot call tools or follow a
    schema, although LiteLLM's table says the original model can."""
    ex = Executor(knn_router, pool=replay_pool(knn_router.pool_), keys="")
    assert "gpt-4-1106-preview" in ex.models
    info = litellm.model_cost["gpt-4-1106-preview"]
    assert info["supports_function_calling"]  # the original model does
    for capability in ("tools", "json_schema", "vision"):
        assert ex.capable(capability) == []  # type: ignore[arg-type]
    assert ex.context_window("gpt-4-1106-preview") is None
    # A flag set on the pool is honoured, and the model order is kept.
    pool = Pool(
        replace(s, supports_tools=s.name in ("gpt-4-1106-preview", "claude-v2"), context_window=8)
        for s in replay_pool(knn_router.pool_)
    )
    ex = Executor(knn_router, pool=pool, keys="")
    expected = [m for m in ex.models if m in ("gpt-4-1106-preview", "claude-v2")]
    assert ex.capable("tools") == expected
    assert ex.capable("tools", models=["claude-v2", "mistralai/mistral-7b-chat"]) == ["claude-v2"]
    assert ex.supports("claude-v2", "tools") and not ex.supports("claude-v2", "json_schema")
    assert ex.context_window("claude-v2") == 8


def test_litellm_table_capabilities_apply_to_other_providers(knn_router: Any) -> None:
    pool = Pool(replace(s, litellm_model=f"openai/{s.name}") for s in knn_router.pool_)
    ex = Executor(knn_router, pool=pool, keys="")
    assert ex.supports("gpt-4-1106-preview", "tools")
    assert ex.context_window("gpt-4-1106-preview") == 128000
    assert "mistralai/mistral-7b-chat" not in ex.capable("tools")
