"""The ``smallest`` and ``largest`` baselines on real pools: RouterBench (hosted models of
unknown size: price decides) and LLMRouter's dcrouter data with its ``default_llm.json`` pool
(sizes known: parameters decide)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from llmrouter_core import ModelSpec, Pool, get_router
from llmrouter_core.scoring.constant import LargestScorer, SmallestScorer, pick_by_size


@pytest.fixture(scope="module")
def llmrouter_pool(data_dir) -> Pool:  # type: ignore[no-untyped-def]
    return Pool.from_file(data_dir / "llmrouter" / "default_llm.json", fill_prices=False)


def test_routerbench_sizes_unknown_so_price_decides(rb_small) -> None:  # type: ignore[no-untyped-def]
    train, test = rb_small
    mean_cost = train.mean_costs()
    small = get_router("smallest").fit(train)
    large = get_router("largest").fit(train)
    assert isinstance(small.scorer_, SmallestScorer) and isinstance(large.scorer_, LargestScorer)
    s, g = small.scorer_, large.scorer_
    assert s.basis_ == g.basis_ == "price"  # gpt-4, claude: no size in the name
    assert s.target_ == train.models[int(np.argmin(mean_cost))] == "mistralai/mistral-7b-chat"
    assert g.target_ == train.models[int(np.argmax(mean_cost))] == "gpt-4-1106-preview"
    for router in (small, large):
        assert {d.model for d in router.route_batch(test.queries)} == {router.scorer_.target_}


def test_llmrouter_pool_sizes_decide(dcrouter, llmrouter_pool) -> None:  # type: ignore[no-untyped-def]
    train, test = dcrouter
    part = train.subset(np.arange(0, train.n_queries, 10))
    pool = llmrouter_pool.subset(part.models)
    small = get_router("smallest").fit(part, pool).scorer_
    large = get_router("largest").fit(part, pool).scorer_
    assert small.basis_ == large.basis_ == "size"
    sizes = {s.name: s.params_b for s in pool}
    assert sizes[small.target_] == min(sizes.values()) == 7.0
    assert sizes[large.target_] == max(sizes.values()) == 70.0
    assert large.target_ == "llama3-chatqa-1.5-70b"
    # three 7B models at the same price and mean cost: the first in pool order
    assert small.target_ == next(n for n in pool.names if sizes[n] == 7.0)
    router = get_router("smallest").fit(part, pool)
    assert router.route(test.queries[0]).model == small.target_
    # a pool of bare names reads the same sizes from the names
    bare = get_router("smallest").fit(part).scorer_
    assert (bare.target_, bare.basis_) == (small.target_, "size")


def test_sweep_goes_from_the_cheapest_to_the_target(rb_small) -> None:  # type: ignore[no-untyped-def]
    train, test = rb_small
    router = get_router("largest").fit(train)
    weights = router.sweep(7)
    assert math.isinf(weights[0]) and weights[-1] == 0.0
    chosen = {train.models[j] for j in np.unique(router.choose_indices(test.queries, weights))}
    assert chosen == {"mistralai/mistral-7b-chat", "gpt-4-1106-preview"}
    assert router.route(test.queries[0], cost_weight=math.inf).model == "mistralai/mistral-7b-chat"


def test_one_unknown_size_falls_back_to_list_prices(llmrouter_pool) -> None:  # type: ignore[no-untyped-def]
    import litellm

    info = litellm.model_cost["gpt-4o-mini"]  # LiteLLM's bundled (offline) price table
    hosted = ModelSpec(
        "gpt-4o-mini",
        input_price=info["input_cost_per_token"] * 1e6,
        output_price=info["output_cost_per_token"] * 1e6,
    )
    pool = Pool([*llmrouter_pool, hosted])
    price = [(s.input_price or 0) + (s.output_price or 0) for s in pool]
    mean = [0.0] * len(pool)
    assert pick_by_size(pool, mean, largest=True) == (int(np.argmax(price)), "price")
    assert pick_by_size(pool, mean, largest=False) == (int(np.argmin(price)), "price")
    # without the hosted model every size is known
    j, basis = pick_by_size(llmrouter_pool, [0.0] * len(llmrouter_pool), largest=True)
    assert basis == "size" and llmrouter_pool[j].params_b == 141.0  # mixtral-8x22b


def test_size_pick_survives_saving(rb_small, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from llmrouter_core import load_router

    train, test = rb_small
    router = get_router("largest").fit(train)
    router.save(tmp_path / "largest")
    loaded = load_router(tmp_path / "largest")
    assert (loaded.scorer_.target_, loaded.scorer_.basis_) == ("gpt-4-1106-preview", "price")
    assert loaded.route(test.queries[0]).model == "gpt-4-1106-preview"


def test_pick_by_size_checks_lengths(llmrouter_pool) -> None:  # type: ignore[no-untyped-def]
    from llmrouter_core.errors import DataError

    with pytest.raises(DataError, match="mean costs"):
        pick_by_size(llmrouter_pool, [0.0], largest=True)
