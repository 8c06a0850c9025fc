"""The router contract: a scikit-learn style estimator that predicts quality and cost per pool
model, and a route step that turns those predictions into a typed :class:`Decision`.

Subclasses implement three hooks:

* ``_fit(data)`` learns from :class:`RoutingData` (the base class validates the data, fits the
  cost model and calibrates the knob);
* ``_predict_quality(queries)`` returns an ``(n, m)`` array of predicted quality in [0, 1];
* ``_get_state()`` / ``_set_state(meta, arrays)`` expose learned state as JSON + arrays, so
  every router saves and loads without pickle.

Everything else (the one cost-quality knob, budgets, sweeps, persistence, decisions) is shared.
"""

from __future__ import annotations

import inspect
import logging
import math
from collections.abc import Collection, Sequence
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt

from llmrouter_core.data.core import FloatArray, RoutingData
from llmrouter_core.decision import Decision
from llmrouter_core.errors import DataError, NotFittedError, UnknownModelError
from llmrouter_core.policy import (
    BudgetPolicy,
    CostWeightPolicy,
    Policy,
    ThresholdPolicy,
    choose,
    rank,
    rank_one,
    rank_rows,
)
from llmrouter_core.pool import ModelSpec, Pool
from llmrouter_core.routers.costs import CostModel

__all__ = ["Router"]

logger = logging.getLogger(__name__)

Arrays = dict[str, npt.NDArray[Any]]


class Router:
    """Base class of every router.

    Constructors only store keyword hyperparameters (no I/O); ``fit`` returns ``self``; learned
    state ends in ``_``; routing before ``fit`` raises :class:`NotFittedError`.

    The knob: ``cost_weight`` (lambda) in utility = quality - lambda x cost, with cost in USD
    per query. ``route(q, budget=B)`` resolves a target mean cost per query to a lambda through
    the calibration curve learned on the training queries; ``sweep(n)`` gives ``n`` lambdas
    from the cheapest operating point to the most quality-seeking one.
    """

    #: Registry name and algorithm family (set by subclasses).
    name: ClassVar[str] = ""
    family: ClassVar[str] = ""
    #: Routers that need the measured outcomes of the query itself (the oracle) cannot route
    #: unseen queries; they exist for evaluation only.
    evaluation_only: ClassVar[bool] = False
    #: Whether fit() with the same random_state gives identical predictions.
    deterministic: ClassVar[bool] = True

    models_: list[str]
    pool_: Pool
    #: Endpoint settings of a loaded router's file that were ignored (see ``load_router``).
    ignored_endpoints_: list[str]
    cost_model_: CostModel
    calibration_: dict[str, list[float]]

    # -- scikit-learn conventions -----------------------------------------
    @classmethod
    def _param_names(cls) -> list[str]:
        sig = inspect.signature(cls.__init__)
        return [
            p.name
            for p in sig.parameters.values()
            if p.name != "self" and p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)
        ]

    def get_params(self, deep: bool = False) -> dict[str, Any]:
        """Hyperparameters as passed to the constructor."""
        return {name: getattr(self, name) for name in self._param_names()}

    def set_params(self, **params: Any) -> Router:
        """Set hyperparameters; returns self."""
        valid = set(self._param_names())
        for key, value in params.items():
            if key not in valid:
                raise ValueError(
                    f"invalid parameter {key!r} for {type(self).__name__}; valid: {sorted(valid)}"
                )
            setattr(self, key, value)
        return self

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({params})"

    @property
    def is_fitted(self) -> bool:
        return hasattr(self, "models_")

    def _check_fitted(self) -> None:
        if not self.is_fitted:
            raise NotFittedError(
                f"this {type(self).__name__} is not fitted yet; call fit(data) first "
                "or load a trained router with llmrouter_core.load_router(path)"
            )

    # -- training ----------------------------------------------------------
    def fit(self, data: RoutingData, pool: Pool | None = None) -> Router:
        """Learn to route from measured outcomes.

        Args:
            data: Training data; scores must be complete (use the loaders' ``on_defect``).
                Costs come from ``data.costs`` or, where missing, from the pool's prices.
            pool: The models to route between, with prices and capabilities. Defaults to the
                data's models. Models in the pool but not in the data cannot be routed to and
                raise an error; models in the data but not in the pool are left out.

        Returns:
            self
        """
        data, pool = _prepare_training_data(data, pool)
        for attr in [a for a in vars(self) if a.endswith("_") and not a.startswith("__")]:
            delattr(self, attr)
        self.models_ = list(data.models)
        self.pool_ = pool
        self.cost_model_ = CostModel().fit(data)
        self.n_train_ = data.n_queries
        self._fit(data)
        self.calibration_ = self._calibrate(data.queries)
        return self

    def _fit(self, data: RoutingData) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    # -- prediction --------------------------------------------------------
    def _predict_quality(self, queries: Sequence[str]) -> FloatArray:  # pragma: no cover
        raise NotImplementedError

    def predict_quality(self, queries: Sequence[str]) -> FloatArray:
        """Predicted quality in [0, 1], shape ``(len(queries), len(models_))``."""
        self._check_fitted()
        queries = _check_queries(queries)
        return self._predict_quality(queries)

    def predict_cost(self, queries: Sequence[str]) -> FloatArray:
        """Predicted cost in USD, shape ``(len(queries), len(models_))``."""
        self._check_fitted()
        return self.cost_model_.predict(_check_queries(queries))

    def predict(self, queries: Sequence[str]) -> tuple[FloatArray, FloatArray]:
        """``(quality, cost)`` predictions, each ``(len(queries), len(models_))``."""
        self._check_fitted()
        queries = _check_queries(queries)
        return self._predict_quality(queries), self.cost_model_.predict(queries)

    # -- the knob ----------------------------------------------------------
    def _calibrate(self, queries: Sequence[str]) -> dict[str, list[float]]:
        """Mean predicted cost and quality of the chosen models over a lambda grid.

        Used to resolve budgets and to place sweep points evenly along the predicted
        cost-quality curve of the training queries.
        """
        q, c = self.predict(queries)
        grid = _cost_weight_grid(c)
        mean_cost, mean_quality = [], []
        rows = np.arange(q.shape[0])
        for w in grid:
            idx = choose(q, c, w)
            mean_cost.append(float(c[rows, idx].mean()))
            mean_quality.append(float(q[rows, idx].mean()))
        return {"cost_weight": grid, "mean_cost": mean_cost, "mean_quality": mean_quality}

    def sweep(self, n_points: int = 21) -> list[float]:
        """``n_points`` cost weights: point 0 is the cheapest, point ``n-1`` the most
        quality-seeking; intermediate points are spread evenly along the calibration curve."""
        self._check_fitted()
        if n_points < 1:
            raise ValueError("n_points must be >= 1")
        if n_points == 1:
            return [0.0]
        cal = self.calibration_
        w = np.asarray(cal["cost_weight"], dtype=np.float64)  # decreasing: inf ... 0
        cost = np.asarray(cal["mean_cost"])
        qual = np.asarray(cal["mean_quality"])
        c_span = max(cost.max() - cost.min(), 1e-300)
        q_span = max(qual.max() - qual.min(), 1e-300)
        steps = np.hypot(np.diff(cost) / c_span, np.diff(qual) / q_span)
        arc = np.concatenate(([0.0], np.cumsum(steps)))
        if arc[-1] <= 0:
            return [math.inf] + [0.0] * (n_points - 1)
        targets = np.linspace(0.0, arc[-1], n_points)
        out = []
        for k, t in enumerate(targets):
            if k == 0:
                out.append(math.inf)
            elif k == n_points - 1:
                out.append(0.0)
            else:
                i = int(np.searchsorted(arc, t, side="left"))
                out.append(float(w[min(i, len(w) - 1)]))
        # Non-increasing weights give non-decreasing cost (see policy.choose).
        for k in range(1, n_points):
            out[k] = min(out[k], out[k - 1])
        return out

    def cost_weight_for_budget(self, budget: float) -> float:
        """The smallest lambda whose mean predicted cost on the training queries is within
        ``budget`` USD per query (``inf`` if even the cheapest choice exceeds it)."""
        self._check_fitted()
        if not budget >= 0:
            raise ValueError("budget must be a non-negative number of USD per query")
        w = self.calibration_["cost_weight"]
        cost = self.calibration_["mean_cost"]
        for weight, c in zip(reversed(w), reversed(cost), strict=True):  # from lambda=0 upward
            if c <= budget + 1e-15:
                return float(weight)
        return math.inf

    # -- routing -----------------------------------------------------------
    def _resolve_weight(self, cost_weight: float | None, budget: float | None) -> float:
        if cost_weight is not None and budget is not None:
            raise ValueError("give either cost_weight or budget, not both")
        if budget is not None:
            return self.cost_weight_for_budget(budget)
        if cost_weight is None:
            return self.default_cost_weight
        if math.isnan(cost_weight) or cost_weight < 0:
            raise ValueError("cost_weight must be >= 0 (math.inf = cheapest model)")
        return float(cost_weight)

    @property
    def default_cost_weight(self) -> float:
        """The lambda used when none is given: quality first, ties to the cheaper model."""
        return 0.0

    def _allowed_mask(
        self, allowed: Collection[str] | None, cost: FloatArray, max_cost: float | None
    ) -> npt.NDArray[np.bool_] | None:
        mask: npt.NDArray[np.bool_] | None = None
        if allowed is not None:
            allowed_set = set(allowed)
            unknown = allowed_set.difference(self.models_)
            if unknown:
                raise UnknownModelError(
                    f"unknown models {sorted(unknown)}; the router knows {self.models_}"
                )
            if not allowed_set:
                raise DataError("no eligible model: 'allowed' is empty")
            mask = np.array([m in allowed_set for m in self.models_])
            mask = np.broadcast_to(mask, cost.shape).copy()
        if max_cost is not None:
            fits = cost <= max_cost
            base = np.ones(cost.shape, dtype=bool) if mask is None else mask
            # Where nothing fits the cap, keep the cheapest eligible model: the executor
            # enforces hard caps; the router still returns a ranked decision.
            within = base & fits
            empty = ~within.any(axis=1)
            if empty.any():
                cheapest = np.argmin(np.where(base, cost, np.inf), axis=1)
                within[empty, cheapest[empty]] = True
            mask = within
        return mask

    def route(
        self,
        query: str,
        *,
        cost_weight: float | None = None,
        budget: float | None = None,
        threshold: float | None = None,
        policy: Policy | None = None,
        allowed: Collection[str] | None = None,
        max_cost: float | None = None,
    ) -> Decision:
        """Route one query.

        Args:
            query: The text to route (e.g. the last user message).
            cost_weight: lambda in utility = quality - lambda x cost (USD); ``math.inf`` picks
                the cheapest model. Default: :attr:`default_cost_weight`.
            budget: Alternatively, a target mean cost per query in USD.
            threshold: Alternatively, for two-model pools: take the costlier model when its
                predicted quality gain over the cheaper one exceeds ``threshold``.
            policy: The same three forms as one typed object (:class:`CostWeightPolicy`,
                :class:`BudgetPolicy` or :class:`ThresholdPolicy`).
            allowed: Restrict the choice to these models (e.g. those that support tools).
            max_cost: Leave out models whose predicted cost exceeds this many USD.

        Returns:
            The :class:`Decision`; ``decision.model`` is the chosen model.
        """
        return self.route_batch(
            [query],
            cost_weight=cost_weight,
            budget=budget,
            threshold=threshold,
            policy=policy,
            allowed=allowed,
            max_cost=max_cost,
        )[0]

    def route_batch(
        self,
        queries: Sequence[str],
        *,
        cost_weight: float | None = None,
        budget: float | None = None,
        threshold: float | None = None,
        policy: Policy | None = None,
        allowed: Collection[str] | None = None,
        max_cost: float | None = None,
    ) -> list[Decision]:
        """Route many queries at once (vectorised prediction); arguments as :meth:`route`."""
        self._check_fitted()
        cost_weight, budget, threshold = _unpack_policy(policy, cost_weight, budget, threshold)
        weight = self._resolve_weight(cost_weight, budget) if threshold is None else math.nan
        q, c = self.predict(queries)
        mask = self._allowed_mask(allowed, c, max_cost)
        models = self.models_
        q_rows, c_rows = q.tolist(), c.tolist()
        # One lambda for the batch: rank every row at once; the threshold form has one per row.
        orders: list[Any] = []
        if threshold is None and len(q_rows) == 1:  # one query: plain Python, same result
            orders = [rank_one(q_rows[0], c_rows[0], weight, None if mask is None else mask[0])]
        elif threshold is None:
            orders = rank_rows(q, c, weight, mask)
        out = []
        for i in range(q.shape[0]):
            if threshold is not None:
                weight = self._threshold_weight(q[i], c[i], threshold)
                order = rank(q[i], c[i], weight, None if mask is None else mask[i])
            else:
                order = orders[i]
            chosen = models[order[0]]
            quality = dict(zip(models, q_rows[i], strict=True))
            cost = dict(zip(models, c_rows[i], strict=True))
            out.append(
                Decision(
                    model=chosen,
                    ranked=tuple(models[j] for j in order),
                    quality=quality,
                    cost=cost,
                    cost_weight=weight,
                    router=self.name or type(self).__name__,
                    reason=(
                        f"{chosen}: predicted quality {quality[chosen]:.3f} at "
                        f"${cost[chosen]:.6f} (cost weight {weight:g})"
                    ),
                )
            )
        return out

    def _threshold_weight(self, q: FloatArray, c: FloatArray, threshold: float) -> float:
        """The per-query lambda equivalent to "the costlier model iff its predicted quality gain
        exceeds ``threshold``" (a gain equal to it is a tie, which goes to the cheaper model)."""
        if len(self.models_) != 2:
            raise ValueError(
                f"the threshold form needs a two-model pool; this router has {len(self.models_)}"
            )
        if math.isnan(threshold):
            raise ValueError("threshold must be a number")
        strong = int(np.argmax(c))
        dc = float(c[strong] - c[1 - strong])
        if dc <= 0:  # same predicted cost: quality decides
            return 0.0
        return float(threshold) / dc  # negative for a negative threshold: strong preferred

    def choose_indices(
        self, queries: Sequence[str], cost_weights: Sequence[float]
    ) -> npt.NDArray[np.intp]:
        """Chosen model index per (operating point, query): shape ``(len(cost_weights), n)``.

        One prediction pass serves every operating point (used by sweeps and evaluation).
        """
        q, c = self.predict(queries)
        return (
            np.stack([choose(q, c, w) for w in cost_weights])
            if len(cost_weights)
            else np.empty((0, len(queries)), dtype=np.intp)
        )

    # -- persistence -------------------------------------------------------
    def _get_state(self) -> tuple[dict[str, Any], Arrays]:  # pragma: no cover - abstract
        raise NotImplementedError

    def _set_state(self, meta: dict[str, Any], arrays: Arrays) -> None:  # pragma: no cover
        raise NotImplementedError

    def save(self, path: Any) -> None:
        """Save to a directory of plain files (``router.json`` + ``arrays.npz``)."""
        from llmrouter_core.routers.persistence import save_router

        save_router(self, path)


# -- helpers -------------------------------------------------------------------


def _unpack_policy(
    policy: Policy | None,
    cost_weight: float | None,
    budget: float | None,
    threshold: float | None,
) -> tuple[float | None, float | None, float | None]:
    given = [x for x in (cost_weight, budget, threshold) if x is not None]
    if len(given) > 1 or (policy is not None and given):
        raise ValueError("give one of policy, cost_weight, budget or threshold")
    if policy is None:
        return cost_weight, budget, threshold
    if isinstance(policy, CostWeightPolicy):
        return policy.cost_weight, None, None
    if isinstance(policy, BudgetPolicy):
        return None, policy.max_mean_cost, None
    if isinstance(policy, ThresholdPolicy):
        return None, None, policy.threshold
    raise TypeError(f"unknown policy type {type(policy).__name__}")


def _check_queries(queries: Sequence[str]) -> list[str]:
    if isinstance(queries, str):
        raise TypeError("expected a sequence of query strings, got one string; use route()")
    out = list(queries)
    for i, q in enumerate(out):
        if not isinstance(q, str):
            raise TypeError(f"queries must be strings, got {type(q).__name__} at position {i}")
        if not q.strip():
            raise DataError(f"query at position {i} is empty; there is nothing to route on")
    return out


def _cost_weight_grid(cost: FloatArray) -> list[float]:
    """Lambdas from ``inf`` (cheapest) down to 0, dense where choices change."""
    finite = cost[np.isfinite(cost)]
    pos = finite[finite > 0]
    if pos.size == 0:
        return [math.inf, 0.0]
    lo = 1e-4 / float(pos.max())
    hi = 1e4 / float(pos.min())
    grid = np.geomspace(hi, lo, 240).tolist()
    return [math.inf, *grid, 0.0]


def _prepare_training_data(data: RoutingData, pool: Pool | None) -> tuple[RoutingData, Pool]:
    if not isinstance(data, RoutingData):
        raise TypeError(f"fit() expects RoutingData, got {type(data).__name__}")
    if data.n_queries == 0:
        raise DataError("cannot fit a router on empty data")
    if pool is None:
        pool = Pool(ModelSpec(m) for m in data.models)
    missing = [m for m in pool.names if m not in data.models]
    if missing:
        raise UnknownModelError(
            f"pool models without training data: {', '.join(missing)}; "
            f"the data has: {', '.join(data.models)}"
        )
    extra = [m for m in data.models if m not in pool.names]
    if extra:
        logger.info("leaving out models not in the pool: %s", ", ".join(extra))
    data = data.select_models(list(pool.names))
    if np.isnan(data.scores).any():
        bad = np.flatnonzero(np.isnan(data.scores).any(axis=1))
        ids = ", ".join(data.query_ids[i] for i in bad[:5])
        raise DataError(
            f"{bad.size} training queries have missing scores (e.g. {ids}); load the data with "
            "on_defect='drop' to drop them"
        )
    if data.costs is None or np.isnan(data.costs).any():
        if not all(s.has_prices for s in pool):
            raise DataError(
                "the data has no (or incomplete) costs and the pool has no prices to derive "
                "them from; give a pool file with input_price/output_price per model"
            )
        data = data.with_costs_from_pool(pool)
    return data, pool
