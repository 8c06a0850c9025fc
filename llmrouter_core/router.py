"""The one composable router: embedder + scorer + cost model + policy.

:class:`Router` is every router of this library. Its parts are chosen independently:

* the **embedder** turns a query into features (``"hashing"``, ``"minilm"``, ...);
* the **scorer** predicts each pool model's quality from them (any scorer of
  :mod:`llmrouter_core.scoring`, or any scikit-learn regressor), trained with a **recipe**
  (pointwise, pairwise, contrastive, online) it accepts;
* the **cost model** predicts each model's cost in USD (``"tokens"``: from the prompt's
  length; ``"features"``: corrected by the query features);
* the **policy** turns predictions into a decision (the cost-quality knob, a budget, a
  threshold, a cascade, a fan-out; :mod:`llmrouter_core.policy`). A policy with learned
  state (``fit(data, context)``: FrugalGPT's, AutoMix's, see :mod:`llmrouter_core.cascades`)
  is fitted, as a copy, after the scorer (``policy_``) and routes by default.

``fit`` chooses the scorer's hyperparameters, and how far to trust it against each model's
mean score, by cross-validated AIQ on the training data (so a scorer that does not beat "the
best single model for the budget" falls back to it), then calibrates the knob on the training
queries. Every registered router name is a configured composition (``"mf"`` = the bilinear
scorer trained with the pairwise recipe); :func:`make_router` builds any other.

Routing is thread-safe: prediction reads the fitted state and never changes it (online
feedback takes a lock).

Example:
    >>> from sklearn.neighbors import KNeighborsRegressor
    >>> router = make_router(scorer=KNeighborsRegressor(10))
    >>> router.scorer
    KNeighborsRegressor(n_neighbors=10)
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from sklearn.base import BaseEstimator, clone

from llmrouter_core._math import clip_inplace
from llmrouter_core.data.core import FloatArray, RoutingData
from llmrouter_core.decision import Decision
from llmrouter_core.errors import DataError, NotFittedError, UnknownModelError
from llmrouter_core.features import get_embedder
from llmrouter_core.features.base import Embedder, fit_transform
from llmrouter_core.policy import (
    Anchor,
    BudgetPolicy,
    Calibration,
    Policy,
    PolicyFitContext,
    RouteContext,
    ThresholdPolicy,
    UtilityPolicy,
    choose,
    eligible,
)
from llmrouter_core.policy.base import check_cost_weight
from llmrouter_core.pool import ModelSpec, Pool
from llmrouter_core.scoring import resolve_scorer
from llmrouter_core.scoring.base import FitContext, Scorer, Selection, Tags
from llmrouter_core.training.costs import COST_MODELS, CostModel, make_cost_model
from llmrouter_core.training.projection import Projector
from llmrouter_core.training.recipes import RECIPES
from llmrouter_core.training.selection import kfold

__all__ = ["OperatingPoint", "Router", "check_queries", "make_router", "prepare_training_data"]

logger = logging.getLogger(__name__)

# Online feedback changes a fitted scorer; routing reads it. Feedback is rare next to
# routing, so one lock for every router is enough.
_FEEDBACK_LOCK = threading.Lock()


class Router(BaseEstimator):  # type: ignore[misc]
    """A router: embedder + scorer + cost model + policy (see the module docstring).

    Args:
        scorer: A scorer name (``"knn"``, ``"ridge"``, ``"irt"``, ...), a
            :class:`~llmrouter_core.scoring.base.Scorer`, or any scikit-learn regressor
            (``fit(X, Y)`` / ``predict(X)``; wrapped one per model when it is not
            multi-output).
        embedder: Embedder name (``"hashing"``, ``"minilm"``, ``"minilm-torch"``).
        embedder_params: Keyword arguments of the embedder.
        cost_model: ``"features"`` or ``"tokens"`` (see the module docstring).
        policy: The default policy of :meth:`route` (``None``: the knob at
            :attr:`default_cost_weight`). A policy with a ``fit(data, context)`` method is
            fitted (a copy, ``policy_``) after the scorer, and routes with the request's cost
            weight or budget.
        recipe: The training recipe (``None``: the scorer's default).
        cv: Folds of the cross-validation that chooses hyperparameters and the blend.
        blend: Weight of the scorer against the per-model mean score (``None``: chosen by
            cross-validation; ``1``: the scorer alone).
        n_components: Dense dimensions of the projection that latent-vector scorers read.
        random_state: Seed of every stochastic part.

    The attributes below exist once the router is fitted.

    Attributes:
        models_: The pool models routed between, in prediction-column order.
        pool_: The pool (prices, capabilities, endpoints).
        scorer_: The fitted scorer, with the chosen hyperparameters.
        blend_: The chosen blend.
        best_params_: The chosen hyperparameters.
        cv_results_: Every candidate's cross-validated AIQ.
        calibration_: The knob's calibration on the training queries (a trained policy's
            own, if it has one).
        policy_: The fitted copy of a trained policy (absent for other policies).
        prior_: Mean training score per model (the best single model for each budget).
        margin_: Predicted-utility gain needed to leave the anchor model (0: none; the
            default router chooses it by cross-validation, see ``StackScorer.guard``).
        anchor_per_budget_: Whether the anchor is the best single model for each budget
            (with a margin of 1: routing as ``single``) rather than the best training model.
        unmeasured_models_: Pool models without training data (left out).
    """

    #: Registry name of this composition (``"custom"`` for one built by hand).
    name: str = "custom"
    family: str = "custom"
    #: Whether :meth:`feedback` takes per-user feedback, ``feedback(user, query, model,
    #: rating=..., preferred_over=...)`` (a personalized router); callers check this flag.
    supports_feedback: bool = False

    models_: list[str]
    pool_: Pool
    scorer_: Scorer
    cost_model_: CostModel
    calibration_: Calibration
    ignored_endpoints_: list[str]

    def __init__(
        self,
        scorer: Any = "ridge",
        *,
        embedder: str = "hashing",
        embedder_params: dict[str, Any] | None = None,
        cost_model: str = "features",
        policy: Policy | None = None,
        recipe: str | None = None,
        cv: int = 3,
        blend: float | None = None,
        n_components: int = 64,
        random_state: int = 0,
    ) -> None:
        self.scorer = scorer
        self.embedder = embedder
        self.embedder_params = embedder_params
        self.cost_model = cost_model
        self.policy = policy
        self.recipe = recipe
        self.cv = cv
        self.blend = blend
        self.n_components = n_components
        self.random_state = random_state

    # -- conventions -----------------------------------------------------------
    def __repr__(self, N_CHAR_MAX: int = 700) -> str:
        if self.name != "custom":
            return f"<Router {self.name!r} {super().__repr__(N_CHAR_MAX)}>"
        return str(super().__repr__(N_CHAR_MAX))

    @property
    def is_fitted(self) -> bool:
        return hasattr(self, "models_")

    def _check_fitted(self) -> None:
        if not self.is_fitted:
            raise NotFittedError(
                f"this {self.name} router is not fitted yet; call fit(data) first "
                "or load a trained router with llmrouter_core.load_router(path)"
            )

    def _template(self) -> Scorer:
        """The scorer as a :class:`Scorer` (a name or a plain estimator is wrapped)."""
        return resolve_scorer(self.scorer)

    @property
    def tags(self) -> Tags:
        """The capabilities of this router's scorer and trained policy (see
        :class:`~.scoring.base.Tags`)."""
        tags = (self.scorer_ if self.is_fitted else self._template()).tags
        extra = getattr(self.policy, "tags", None)
        return tags.merged(extra if isinstance(extra, Tags) else None)

    @property
    def trained_policy(self) -> Any:
        """The fitted trained policy (``policy_``), or ``None``."""
        return getattr(self, "policy_", None)

    def _check_params(self, scorer: Scorer) -> str:
        if self.cost_model not in COST_MODELS:
            raise ValueError(f"cost_model must be one of {COST_MODELS}, got {self.cost_model!r}")
        if not isinstance(self.cv, int) or isinstance(self.cv, bool) or self.cv < 2:
            raise ValueError(f"cv must be an integer >= 2, got {self.cv!r}")
        if self.blend is not None and not 0.0 <= float(self.blend) <= 1.0:
            raise ValueError(f"blend must be in [0, 1] or None, got {self.blend!r}")
        if int(self.n_components) < 1:
            raise ValueError(f"n_components must be >= 1, got {self.n_components!r}")
        recipe = self.recipe or scorer.tags.recipes[0]
        if recipe not in RECIPES:
            raise ValueError(f"unknown recipe {recipe!r}; known: {', '.join(RECIPES)}")
        if recipe not in scorer.tags.recipes:
            raise ValueError(
                f"the {type(scorer).__name__} scorer cannot be trained with the {recipe!r} "
                f"recipe; it takes: {', '.join(scorer.tags.recipes)}"
            )
        scorer.check_params()
        return recipe

    def check_params(self) -> None:
        """Raise ``ValueError`` on a bad hyperparameter of the router or its scorer, before
        any data is read (``fit`` checks the same)."""
        self._check_params(self._template())

    # -- training ----------------------------------------------------------------
    def fit(
        self, data: RoutingData, pool: Pool | None = None, *, on_unmeasured: str = "warn"
    ) -> Router:
        """Learn to route from measured outcomes.

        Args:
            data: Training data; scores must be complete (use the loaders' ``on_defect``).
                Costs come from ``data.costs`` or, where missing, from the pool's prices.
            pool: The models to route between, with prices and capabilities (default: the
                data's models). Pool models without training data cannot be routed to until
                measured: they are left out, with one warning, and listed in
                ``unmeasured_models_``. Models in the data but not in the pool are ignored.
            on_unmeasured: ``"warn"`` (default) or ``"error"``: raise
                :class:`UnknownModelError` when pool models have no training data.

        Returns:
            self
        """
        scorer = self._template()
        recipe = self._check_params(scorer)
        data, pool, unmeasured = prepare_training_data(data, pool, on_unmeasured)
        for attr in [a for a in vars(self) if a.endswith("_") and not a.startswith("__")]:
            delattr(self, attr)
        try:
            self._fit(scorer, recipe, data, pool)
        except BaseException:
            # A failed fit leaves no half-fitted router behind.
            for attr in [a for a in vars(self) if a.endswith("_") and not a.startswith("__")]:
                delattr(self, attr)
            raise
        self.unmeasured_models_ = unmeasured
        return self

    def _fit(self, scorer: Scorer, recipe: str, data: RoutingData, pool: Pool) -> None:
        queries = list(data.queries)
        x: Any = None
        if scorer.input != "text" or self.cost_model == "features":
            self.embedder_: Embedder | None = self._new_embedder()
            x = fit_transform(self.embedder_, queries)
        else:
            self.embedder_ = None
        cost_model = make_cost_model(self.cost_model, self.random_state).fit(data, x)
        cost_pred = cost_model.predict(queries, x)
        self.projector_: Projector | None = None
        if scorer.input in ("dense", "dense_raw"):
            self.projector_ = Projector(
                int(self.n_components),
                random_state=self.random_state,
                standardize=scorer.input == "dense",
            ).fit(x)
        inputs = self._inputs(queries, x, scorer)
        y = data.scores
        context = FitContext(
            models=tuple(data.models),
            random_state=int(self.random_state),
            recipe=recipe,
            tasks=None if data.tasks is None else np.asarray(data.tasks, dtype=object),
            queries=queries,
            pool=pool,
            costs=data.require_costs(),
        )
        selection = Selection(
            folds=list(kfold(data.n_queries, self.cv, self.random_state)),
            scores=y,
            costs=data.require_costs(),
            cost_pred=cost_pred,
            enabled=data.n_queries >= 2 * max(self.cv, 2),
        )
        selected = scorer.select(inputs, y, context, selection, self.blend)
        self.models_ = list(data.models)
        self.pool_ = pool
        self.cost_model_ = cost_model
        self.n_train_ = data.n_queries
        self.prior_ = y.mean(axis=0)
        self.scorer_ = selected.scorer
        self.blend_ = float(selected.blend)
        self.best_params_ = selected.params
        self.cv_results_ = selected.report
        if selected.cv_score is not None:
            self.cv_aiq_ = float(selected.cv_score)
        rows = self.scorer_.calibration_rows()
        if rows is not None:  # e.g. the LLM judge's rated slice (each prediction is a call)
            inputs = [inputs[i] for i in rows] if isinstance(inputs, list) else inputs[rows]
            cost_pred = cost_pred[rows]
        self.margin_ = float(selected.margin)
        self.anchor_per_budget_ = bool(selected.anchor_per_budget)
        quality = self._blended(self.scorer_.predict_many(inputs))
        self.calibration_ = Calibration.from_predictions(quality, cost_pred, self.anchor)
        if callable(getattr(self.policy, "fit", None)):
            self._fit_policy(data, quality, cost_pred, rows)

    def _fit_policy(
        self, data: RoutingData, quality: FloatArray, cost: FloatArray, rows: Any
    ) -> None:
        """Fit a copy of the trained policy on the training data and this router's own
        predictions of it; its calibration, if it has one, replaces the knob's."""
        policy = clone(self.policy, safe=False)
        context = PolicyFitContext(
            models=tuple(self.models_),
            quality=quality,
            cost=cost,
            rows=None if rows is None else np.asarray(rows, dtype=np.intp),
            cv=int(self.cv),
            random_state=int(self.random_state),
        )
        fitted = policy.fit(data, context)
        self.policy_ = policy if fitted is None else fitted
        calibration = getattr(self.policy_, "calibration_", None)
        if isinstance(calibration, Calibration):
            self.calibration_ = calibration

    def _new_embedder(self) -> Embedder:
        return get_embedder(self.embedder, **(self.embedder_params or {}))

    def _inputs(self, queries: Sequence[str], x: Any, scorer: Scorer) -> Any:
        if scorer.input == "text":
            return list(queries)
        if scorer.input in ("dense", "dense_raw"):
            assert self.projector_ is not None
            return self.projector_.transform(x)
        return x

    def _blended(self, q: FloatArray) -> FloatArray:
        if self.blend_ < 1.0:
            q = self.blend_ * q + (1.0 - self.blend_) * self.prior_
        return clip_inplace(np.array(q, dtype=np.float64), 0.0, 1.0)

    # -- prediction ----------------------------------------------------------------
    def _features(self, queries: Sequence[str]) -> Any:
        return None if self.embedder_ is None else self.embedder_.transform(queries)

    def predict(self, queries: Sequence[str]) -> tuple[FloatArray, FloatArray]:
        """``(quality, cost)`` predictions, each ``(len(queries), len(models_))``."""
        self._check_fitted()
        queries = check_queries(queries)
        x = self._features(queries)
        q = self._blended(self.scorer_.predict(self._inputs(queries, x, self.scorer_)))
        return q, self.cost_model_.predict(queries, x)

    def predict_quality(self, queries: Sequence[str]) -> FloatArray:
        """Predicted quality in [0, 1], shape ``(len(queries), len(models_))``."""
        return self.predict(queries)[0]

    def predict_cost(self, queries: Sequence[str]) -> FloatArray:
        """Predicted cost in USD, shape ``(len(queries), len(models_))``."""
        self._check_fitted()
        queries = check_queries(queries)
        return self.cost_model_.predict(queries, self._features(queries))

    @property
    def anchor(self) -> Anchor | None:
        """Routing's anchor (leave the best single model for the budget only for a predicted
        gain above ``margin_``), or ``None`` without a margin."""
        margin = float(getattr(self, "margin_", 0.0))
        per_budget = bool(getattr(self, "anchor_per_budget_", False))
        return Anchor(self.prior_, margin, per_budget) if margin > 0 else None

    # -- the knob ----------------------------------------------------------------------
    @property
    def default_cost_weight(self) -> float:
        """The cost weight used when none is given: the policy's ``cost_weight`` if it has
        one, else 0 (quality first, ties to the cheaper)."""
        weight = getattr(self.policy, "cost_weight", None)
        if isinstance(weight, int | float) and not isinstance(weight, bool):
            return float(weight)
        return 0.0

    def operating_point(self) -> OperatingPoint:
        """The knob's sensible default: the largest cost weight (the lowest mean predicted
        cost on the training queries) whose mean predicted quality reaches the best single
        training model's mean score; cost weight 0 if routing never reaches it. The CLI's
        ``chat`` and ``infer`` use it when no ``--cost-weight`` is given.

        Example:
            >>> from llmrouter_core.testing import make_routing_data
            >>> router = make_router().fit(make_routing_data(120))
            >>> point = router.operating_point()
            >>> point.mean_quality >= point.reference_quality - 1e-9 or point.cost_weight == 0
            True
        """
        self._check_fitted()
        best = int(np.argmax(self.prior_))
        target = float(self.prior_[best])
        cal = self.calibration_
        k = cal.point_for_quality(target)
        return OperatingPoint(
            cost_weight=float(cal.cost_weight[k]),
            mean_cost=float(cal.mean_cost[k]),
            mean_quality=float(cal.mean_quality[k]),
            reference_model=self.models_[best],
            reference_quality=target,
        )

    def sweep(self, n_points: int = 21) -> list[float]:
        """``n_points`` cost weights: point 0 is the cheapest, point ``n - 1`` the most
        quality-seeking; intermediate points are spread evenly along the calibration curve."""
        self._check_fitted()
        return self.calibration_.sweep(n_points)

    def cost_weight_for_budget(self, budget: float) -> float:
        """The smallest cost weight whose mean predicted cost on the training queries is
        within ``budget`` USD per query (``inf`` if even the cheapest choice exceeds it)."""
        self._check_fitted()
        return self.calibration_.weight_for_budget(budget)

    # -- routing -----------------------------------------------------------------------------
    def _policy_for(
        self,
        policy: Policy | None,
        cost_weight: float | None,
        budget: float | None,
        threshold: float | None,
    ) -> tuple[Policy, float]:
        """The policy that decides, and the cost weight it reads when it names none."""
        given = [x for x in (budget, threshold) if x is not None]
        if cost_weight is not None:
            given.append(cost_weight)
        if len(given) > 1 or (policy is not None and (budget is not None or threshold is not None)):
            raise ValueError("give one of policy, cost_weight, budget or threshold")
        weight = self.default_cost_weight if cost_weight is None else check_cost_weight(cost_weight)
        if policy is not None:
            if not isinstance(policy, Policy):
                raise TypeError(
                    f"policy must have a decide(quality, cost, context) method, got "
                    f"{type(policy).__name__}"
                )
            return policy, weight  # a cost weight given with it is the one it reads
        trained = self.trained_policy
        if trained is not None:
            if threshold is not None:
                raise ValueError(
                    f"the {self.name} router's {type(trained).__name__} has no two-model "
                    "threshold form; give cost_weight or budget"
                )
            if budget is not None:
                weight = self.calibration_.weight_for_budget(budget)
            return trained, weight
        if cost_weight is not None:
            return UtilityPolicy(weight), weight
        if budget is not None:
            return BudgetPolicy(budget), weight
        if threshold is not None:
            return ThresholdPolicy(threshold), weight
        return (self.policy if self.policy is not None else UtilityPolicy()), weight

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
        user: str | None = None,
    ) -> Decision:
        """Route one query.

        Args:
            query: The text to route (e.g. the last user message).
            cost_weight: lambda in utility = quality - lambda x cost (USD); ``math.inf``
                picks the cheapest model. Default: the router's policy.
            budget: Alternatively, a target mean cost per query in USD.
            threshold: Alternatively, for two-model pools: take the costlier model when its
                predicted quality gain over the cheaper one exceeds ``threshold``.
            policy: Any :class:`~llmrouter_core.policy.Policy` (a cascade, a fan-out, ...);
                with ``cost_weight``, the weight it reads when it names none.
            allowed: Restrict the choice to these models (e.g. those that support tools).
            max_cost: Leave out models whose predicted cost exceeds this many USD.
            user: Who asks. Every router accepts it; only a personalized router (see
                :mod:`llmrouter_core.personalized`) reads it, the others ignore it.

        Returns:
            The :class:`~llmrouter_core.Decision`; ``decision.model`` is the chosen model.
        """
        return self.route_batch(
            [query],
            cost_weight=cost_weight,
            budget=budget,
            threshold=threshold,
            policy=policy,
            allowed=allowed,
            max_cost=max_cost,
            user=user,
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
        user: str | None = None,
    ) -> list[Decision]:
        """Route many queries at once (vectorised prediction); arguments as :meth:`route`
        (``user``: who asks all of them; ignored by routers that are not personalized)."""
        self._check_fitted()
        chosen, weight = self._policy_for(policy, cost_weight, budget, threshold)
        q, c = self.predict(queries)
        return chosen.decide(
            q, c, self._context(weight, eligible(self.models_, c, allowed, max_cost))
        )

    def _context(self, weight: float, mask: Any = None) -> RouteContext:
        return RouteContext(
            models=tuple(self.models_),
            router=self.name,
            calibration=self.calibration_,
            default_cost_weight=weight,
            mask=mask,
            anchor=self.anchor,
        )

    def choose_indices(
        self, queries: Sequence[str], cost_weights: Sequence[float]
    ) -> npt.NDArray[np.intp]:
        """Chosen model index per (operating point, query): ``(len(cost_weights), n)`` (with
        a trained policy: the first model its decisions call).

        One prediction pass serves every operating point (used by sweeps and evaluation).
        """
        q, c = self.predict(queries)
        return self.choices(q, c, cost_weights)

    def choices(
        self, quality: FloatArray, cost: FloatArray, cost_weights: Sequence[float]
    ) -> npt.NDArray[np.intp]:
        """The model each query goes to at each cost weight, ``(len(cost_weights), n)``,
        given this router's predictions: routing's own ranking (the anchor margin included;
        with a trained policy, the first model its decisions call)."""
        if not len(cost_weights):
            return np.empty((0, quality.shape[0]), dtype=np.intp)
        trained = self.trained_policy
        if trained is None:
            anchor = self.anchor
            picks = [
                choose(quality if anchor is None else anchor.ranked(quality, cost, w), cost, w)
                for w in cost_weights
            ]
            return np.stack(picks)
        index = {m: j for j, m in enumerate(self.models_)}
        rows = []
        for w in cost_weights:
            chosen = trained.decide(quality, cost, self._context(float(w)))
            rows.append([index[d.model] for d in chosen])
        return np.asarray(rows, dtype=np.intp)

    # -- cascades ----------------------------------------------------------------------------
    def acceptor(self, name: str) -> Any:
        """The object that scores a cascade stage's answer for a
        :class:`~llmrouter_core.decision.CascadePlan` whose acceptor is ``name`` (the executor
        asks it; see :mod:`llmrouter_core.execution.plans`).

        * ``"frugalgpt"``: the trained answer scorer of a router fitted with
          :class:`~llmrouter_core.cascades.FrugalGPTPolicy`;
        * ``"verify"``: AutoMix's verifier: the trained policy's (AutoMix's own settings), or
          else a default :class:`~llmrouter_core.cascades.Verifier` (each stage's model
          verifies its own answer), so ``CascadePolicy(acceptor="verify")`` works with every
          scorer.

        Raises:
            ValueError: No acceptor of that name for this router.
        """
        trained = self.trained_policy
        own = getattr(trained, "acceptor", None)
        found = own(name) if callable(own) else None
        if found is not None:
            return found
        if name == "verify":
            from llmrouter_core.cascades.automix import Verifier

            return Verifier()
        raise ValueError(
            f"the {self.name} router has no cascade acceptor {name!r}: 'verify' works with "
            "every router; 'frugalgpt' needs one fitted with FrugalGPT's policy "
            "(get_router('frugalgpt'))"
        )

    # -- online learning -------------------------------------------------------------------
    def feedback(self, query: str, model: str, score: float) -> None:
        """Learn from one observed outcome: ``model`` answered ``query`` with ``score``
        (routers whose scorer is tagged ``online``, e.g. ``bandit``).

        Raises:
            NotImplementedError: The scorer does not learn online.
            UnknownModelError: ``model`` is not in the pool.
            DataError: ``score`` is not a number in [0, 1].
        """
        self.feedback_batch([query], [model], [score])

    def feedback_batch(
        self, queries: Sequence[str], models: Sequence[str], scores: Sequence[float]
    ) -> None:
        """:meth:`feedback` for several outcomes, applied in order."""
        self._check_fitted()
        if not self.scorer_.tags.online:
            raise NotImplementedError(
                f"the {self.name} router does not learn online; routers that do: bandit"
            )
        queries = check_queries(queries)
        if not len(queries) == len(models) == len(scores):
            raise DataError("queries, models and scores must have the same length")
        arms = []
        for model in models:
            if model not in self.models_:
                raise UnknownModelError(f"unknown model {model!r}; the router knows {self.models_}")
            arms.append(self.models_.index(model))
        values = []
        for s in scores:
            try:
                v = float(s)
            except (TypeError, ValueError):
                raise DataError(f"score must be a number in [0, 1], got {s!r}") from None
            if not 0.0 <= v <= 1.0:
                raise DataError(f"score must be a number in [0, 1], got {s!r}")
            values.append(v)
        inputs = self._inputs(queries, self._features(queries), self.scorer_)
        with _FEEDBACK_LOCK:
            for i, (arm, v) in enumerate(zip(arms, values, strict=True)):
                row = [inputs[i]] if isinstance(inputs, list) else inputs[i : i + 1]
                self.scorer_.partial_fit(row, arm, v)

    # -- persistence -----------------------------------------------------------------------
    def save(self, path: Any) -> Any:
        """Save to a directory of plain files (``router.json`` + ``arrays.npz``; see
        :func:`llmrouter_core.saving.save_router`)."""
        from llmrouter_core.saving import save_router

        return save_router(self, path)


# -- helpers -------------------------------------------------------------------------------


def make_router(
    scorer: Any = "stack",
    *,
    policy: Policy | None = None,
    embedder: str = "hashing",
    recipe: str | None = None,
    **params: Any,
) -> Router:
    """Compose a router from parts.

    Args:
        scorer: A scorer name (see :func:`llmrouter_core.scoring.list_scorers`), a
            :class:`~llmrouter_core.scoring.base.Scorer`, or any scikit-learn regressor.
        policy: The default routing policy (``None``: the cost-quality knob).
        embedder: Embedder name.
        recipe: Training recipe the scorer accepts (``None``: its default).
        **params: Further :class:`Router` parameters (``cost_model``, ``cv``, ``blend``,
            ``n_components``, ``random_state``, ``embedder_params``).

    Example:
        >>> make_router("knn", cost_model="tokens").cost_model
        'tokens'
    """
    return Router(scorer, policy=policy, embedder=embedder, recipe=recipe, **params)


def check_queries(queries: Sequence[str]) -> list[str]:
    """``queries`` as a list of non-empty strings (``TypeError`` / ``DataError`` otherwise)."""
    if isinstance(queries, str):
        raise TypeError("expected a sequence of query strings, got one string; use route()")
    out = list(queries)
    for i, q in enumerate(out):
        if not isinstance(q, str):
            raise TypeError(f"queries must be strings, got {type(q).__name__} at position {i}")
        if not q.strip():
            raise DataError(f"query at position {i} is empty; there is nothing to route on")
    return out


@dataclass(frozen=True)
class OperatingPoint:
    """A point of a router's cost-quality curve (means over its training queries).

    Attributes:
        cost_weight: The knob's value there (lambda in quality - lambda x cost).
        mean_cost: Mean predicted cost per query (USD).
        mean_quality: Mean predicted quality (0..1).
        reference_model: The best single training model (highest mean score).
        reference_quality: Its mean training score, the quality aimed at.
    """

    cost_weight: float
    mean_cost: float
    mean_quality: float
    reference_model: str
    reference_quality: float

    def describe(self) -> str:
        """One line for users, e.g. on the CLI's stderr."""
        return (
            f"cost_weight={self.cost_weight:.6g}: the lowest predicted cost (mean "
            f"${self.mean_cost:.6g}/query) at the quality of the best single model "
            f"{self.reference_model} ({self.reference_quality:.3f}; routed: "
            f"{self.mean_quality:.3f})"
        )


def _with_recorded_prices(pool: Pool, data: RoutingData) -> Pool:
    """``pool`` with each model that has no prices priced from its recorded costs in ``data``
    (:meth:`~llmrouter_core.data.core.RoutingData.prices_from_costs`), so a router trained on
    a named dataset reports what its calls cost; models without recorded costs keep no price
    (LiteLLM's table prices their calls, when it knows them)."""
    import dataclasses

    if all(s.has_prices for s in pool) or data.costs is None:
        return pool
    prices = data.prices_from_costs()
    return Pool(
        dataclasses.replace(
            s,
            input_price=s.input_price if s.input_price is not None else prices[s.name][0],
            output_price=s.output_price if s.output_price is not None else prices[s.name][1],
        )
        if not s.has_prices and s.name in prices
        else s
        for s in pool
    )


def prepare_training_data(
    data: RoutingData, pool: Pool | None, on_unmeasured: str = "warn"
) -> tuple[RoutingData, Pool, list[str]]:
    """The training data restricted to the pool, the pool restricted to the measured models,
    and the pool models without training data.

    Raises:
        UnknownModelError: ``on_unmeasured="error"`` and some pool models lack data, or no
            pool model has data.
        DataError: Missing scores, or missing costs that the pool's prices cannot fill.
    """
    if not isinstance(data, RoutingData):
        raise TypeError(f"fit() expects RoutingData, got {type(data).__name__}")
    if on_unmeasured not in ("warn", "error"):
        raise ValueError(f"on_unmeasured must be 'warn' or 'error', got {on_unmeasured!r}")
    if data.n_queries == 0:
        raise DataError("cannot fit a router on empty data")
    if pool is None:
        pool = Pool(ModelSpec(m) for m in data.models)
    pool = _with_recorded_prices(pool, data)
    unmeasured = [m for m in pool.names if m not in data.models]
    if unmeasured:
        message = (
            f"pool models without training data: {', '.join(unmeasured)}; they cannot be "
            "routed to until measured"
        )
        if on_unmeasured == "error" or len(unmeasured) == len(pool):
            raise UnknownModelError(f"{message}; the data has: {', '.join(data.models)}")
        logger.warning("%s (training on the other %d)", message, len(pool) - len(unmeasured))
        pool = pool.subset(m for m in pool.names if m in data.models)
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
    costs = data.require_costs()
    if not np.isfinite(costs).all() or (costs < 0).any():
        raise DataError("training costs must be finite numbers >= 0")
    return data, pool, unmeasured
