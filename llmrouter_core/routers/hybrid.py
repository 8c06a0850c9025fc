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

from llmrouter_core.data.core import FloatArray, RoutingData
from llmrouter_core.errors import UnknownModelError
from llmrouter_core.routers._zoo import ZooRouter, register_head, sub_arrays
from llmrouter_core.routers.heads import Head, LinearHead

__all__ = ["LABELS", "HybridHead", "HybridRouter", "hybrid_labels"]

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


class HybridRouter(ZooRouter):
    """Hybrid-LLM: per cheaper model, a classifier of "as good as the large model".

    Args:
        large: The reference (large) model; ``None`` = best mean training score.
        label: ``"deterministic"``, ``"probabilistic"`` or ``"transformed"`` (``None``: chosen
            by CV).
        alpha: Ridge strength of the classifiers (``None``: chosen by CV).
        cost_model, embedder, embedder_params, cv, blend, random_state: as
            :class:`~llmrouter_core.routers.irt.IRTRouter`.

    Example:
        >>> from llmrouter_core import get_router
        >>> get_router("hybrid", label="transformed").label
        'transformed'
    """

    name = "hybrid"
    family = "hybrid-llm"
    search_space = {"label": LABELS, "alpha": (3.0, 10.0, 30.0)}

    def __init__(
        self,
        *,
        large: str | None = None,
        label: str | None = None,
        alpha: float | None = None,
        cost_model: str = "features",
        embedder: str = "hashing",
        embedder_params: dict[str, Any] | None = None,
        cv: int = 3,
        blend: float | None = None,
        random_state: int = 0,
    ) -> None:
        super().__init__(
            cost_model=cost_model,
            embedder=embedder,
            embedder_params=embedder_params,
            cv=cv,
            blend=blend,
            random_state=random_state,
        )
        self.large = large
        self.label = label
        self.alpha = alpha

    def _check_params(self) -> None:
        if self.label is not None and self.label not in LABELS:
            raise ValueError(f"label must be one of {LABELS}, got {self.label!r}")
        if self.alpha is not None and not float(self.alpha) > 0:
            raise ValueError("alpha must be > 0")

    def _prepare(self, data: RoutingData) -> None:
        if self.large is None:
            self.large_ = int(np.argmax(data.scores.mean(axis=0)))
        elif self.large in self.models_:
            self.large_ = self.models_.index(self.large)
        else:
            raise UnknownModelError(f"large model {self.large!r} is not in the pool {self.models_}")

    def _fit_head(self, x: Any, y: FloatArray, params: dict[str, Any]) -> Head:
        from sklearn.linear_model import Ridge

        labels = hybrid_labels(y, self.large_, str(params["label"]))
        est = Ridge(alpha=float(params["alpha"])).fit(x, labels)
        coef = np.asarray(est.coef_, dtype=np.float64).reshape(y.shape[1], -1).T
        linear = LinearHead(coef, np.asarray(est.intercept_).reshape(-1), link="identity")
        return HybridHead(linear, self.large_, float(y[:, self.large_].mean()))

    def _extra_meta(self) -> dict[str, Any]:
        return {"large": self.models_[self.large_]}

    def _set_state(self, meta: dict[str, Any], arrays: dict[str, Any]) -> None:
        super()._set_state(meta, arrays)
        self.large_ = self.models_.index(meta["large"])
