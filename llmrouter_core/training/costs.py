"""Per-query cost prediction: the cost model part of a router.

* :class:`CostModel` (``cost_model="tokens"``): a call's cost grows with the prompt's length
  (input tokens) and with the answer's length, which differs by model. It fits, per pool
  model, ``cost = a + b x input_tokens`` by least squares on the training data
  (``input_tokens`` estimated from the query text as in
  :func:`~llmrouter_core.pool.estimate_tokens`), and clips predictions to the range of costs
  seen in training, so an unusual query never gets a negative or absurd cost.
* :class:`FeatureCostModel` (``cost_model="features"``): the same, corrected per model by a
  ridge regression of the log-cost residual on the query's features (CARROT's cost
  predictor). Answer length differs by task (code answers are long, multiple-choice answers
  one letter), which the prompt's length alone cannot tell.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from functools import cached_property
from typing import Any

import numpy as np
import scipy.sparse as sp

from llmrouter_core._math import RowMatrix, clip_inplace
from llmrouter_core.data.core import FloatArray, RoutingData
from llmrouter_core.errors import NotFittedError
from llmrouter_core.pool import estimate_tokens
from llmrouter_core.training.selection import kfold

__all__ = [
    "COST_MODELS",
    "CostModel",
    "FeatureCostModel",
    "MeanCostModel",
    "MeasuredCostModel",
    "cost_model_from_state",
    "make_cost_model",
    "pack_matrix",
    "unpack_matrix",
]

#: Values of a router's ``cost_model`` hyperparameter: per-query cost from the features or
#: the prompt length, each model's mean cost, or (evaluation only) the measured cost of each
#: training query.
COST_MODELS = ("features", "tokens", "mean", "measured")


class CostModel:
    """``cost[model] = intercept + slope x estimated input tokens``, clipped to the train range.

    Args:
        per_query: Use the query length; if False, predict each model's mean cost.
    """

    kind = "tokens"

    def __init__(self, per_query: bool = True) -> None:
        self.per_query = per_query

    def fit(self, data: RoutingData, x: Any = None) -> CostModel:
        """Fit on the training data (``x``, the router's features of its queries, is unused
        here; :class:`FeatureCostModel` reads it)."""
        return self._fit_tokens(data)

    def _fit_tokens(self, data: RoutingData) -> CostModel:
        costs = data.require_costs()
        m = data.n_models
        tokens = np.array([estimate_tokens(q) for q in data.queries], dtype=np.float64)
        self.intercept_ = np.zeros(m)
        self.slope_ = np.zeros(m)
        self.low_ = np.zeros(m)
        self.high_ = np.zeros(m)
        for j in range(m):
            ok = np.isfinite(costs[:, j])
            y, x = costs[ok, j], tokens[ok]
            self.low_[j], self.high_[j] = float(y.min()), float(y.max())
            if self.per_query and x.size >= 3 and np.ptp(x) > 0:
                slope, intercept = np.polyfit(x, y, 1)
                # A negative slope is noise (longer prompts never cost less): fall back to mean.
                if slope > 0:
                    self.slope_[j], self.intercept_[j] = slope, intercept
                    continue
            self.intercept_[j] = float(y.mean())
        return self

    def predict(self, queries: Sequence[str], x: Any = None) -> FloatArray:
        """Predicted cost in USD, ``(len(queries), n_models)``."""
        return self._predict_tokens(queries)

    def _predict_tokens(self, queries: Sequence[str]) -> FloatArray:
        if not hasattr(self, "intercept_"):
            raise NotFittedError("CostModel is not fitted")
        tokens = np.array([estimate_tokens(q) for q in queries], dtype=np.float64)
        pred = self.intercept_[None, :] + tokens[:, None] * self.slope_[None, :]
        return clip_inplace(pred, self.low_, self.high_)

    def get_state(self) -> dict[str, Any]:
        """Learned arrays, for saving (:func:`cost_model_from_state` reads them)."""
        return {
            "intercept": self.intercept_,
            "slope": self.slope_,
            "low": self.low_,
            "high": self.high_,
            "per_query": np.asarray([self.per_query]),
        }

    def _set_state(self, arrays: dict[str, Any]) -> None:
        self.per_query = bool(np.asarray(arrays.get("per_query", [True]))[0])
        self.intercept_ = np.asarray(arrays["intercept"], dtype=np.float64)
        self.slope_ = np.asarray(arrays["slope"], dtype=np.float64)
        self.low_ = np.asarray(arrays["low"], dtype=np.float64)
        self.high_ = np.asarray(arrays["high"], dtype=np.float64)


class FeatureCostModel(CostModel):
    """Per-query cost per model from the query's features (CARROT's cost predictor).

    ``log cost = log(token-linear cost) + x @ w_model + b_model``: the residual of the
    :class:`CostModel` on the log scale, regressed on the router's query features by ridge. For
    each model the ridge strength, or no correction at all, is chosen by K-fold
    cross-validation of the mean absolute cost error on the training queries, so the correction
    is only used where it predicts better (e.g. never when costs follow the prompt length
    exactly). Predictions are clipped to the range of costs seen in training.

    Args:
        alphas: Ridge strengths to try.
        cv: Folds.
        random_state: Seed of the folds.
    """

    def __init__(
        self,
        alphas: Sequence[float] = (1.0, 10.0),
        cv: int = 3,
        random_state: int = 0,
    ) -> None:
        super().__init__(per_query=True)
        self.alphas = tuple(float(a) for a in alphas)
        self.cv = cv
        self.random_state = random_state

    @staticmethod
    def _ridge(x: Any, r: FloatArray, alpha: float) -> tuple[FloatArray, FloatArray]:
        """Multi-output ridge with intercept; returns (coef (d, m), intercept (m,))."""
        from sklearn.linear_model import Ridge

        est = Ridge(alpha=alpha, fit_intercept=True, solver="auto").fit(x, r)
        coef = np.asarray(est.coef_, dtype=np.float64).reshape(r.shape[1], -1).T
        return coef, np.asarray(est.intercept_, dtype=np.float64).reshape(-1)

    kind = "features"

    def fit(self, data: RoutingData, x: Any = None) -> FeatureCostModel:
        """Fit on the training data and the router's features ``x`` of its queries."""
        if x is None:
            raise ValueError("FeatureCostModel.fit needs the features of the training queries")
        self._fit_tokens(data)
        costs = data.require_costs()
        base = self._predict_tokens(data.queries)
        floor = max(float(costs[costs > 0].min()) if np.any(costs > 0) else 1e-12, 1e-12) * 1e-3
        resid = np.log(np.maximum(costs, floor)) - np.log(np.maximum(base, floor))
        m = costs.shape[1]
        n = data.n_queries
        # Cross-validated mean absolute error per model: index 0 = no correction.
        errors = np.zeros((len(self.alphas) + 1, m))
        # Costs that follow the prompt length (and model) exactly leave nothing to learn.
        learnable = float(np.max(np.abs(resid - resid.mean(axis=0)))) > 1e-3
        if learnable and n >= 2 * max(self.cv, 2):
            for tr, va in kfold(n, self.cv, self.random_state):
                errors[0] += np.abs(base[va] - costs[va]).sum(axis=0)
                smear_base = None
                for a_i, alpha in enumerate(self.alphas, start=1):
                    coef, icpt = self._ridge(x[tr], resid[tr], alpha)
                    fit_tr = _dense(x[tr] @ coef) + icpt
                    smear_base = np.log(np.mean(np.exp(resid[tr] - fit_tr), axis=0))
                    pred = base[va] * np.exp(_dense(x[va] @ coef) + icpt + smear_base)
                    pred = np.clip(pred, self.low_, self.high_)
                    errors[a_i] += np.abs(pred - costs[va]).sum(axis=0)
        choice = np.argmin(errors, axis=0)  # ties (incl. too little data) -> no correction
        d = x.shape[1]
        coef_all = np.zeros((d, m))
        icpt_all = np.zeros(m)
        for a_i in sorted(set(choice.tolist()) - {0}):
            cols = np.flatnonzero(choice == a_i)
            coef, icpt = self._ridge(x, resid[:, cols], self.alphas[a_i - 1])
            fit = _dense(x @ coef) + icpt
            icpt = icpt + np.log(np.mean(np.exp(resid[:, cols] - fit), axis=0))
            coef_all[:, cols] = coef
            icpt_all[cols] = icpt
        self.alpha_choice_ = [None if c == 0 else self.alphas[c - 1] for c in choice]
        coef32 = coef_all.astype(np.float32)
        self.coef_: Any = sp.csr_matrix(coef32) if np.mean(coef32 == 0) > 0.5 else coef32
        self.resid_intercept_ = icpt_all
        return self

    def predict(self, queries: Sequence[str], x: Any = None) -> FloatArray:
        """Cost predictions given the queries and their features ``x``."""
        if x is None:
            raise ValueError("FeatureCostModel.predict needs the features of the queries")
        base = self._predict_tokens(queries)
        corr = self._rows.rmatmul(x) + self.resid_intercept_
        np.exp(corr, out=corr)
        corr *= base  # base * exp(corr)
        return clip_inplace(corr, self.low_, self.high_)

    @cached_property
    def _rows(self) -> RowMatrix:
        return RowMatrix(self.coef_)

    def get_state(self) -> dict[str, Any]:
        return {
            **super().get_state(),
            **pack_matrix("coef", self.coef_),
            "resid_intercept": self.resid_intercept_,
        }

    def _set_state(self, arrays: dict[str, Any]) -> None:
        super()._set_state(arrays)
        self.coef_ = unpack_matrix("coef", arrays)
        self.resid_intercept_ = np.asarray(arrays["resid_intercept"], dtype=np.float64)


def _dense(a: Any) -> FloatArray:
    if sp.issparse(a):
        a = a.toarray()
    return np.asarray(a, dtype=np.float64)


def pack_matrix(prefix: str, x: Any) -> dict[str, Any]:
    """Arrays of a dense or CSR matrix, for saving (:func:`unpack_matrix` reads them)."""
    if sp.issparse(x):
        csr = sp.csr_matrix(x)
        return {
            f"{prefix}.data": csr.data,
            f"{prefix}.indices": csr.indices,
            f"{prefix}.indptr": csr.indptr,
            f"{prefix}.shape": np.asarray(csr.shape, dtype=np.int64),
        }
    return {prefix: np.asarray(x)}


def unpack_matrix(prefix: str, arrays: dict[str, Any]) -> Any:
    """The matrix :func:`pack_matrix` saved under ``prefix``."""
    if prefix in arrays:
        return arrays[prefix]
    shape = tuple(int(v) for v in arrays[f"{prefix}.shape"])
    matrix = sp.csr_matrix(
        (arrays[f"{prefix}.data"], arrays[f"{prefix}.indices"], arrays[f"{prefix}.indptr"]),
        shape=shape,
    )
    # Saved files are untrusted: an index out of range would make scipy's compiled products
    # read outside the arrays (a crash, not an error), so check every index once here.
    matrix.check_format(full_check=True)
    return matrix


class MeanCostModel(CostModel):
    """Each model's mean training cost, the same for every query (a constant router's
    operating points are then exactly the single models' own)."""

    kind = "mean"

    def __init__(self) -> None:
        super().__init__(per_query=False)


class MeasuredCostModel(CostModel):
    """The measured cost of each training query (evaluation only: the oracle's costs).

    Raises:
        DataError: A query it was not fitted on.
    """

    kind = "measured"

    def fit(self, data: RoutingData, x: Any = None) -> MeasuredCostModel:
        self._fit_tokens(data)
        self.texts_ = list(data.queries)
        self.costs_ = data.require_costs().copy()
        return self

    def predict(self, queries: Sequence[str], x: Any = None) -> FloatArray:
        index = {q: i for i, q in enumerate(self.texts_)}
        try:
            return self.costs_[[index[q] for q in queries]]
        except KeyError:
            from llmrouter_core.errors import DataError

            raise DataError(
                "the measured cost model only knows the queries it was fitted on"
            ) from None

    def get_state(self) -> dict[str, Any]:
        texts = np.frombuffer(json.dumps(self.texts_).encode("utf-8"), dtype=np.uint8)
        return {**super().get_state(), "costs": self.costs_, "texts": texts}

    def _set_state(self, arrays: dict[str, Any]) -> None:
        super()._set_state(arrays)
        self.costs_ = np.asarray(arrays["costs"], dtype=np.float64)
        self.texts_ = json.loads(np.asarray(arrays["texts"], dtype=np.uint8).tobytes())


def make_cost_model(kind: str, random_state: int = 0) -> CostModel:
    """A fresh cost model of ``kind`` (one of :data:`COST_MODELS`)."""
    if kind == "tokens":
        return CostModel()
    if kind == "mean":
        return MeanCostModel()
    if kind == "measured":
        return MeasuredCostModel()
    if kind == "features":
        return FeatureCostModel(random_state=random_state)
    raise ValueError(f"cost_model must be one of {COST_MODELS}, got {kind!r}")


def cost_model_from_state(kind: str, arrays: dict[str, Any]) -> CostModel:
    """Rebuild a cost model saved with ``get_state()``."""
    model = make_cost_model(kind)
    model._set_state(arrays)
    return model
