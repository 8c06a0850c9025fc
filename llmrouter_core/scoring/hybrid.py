"""Hybrid-LLM's router: does a cheaper model answer as well as the large one?

Hybrid-LLM (Ding et al., ICLR 2024) routes between a small and a large model with a classifier
of "the small model's answer is good enough", trained on one of three labels built from the
measured qualities ``q_S``, ``q_L`` of the two models on each training query:

* ``deterministic``: ``1[q_S >= q_L]``;
* ``probabilistic``: ``P(q_S >= q_L)`` over the models' sampling randomness; with one measured
  score per model, read as the probability of success, ``1 - q_L (1 - q_S)`` (equal to the
  deterministic label on 0/1 scores);
* ``transformed``: ``1[q_S >= q_L - t]`` with the relaxation ``t`` that makes the labels most
  balanced (the paper's choice, maximising the share of label pairs that differ).

For a pool, every other model is compared with the large one (by default the model with the
best mean training score), each with its own classifier (ridge on the query features, clipped
to [0, 1]). The predicted quality of model ``j`` is ``q_L x P_j(good enough | query)``, so the
one cost knob plays the role of Hybrid-LLM's threshold: a cheaper model is taken when its
probability of matching the large model is high enough for its saving.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from llmrouter_core.data.core import FloatArray
from llmrouter_core.errors import UnknownModelError
from llmrouter_core.scoring.base import FitContext, Folds, HeadScorer
from llmrouter_core.scoring.heads import Head, LinearHead, register_head, sub_arrays

__all__ = ["LABELS", "HybridHead", "HybridScorer", "hybrid_labels"]

LABELS = ("deterministic", "probabilistic", "transformed")


def hybrid_labels(y: FloatArray, large: int, label: str) -> FloatArray:
    """Training labels ``(n, m)`` of "model j is as good as the large model" (column
    ``large`` is all ones)."""
    gap = y[:, [large]] - y  # > 0 where the large model scores higher
    if label == "deterministic":
        out = (gap <= 0).astype(np.float64)
    elif label == "probabilistic":
        out = 1.0 - y[:, [large]] * (1.0 - y)
    elif label == "transformed":
        out = np.empty_like(y)
        for j in range(y.shape[1]):
            g = gap[:, j]
            # Candidate relaxations: 0 and every observed positive gap; take the most balanced.
            cands = np.unique(np.concatenate([[0.0], g[g > 0]]))
            rates = np.array([(g <= t).mean() for t in cands])
            t = cands[int(np.argmin(np.abs(rates - 0.5)))]
            out[:, j] = (g <= t + 1e-12).astype(np.float64)
    else:
        raise ValueError(f"label must be one of {LABELS}, got {label!r}")
    out[:, large] = 1.0
    return out


@register_head
class HybridHead(Head):
    """``quality_j = q_large x clip(linear_j(x), 0, 1)``; the large model gets ``q_large``."""

    kind = "hybrid"

    def __init__(self, linear: LinearHead, large: int, q_large: float) -> None:
        self.linear = linear
        self.large = int(large)
        self.q_large = float(q_large)

    def predict(self, x: Any) -> FloatArray:
        p = self.linear.predict(x)
        p[:, self.large] = 1.0
        return np.asarray(self.q_large * p, dtype=np.float64)

    def get_state(self) -> dict[str, Any]:
        out = {f"lin/{k}": v for k, v in self.linear.get_state().items()}
        out["params"] = np.asarray([self.large, self.q_large], dtype=np.float64)
        return out

    @classmethod
    def from_state(cls, arrays: dict[str, Any]) -> HybridHead:
        large, q_large = arrays["params"]
        return cls(LinearHead.from_state(sub_arrays(arrays, "lin/")), int(large), float(q_large))


class HybridScorer(HeadScorer):
    """Hybrid-LLM: per cheaper model, a classifier of "as good as the large model".

    Args:
        large: The reference (large) model; ``None`` = best mean training score.
        label: ``"deterministic"``, ``"probabilistic"`` or ``"transformed"`` (``None``: chosen
            by CV).
        alpha: Ridge strength of the classifiers (``None``: chosen by CV).

    Example:
        >>> HybridScorer(label="transformed").label
        'transformed'
    """

    search_space = {"label": LABELS, "alpha": (3.0, 10.0, 30.0)}

    def __init__(
        self, large: str | None = None, label: str | None = None, alpha: float | None = None
    ) -> None:
        self.large = large
        self.label = label
        self.alpha = alpha

    def check_params(self) -> None:
        if self.label is not None and self.label not in LABELS:
            raise ValueError(f"label must be one of {LABELS}, got {self.label!r}")
        if self.alpha is not None and not float(self.alpha) > 0:
            raise ValueError(f"alpha must be > 0, got {self.alpha!r}")

    def _large(self, Y: FloatArray, context: FitContext) -> int:
        if self.large is None:
            return int(np.argmax(Y.mean(axis=0)))
        if self.large in context.models:
            return context.models.index(self.large)
        raise UnknownModelError(
            f"large model {self.large!r} is not in the pool {list(context.models)}"
        )

    def fit_head(self, X: Any, Y: FloatArray, params: dict[str, Any], context: FitContext) -> Head:
        from sklearn.linear_model import Ridge

        large = int(params.get("large_index", self._large(Y, context)))
        labels = hybrid_labels(Y, large, str(params["label"]))
        est = Ridge(alpha=float(params["alpha"])).fit(X, labels)
        coef = np.asarray(est.coef_, dtype=np.float64).reshape(Y.shape[1], -1).T
        linear = LinearHead(coef, np.asarray(est.intercept_).reshape(-1), link="identity")
        return HybridHead(linear, large, float(Y[:, large].mean()))

    def oof_predictions(
        self,
        X: Any,
        Y: FloatArray,
        candidates: list[dict[str, Any]],
        folds: Folds,
        context: FitContext,
    ) -> list[FloatArray]:
        # The large model is the one of the whole training data in every fold.
        large = self._large(Y, context)
        out = [np.empty_like(Y) for _ in candidates]
        for train, val in folds:
            sub = context.rows(train)
            for oof, params in zip(out, candidates, strict=True):
                head = self.fit_head(X[train], Y[train], {**params, "large_index": large}, sub)
                oof[val] = head.predict(X[val])
        return out

    def fit(self, X: Any, Y: FloatArray, context: FitContext | None = None) -> HybridScorer:
        super().fit(X, Y, context)
        assert isinstance(self.head_, HybridHead)
        self.large_ = self.head_.large
        return self
