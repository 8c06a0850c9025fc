"""The scorer protocol: what is predicted, and how a router trains and selects it.

A **scorer** predicts, for every query and pool model, the expected quality (``(n, m)`` in
[0, 1]) from the query's features. It is a scikit-learn regressor (``fit(X, Y)``,
``predict(X)``, ``get_params`` / ``set_params``): ``X`` is what it reads (the embedder's
features, their dense projection, or the query texts, see :attr:`Scorer.input`), ``Y`` the
queries x models score matrix. Any estimator with scikit-learn's regressor interface can be a
scorer (:class:`~llmrouter_core.scoring.estimator.EstimatorScorer` wraps it).

A router drives a scorer through two more steps, both with defaults here:

* :meth:`Scorer.oof_predictions`: out-of-fold predictions of several candidate settings
  (the defaults refit per fold; a scorer may share work between folds and candidates);
* :meth:`Scorer.select`: choose the setting and the weight of the scorer against the
  per-model prior (:data:`~llmrouter_core.training.selection.BLEND_GRID`) by cross-validated
  AIQ on the training data, then fit the chosen setting on all of it. A scorer that selects
  differently (the stack, the encoder, the LLM judge) overrides it.

Hyperparameters left ``None`` are chosen by cross-validation from :attr:`Scorer.search_space`;
a scorer fitted on its own (outside a router) takes the first candidate.

Capabilities are data (:class:`Tags`): what a scorer needs from the training data, whether it
learns online, which extra it needs, ... The registry, the CLI, the conformance suite
(:mod:`llmrouter_core.testing`) and the docs read them.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt
from sklearn.base import BaseEstimator, clone

from llmrouter_core.data.core import FloatArray
from llmrouter_core.pool import Pool
from llmrouter_core.scoring.heads import Head, load_head, sub_arrays
from llmrouter_core.training.selection import BLEND_GRID, cv_aiq, select_blend

__all__ = [
    "INPUTS",
    "FitContext",
    "HeadScorer",
    "Scorer",
    "Selected",
    "Selection",
    "Tags",
]

logger = logging.getLogger(__name__)

Arrays = dict[str, Any]
Folds = list[tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]]

#: What a scorer reads: the embedder's features; their dense projection, standardised or only
#: centred (the router's :class:`~llmrouter_core.training.projection.Projector`); or the texts.
INPUTS = ("features", "dense", "dense_raw", "text")


@dataclass(frozen=True)
class Tags:
    """A scorer's capabilities, as data.

    Attributes:
        deterministic: The same data and ``random_state`` give the same predictions.
        online: Learns from feedback after training (:meth:`Scorer.partial_fit`).
        needs: Fields of the training data it uses besides scores (``"tasks"``,
            ``"responses"``); it still trains without them unless ``requires_needs``.
        extras: Optional dependencies (extras) it needs (``"torch"``, ``"local"``, ...).
        calls_models: Routing calls a model (an LLM judge): slow, and may cost money.
        evaluation_only: Needs the measured outcomes of the query itself (the oracle).
        symmetric_ties: Two models with identical scores on every training query get
            identical predictions (not so for random or size picks, or a network whose
            outputs start from different random weights).
        recipes: The training recipes it accepts, its default first (see
            :mod:`llmrouter_core.training.recipes`).
        cascade: Its decisions carry a cascade plan: a request may call several models
            (a router's tags add its trained policy's, e.g. FrugalGPT's).
    """

    deterministic: bool = True
    online: bool = False
    needs: tuple[str, ...] = ()
    extras: tuple[str, ...] = ()
    calls_models: bool = False
    evaluation_only: bool = False
    symmetric_ties: bool = True
    recipes: tuple[str, ...] = ("pointwise",)
    cascade: bool = False

    def merged(self, other: Tags | None) -> Tags:
        """These tags with a policy's (its ``needs`` added, ``cascade`` if either says so).

        Example:
            >>> Tags().merged(Tags(needs=("responses",), cascade=True)).needs
            ('responses',)
        """
        if other is None:
            return self
        needs = tuple(dict.fromkeys((*self.needs, *other.needs)))
        return replace(self, needs=needs, cascade=self.cascade or other.cascade)

    def to_dict(self) -> dict[str, Any]:
        return {
            "deterministic": self.deterministic,
            "online": self.online,
            "needs": list(self.needs),
            "extras": list(self.extras),
            "calls_models": self.calls_models,
            "evaluation_only": self.evaluation_only,
            "symmetric_ties": self.symmetric_ties,
            "recipes": list(self.recipes),
            "cascade": self.cascade,
        }


@dataclass(frozen=True)
class FitContext:
    """What a scorer may read besides ``X`` and ``Y`` (fields per training row are subset with
    the rows, see :meth:`rows`).

    Attributes:
        models: The pool models, in the order of ``Y``'s columns.
        random_state: Seed of every stochastic part.
        recipe: The training recipe (``"pointwise"``, ``"pairwise"``, ...).
        tasks: The task label of each training row, if the data has them.
        queries: The training texts (rows of ``X``).
        pool: The pool (prices, sizes, descriptions).
        costs: Measured cost of each (query, model), if known.
    """

    models: tuple[str, ...]
    random_state: int = 0
    recipe: str = "pointwise"
    tasks: npt.NDArray[Any] | None = None
    queries: Sequence[str] | None = None
    pool: Pool | None = None
    costs: FloatArray | None = None

    def rows(self, idx: npt.NDArray[np.intp]) -> FitContext:
        """This context for the training rows ``idx`` (e.g. one fold)."""
        return replace(
            self,
            tasks=None if self.tasks is None else self.tasks[idx],
            queries=None if self.queries is None else [self.queries[i] for i in idx],
            costs=None if self.costs is None else self.costs[idx],
        )


@dataclass(frozen=True)
class Selection:
    """How a router judges candidate settings: K folds of the training queries and the AIQ
    that routing their out-of-fold predictions with the predicted costs achieves on the
    measured scores and costs (:func:`~llmrouter_core.training.selection.cv_aiq`)."""

    folds: Folds
    scores: FloatArray
    costs: FloatArray
    cost_pred: FloatArray
    #: Whether there is enough data to cross-validate (else the first candidate is taken).
    enabled: bool = True
    blends: tuple[float, ...] = BLEND_GRID

    def score(self, quality: FloatArray) -> float:
        """Cross-validated AIQ of out-of-fold ``quality``."""
        return cv_aiq(quality, self.cost_pred, self.scores, self.costs)

    def prior_oof(self) -> FloatArray:
        """Out-of-fold per-model mean scores (the prior, as each fold would know it)."""
        out = np.empty_like(self.scores)
        for train, val in self.folds:
            out[val] = self.scores[train].mean(axis=0)
        return out


@dataclass
class Selected:
    """The outcome of :meth:`Scorer.select`."""

    scorer: Scorer  # fitted, with the chosen hyperparameters
    blend: float
    params: dict[str, Any] = field(default_factory=dict)
    cv_score: float | None = None
    report: list[dict[str, Any]] = field(default_factory=list)
    #: Utility margin of the anchor model (the best training model): the router leaves it
    #: only for a predicted gain above this (0: no anchor).
    margin: float = 0.0
    #: Whether the anchor is the best single model for each budget rather than the best
    #: training model (see :class:`~llmrouter_core.policy.Anchor`).
    anchor_per_budget: bool = False


class Scorer(BaseEstimator):  # type: ignore[misc]
    """Base class of the scorers (a scikit-learn regressor with a few router hooks).

    Subclasses implement :meth:`_fit` (fit with concrete hyperparameters) and
    :meth:`predict`, and save their learned state with :meth:`get_state` /
    :meth:`set_state` (plain JSON + arrays; :class:`HeadScorer` does it for scorers whose
    state is one head).
    """

    #: What the scorer reads (one of :data:`INPUTS`).
    input: ClassVar[str] = "features"
    #: hyperparameter -> candidates tried by cross-validation when the value is ``None``.
    search_space: ClassVar[dict[str, Sequence[Any]]] = {}
    #: Capabilities (see :class:`Tags`).
    tags: ClassVar[Tags] = Tags()

    # -- hyperparameters -----------------------------------------------------
    def candidates(self) -> list[dict[str, Any]]:
        """Every combination of the search space for the hyperparameters left ``None``
        (one candidate, the current values, when none is)."""
        fixed = {k: getattr(self, k) for k in self.search_space}
        free = [k for k, v in fixed.items() if v is None]
        out = []
        for combo in itertools.product(*(self.search_space[k] for k in free)):
            params = dict(fixed)
            params.update(zip(free, combo, strict=True))
            out.append(params)
        return out

    def check_params(self) -> None:
        """Raise ``ValueError`` on a bad hyperparameter (called before any fitting)."""

    # -- fitting ---------------------------------------------------------------
    def fit(self, X: Any, Y: FloatArray, context: FitContext | None = None) -> Scorer:
        """Fit on inputs ``X`` and scores ``Y`` (``(n, m)``); returns self.

        Hyperparameters left ``None`` take the first candidate of the search space (a router
        chooses them by cross-validation instead, see :meth:`select`).
        """
        self.check_params()
        y = np.asarray(Y, dtype=np.float64)
        if context is None:
            context = FitContext(models=tuple(f"model_{j}" for j in range(y.shape[1])))
        params = self.candidates()[0]
        self._fit(X, y, params, context)
        self.n_outputs_ = int(y.shape[1])
        return self

    def _fit(self, X: Any, Y: FloatArray, params: dict[str, Any], context: FitContext) -> None:
        raise NotImplementedError  # pragma: no cover - abstract

    def predict(self, X: Any) -> FloatArray:
        """Predicted quality, ``(n_queries, n_models)`` in [0, 1]."""
        raise NotImplementedError  # pragma: no cover - abstract

    def predict_many(self, X: Any) -> FloatArray:
        """:meth:`predict` for a large batch (the training queries, for the knob's
        calibration); a scorer may compute it faster, equal up to float rounding."""
        return self.predict(X)

    def calibration_rows(self) -> npt.NDArray[np.intp] | None:
        """The training rows the router calibrates the knob on, after fitting (``None``: all
        of them). A scorer whose every prediction calls a model (the LLM judge) names the rows
        it already predicted at fit, so calibrating costs no more calls."""
        return None

    def oof_predictions(
        self,
        X: Any,
        Y: FloatArray,
        candidates: list[dict[str, Any]],
        folds: Folds,
        context: FitContext,
    ) -> list[FloatArray]:
        """Out-of-fold predictions of each candidate setting (one ``(n, m)`` array each).

        The default fits a fresh copy per fold and candidate; scorers that can share work
        between them (a similarity matrix, a regularisation path) override it.
        """
        out = [np.empty_like(Y) for _ in candidates]
        for train, val in folds:
            sub = context.rows(train)
            for oof, params in zip(out, candidates, strict=True):
                est = clone(self).set_params(**params)
                est.fit(_rows(X, train), Y[train], sub)
                oof[val] = est.predict(_rows(X, val))
        return out

    def select(
        self,
        X: Any,
        Y: FloatArray,
        context: FitContext,
        selection: Selection,
        blend: float | None = None,
    ) -> Selected:
        """Choose the hyperparameters and the blend with the prior by cross-validated AIQ,
        then fit the chosen setting on all of ``X``.

        Args:
            X: The training inputs (what :attr:`input` names).
            Y: The training scores, ``(n, m)``.
            context: What the scorer may read besides ``X`` and ``Y``.
            selection: The folds and the measured outcomes that judge the candidates.
            blend: A fixed weight of this scorer against the per-model prior (``None``:
                chosen by cross-validation from ``selection.blends``).
        """
        self.check_params()
        if blend is not None and not 0.0 <= blend <= 1.0:
            raise ValueError("blend must be in [0, 1] or None")
        candidates = self.candidates()
        needs_cv = len(candidates) > 1 or blend is None
        score: float | None = None
        report: list[dict[str, Any]] = []
        if not (needs_cv and selection.enabled):
            params, chosen_blend = candidates[0], 1.0 if blend is None else float(blend)
        else:
            blends = selection.blends if blend is None else (float(blend),)
            oofs = self.oof_predictions(X, Y, candidates, selection.folds, context)
            params, chosen_blend, score, report = select_blend(
                candidates,
                oofs,
                selection.prior_oof(),
                blends,
                selection.cost_pred,
                selection.scores,
                selection.costs,
            )
            logger.info(
                "%s: chose %s, blend %.2f (cv AIQ %.4f)",
                type(self).__name__,
                params,
                chosen_blend,
                score,
            )
        fitted = clone(self).set_params(**params)
        fitted.fit(X, Y, context)
        return Selected(fitted, float(chosen_blend), dict(params), score, report)

    # -- online learning --------------------------------------------------------
    def partial_fit(self, x: Any, model: int, score: float) -> None:
        """Learn from one observed outcome (``model`` scored ``score`` on the query whose
        inputs are the single row ``x``). Only scorers tagged ``online`` implement it."""
        raise NotImplementedError(f"{type(self).__name__} does not learn online")

    # -- persistence --------------------------------------------------------------
    def get_state(self) -> tuple[dict[str, Any], Arrays]:
        """Learned state as JSON-safe metadata and numeric arrays."""
        raise NotImplementedError  # pragma: no cover - abstract

    def set_state(self, meta: dict[str, Any], arrays: Arrays) -> None:
        """Restore the state :meth:`get_state` returned."""
        raise NotImplementedError  # pragma: no cover - abstract

    @property
    def is_fitted(self) -> bool:
        return hasattr(self, "n_outputs_")


class HeadScorer(Scorer):
    """A scorer whose learned state is one :class:`~llmrouter_core.scoring.heads.Head`.

    Subclasses implement :meth:`fit_head`; prediction and persistence are shared.
    """

    head_: Head

    def fit_head(self, X: Any, Y: FloatArray, params: dict[str, Any], context: FitContext) -> Head:
        raise NotImplementedError  # pragma: no cover - abstract

    def _fit(self, X: Any, Y: FloatArray, params: dict[str, Any], context: FitContext) -> None:
        self.head_ = self.fit_head(X, Y, params, context)

    def predict(self, X: Any) -> FloatArray:
        return self.head_.predict(X)

    def oof_predictions(
        self,
        X: Any,
        Y: FloatArray,
        candidates: list[dict[str, Any]],
        folds: Folds,
        context: FitContext,
    ) -> list[FloatArray]:
        def fold(train: npt.NDArray[np.intp], val: npt.NDArray[np.intp]) -> list[FloatArray]:
            sub = context.rows(train)
            heads = [self.fit_head(_rows(X, train), Y[train], p, sub) for p in candidates]
            return [h.predict(_rows(X, val)) for h in heads]

        return fold_loop(folds, Y, len(candidates), fold)

    def get_state(self) -> tuple[dict[str, Any], Arrays]:
        arrays = {f"head/{k}": v for k, v in self.head_.get_state().items()}
        return {"head": self.head_.kind, "n_outputs": self.n_outputs_}, arrays

    def set_state(self, meta: dict[str, Any], arrays: Arrays) -> None:
        self.head_ = load_head(str(meta["head"]), sub_arrays(arrays, "head/"))
        self.n_outputs_ = int(meta["n_outputs"])


def _rows(X: Any, idx: npt.NDArray[np.intp]) -> Any:
    """Rows ``idx`` of a feature matrix or of a list of texts."""
    if isinstance(X, list | tuple):
        return [X[i] for i in idx]
    return X[idx]


def fold_loop(
    folds: Folds,
    Y: FloatArray,
    n_candidates: int,
    predict_fold: Callable[[npt.NDArray[np.intp], npt.NDArray[np.intp]], list[FloatArray]],
) -> list[FloatArray]:
    """Out-of-fold arrays filled by ``predict_fold(train, val)``, which returns one
    prediction of the ``val`` rows per candidate (a helper for overriding
    :meth:`Scorer.oof_predictions`)."""
    out = [np.empty_like(Y) for _ in range(n_candidates)]
    for train, val in folds:
        for oof, pred in zip(out, predict_fold(train, val), strict=True):
            oof[val] = pred
    return out
