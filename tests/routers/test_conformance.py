"""The conformance suite (:mod:`llmrouter_core.testing`) over every registered router, on a
small real slice of RouterBench (240 training queries, 11 models), and over the synthetic data
for compositions of the user's own: scikit-learn regressors and a plugin scorer written
outside the package."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from llm_judge_standin import standin_params
from sklearn.linear_model import Ridge
from sklearn.neighbors import KNeighborsRegressor

from llmrouter_core import get_router, list_routers, make_router
from llmrouter_core.testing import CheckSkipped, check_router, router_checks

# Routers that call an LLM at fit and route time are judged by a deterministic offline
# stand-in provider here (tests/routers/llm_judge_standin.py).
TEST_PARAMS = {"llm": lambda: standin_params("json", n_calibration=24)}
NAMES = [info.name for info in list_routers()]
CHECK_NAMES = [name for name, _ in router_checks(get_router("single"))]

_fixtures: dict[str, list[tuple[str, Any]]] = {}


def _checks(name: str, rb_small: Any) -> dict[str, Any]:
    if name not in _fixtures:  # one fitted copy per router, shared by its checks
        params = TEST_PARAMS[name]() if name in TEST_PARAMS else {}
        train, test = rb_small
        _fixtures[name] = router_checks(get_router(name, **params), train, test)
    return dict(_fixtures[name])


@pytest.mark.parametrize("check", CHECK_NAMES)
@pytest.mark.parametrize("name", NAMES)
def test_registered_router(name: str, check: str, rb_small) -> None:  # type: ignore[no-untyped-def]
    try:
        _checks(name, rb_small)[check]()
    except CheckSkipped as exc:
        pytest.skip(str(exc))


@pytest.mark.parametrize(
    "estimator", [KNeighborsRegressor(10), Ridge(alpha=3.0)], ids=["knn", "ridge"]
)
def test_any_scikit_learn_regressor_is_a_scorer(estimator: Any) -> None:
    assert check_router(make_router(scorer=estimator, cost_model="tokens")) == []


class NearestCentroid:
    """A plugin scorer written outside the package: each model's mean score over the
    training queries whose features are closest to the query's (a scikit-learn regressor)."""

    def __init__(self, k: int = 3) -> None:
        self.k = k

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        return {"k": self.k}

    def set_params(self, **params: Any) -> NearestCentroid:
        self.k = params.get("k", self.k)
        return self

    def fit(self, X: Any, Y: np.ndarray) -> NearestCentroid:
        self.x_, self.y_ = X, np.asarray(Y)
        return self

    def predict(self, X: Any) -> np.ndarray:
        sims = np.asarray((X @ self.x_.T).todense())
        top = np.argsort(-sims, axis=1)[:, : self.k]
        return self.y_[top].mean(axis=1)


def test_a_plugin_scorer_gets_every_policy() -> None:
    """Under 30 lines of the user's own code pass the whole suite, every policy included."""
    assert check_router(make_router(scorer=NearestCentroid(5), cost_model="tokens")) == []
