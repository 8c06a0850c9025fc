"""Any scikit-learn regressor as a scorer.

:class:`EstimatorScorer` wraps an estimator with ``fit(X, Y)`` and ``predict(X)`` (``X`` the
embedder's features, or their dense projection with ``input="dense"``; ``Y`` the queries x
models scores), one per pool model when it does not predict several outputs itself, the way
scikit-learn's meta-estimators take any estimator. Its predictions are clipped to [0, 1].

Saving uses ``skops.io``, a format made for scikit-learn estimators that never unpickles:
loading refuses any type outside skops' trusted set unless the caller names it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import clone

from llmrouter_core._math import clip_inplace
from llmrouter_core.data.core import FloatArray
from llmrouter_core.errors import MissingExtraError, PersistenceError
from llmrouter_core.scoring.base import INPUTS, FitContext, Scorer

__all__ = ["EstimatorScorer"]


def _multi_output(estimator: Any) -> bool:
    """Whether ``estimator`` fits a 2-D target itself (scikit-learn's tags say so)."""
    get_tags = getattr(estimator, "__sklearn_tags__", None)
    if callable(get_tags):
        try:
            return bool(get_tags().target_tags.multi_output)
        except (AttributeError, TypeError):
            return False
    return False


class EstimatorScorer(Scorer):
    """A scikit-learn regressor (or anything with ``fit(X, Y)`` / ``predict(X)``) as a scorer.

    Args:
        estimator: The regressor; cloned for every fit, never changed.
        input: What it reads: ``"features"`` (the embedder's output, sparse for the default
            hashing embedder) or ``"dense"`` (the router's dense projection of it).

    Example:
        >>> from sklearn.neighbors import KNeighborsRegressor
        >>> EstimatorScorer(KNeighborsRegressor(5)).estimator
        KNeighborsRegressor()
    """

    def __init__(self, estimator: Any, input: str = "features") -> None:
        self.estimator = estimator
        self.input = input  # type: ignore[misc]

    def check_params(self) -> None:
        if not (
            callable(getattr(self.estimator, "fit", None))
            and callable(getattr(self.estimator, "predict", None))
        ):
            raise ValueError(
                f"a scorer needs fit(X, Y) and predict(X); {type(self.estimator).__name__} "
                "has not both"
            )
        if self.input not in INPUTS or self.input == "text":
            raise ValueError(f"input must be 'features' or 'dense', got {self.input!r}")

    def _fit(self, X: Any, Y: FloatArray, params: dict[str, Any], context: FitContext) -> None:
        if hasattr(self.estimator, "__sklearn_tags__"):
            est = clone(self.estimator)
            if not _multi_output(est):
                from sklearn.multioutput import MultiOutputRegressor

                est = MultiOutputRegressor(est)
            self.estimator_ = est.fit(X, Y)
            return
        # Not a scikit-learn estimator: the 2-D target if it takes one, else one per model.
        est = _copy(self.estimator).fit(X, Y)
        probe = np.asarray(est.predict(X[:1]))
        if probe.shape == (1, Y.shape[1]):
            self.estimator_ = est
        else:
            self.estimator_ = _PerModel(
                [_copy(self.estimator).fit(X, Y[:, j]) for j in range(Y.shape[1])]
            )

    def predict(self, X: Any) -> FloatArray:
        out = np.asarray(self.estimator_.predict(X), dtype=np.float64)
        if out.ndim == 1:
            out = out[:, None]
        return clip_inplace(out, 0.0, 1.0)

    # -- persistence (skops) -------------------------------------------------------------
    def get_state(self) -> tuple[dict[str, Any], dict[str, Any]]:
        sio = _skops()
        blob = sio.dumps(self.estimator_)
        untrusted = sorted(sio.get_untrusted_types(data=blob))
        arrays = {"skops": np.frombuffer(blob, dtype=np.uint8)}
        return {"n_outputs": self.n_outputs_, "untrusted_types": untrusted}, arrays

    def set_state(
        self, meta: dict[str, Any], arrays: dict[str, Any], trusted_types: Any = ()
    ) -> None:
        sio = _skops()
        blob = np.asarray(arrays["skops"], dtype=np.uint8).tobytes()
        untrusted = sorted(set(sio.get_untrusted_types(data=blob)) - set(trusted_types or ()))
        if untrusted:
            raise PersistenceError(
                "the saved estimator uses types outside skops' trusted set: "
                f"{', '.join(untrusted)}; if you trust this router's source, load it with "
                "load_router(path, trusted_types=[...those names...])"
            )
        self.estimator_ = sio.loads(blob, trusted=list(trusted_types or ()) or None)
        self.n_outputs_ = int(meta["n_outputs"])


class _PerModel:
    """One estimator per model (for estimators that are not scikit-learn's)."""

    def __init__(self, estimators: list[Any]) -> None:
        self.estimators = estimators

    def predict(self, X: Any) -> FloatArray:
        return np.column_stack([np.asarray(e.predict(X)).reshape(-1) for e in self.estimators])


def _copy(estimator: Any) -> Any:
    """A fresh copy: scikit-learn's ``clone`` when the object has ``get_params``."""
    if callable(getattr(estimator, "get_params", None)):
        return clone(estimator, safe=False)
    import copy

    return copy.deepcopy(estimator)


def _skops() -> Any:
    try:
        import skops.io as sio
    except ImportError:  # pragma: no cover - skops is a dependency
        raise MissingExtraError("skops", "core", "saving a scikit-learn estimator") from None
    return sio
