"""RouterDC: query-based router trained by dual contrastive learning.

RouterDC (Chen et al., NeurIPS 2024) embeds queries and models in one space and routes a query
to the model whose embedding is most similar. Two contrastive losses train it:

* **sample-LLM**: a query should be closer to the models that answer it best (positives) than
  to the models that answer it worse (negatives): for each positive ``p``,
  ``-log(e^{s_p} / (e^{s_p} + sum_neg e^{s_n}))`` with ``s_j = cos(E(x), k_j) / temperature``.
  Positives are *all* models with the query's best score (ties included, never "the first
  best row"); negatives are the models that scored lower; queries on which every model scores
  the same carry no preference and are skipped by this loss;
* **sample-sample**: queries of the same cluster (k-means on the query features) should be
  closer to each other than to queries of other clusters (in-batch InfoNCE), which keeps the
  query encoder from collapsing.

RouterDC fine-tunes a pretrained encoder; here the encoder is a trainable two-layer network on
top of the frozen query features (a dense projection of the embedder's output), which keeps
training within CPU budgets. Similarities are mapped to expected quality by a logistic
calibration (shared slope, one intercept per model) fitted on the training queries, so the
cost knob applies. The temperature is chosen by cross-validated AIQ.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from llmrouter_core._math import sigmoid
from llmrouter_core.data.core import FloatArray
from llmrouter_core.scoring.base import FitContext, HeadScorer, Tags
from llmrouter_core.scoring.heads import Head, register_head
from llmrouter_core.training.recipes import calibrate_logits
from llmrouter_core.training.torch import import_torch, torch_threads

__all__ = ["ContrastiveHead", "ContrastiveScorer", "train_routerdc"]

_PARAMS = ("w1", "b1", "w2", "b2", "keys")


@register_head
class ContrastiveHead(Head):
    """Query encoder + model embeddings + calibration, as arrays (numpy forward pass)."""

    kind = "contrastive"

    def __init__(
        self,
        params: dict[str, FloatArray],
        temperature: float,
        gamma: float = 1.0,
        c: FloatArray | None = None,
    ) -> None:
        self.params = {n: np.asarray(params[n], dtype=np.float64) for n in _PARAMS}
        self.temperature = float(temperature)
        self.gamma = float(gamma)
        m = self.params["keys"].shape[0]
        self.c = np.zeros(m) if c is None else np.asarray(c, dtype=np.float64)

    def similarities(self, z: Any) -> FloatArray:
        p = self.params
        h = np.maximum(np.asarray(z, dtype=np.float64) @ p["w1"] + p["b1"], 0.0)
        e = h @ p["w2"] + p["b2"]
        e /= np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-12)
        k = p["keys"] / np.maximum(np.linalg.norm(p["keys"], axis=1, keepdims=True), 1e-12)
        return np.asarray(e @ k.T, dtype=np.float64)

    def predict(self, x: Any) -> FloatArray:
        z = self.gamma * self.similarities(x) + self.c
        return sigmoid(z)

    def get_state(self) -> dict[str, Any]:
        out = {f"p.{n}": v for n, v in self.params.items()}
        out["cal"] = np.asarray([self.temperature, self.gamma])
        out["c"] = self.c
        return out

    @classmethod
    def from_state(cls, arrays: dict[str, Any]) -> ContrastiveHead:
        temperature, gamma = (float(v) for v in arrays["cal"])
        return cls({n: arrays[f"p.{n}"] for n in _PARAMS}, temperature, gamma, arrays["c"])


def train_routerdc(
    z: FloatArray,
    y: FloatArray,
    temperature: float,
    hidden: int,
    epochs: int,
    batch_size: int,
    lr: float,
    n_clusters: int,
    sample_weight: float,
    random_state: int,
) -> ContrastiveHead:
    """Train the encoder and model embeddings with the two contrastive losses."""
    with torch_threads("the RouterDC scorer") as torch:
        return _train_routerdc(
            torch,
            z,
            y,
            temperature,
            hidden,
            epochs,
            batch_size,
            lr,
            n_clusters,
            sample_weight,
            random_state,
        )


def _train_routerdc(
    torch: Any,
    z: FloatArray,
    y: FloatArray,
    temperature: float,
    hidden: int,
    epochs: int,
    batch_size: int,
    lr: float,
    n_clusters: int,
    sample_weight: float,
    random_state: int,
) -> ContrastiveHead:
    from sklearn.cluster import KMeans

    n, d = z.shape
    m = y.shape[1]
    gen = torch.Generator().manual_seed(int(random_state))
    rng = np.random.default_rng(random_state)
    best = y.max(axis=1, keepdims=True)
    pos = (y >= best - 1e-9) & (best > y.min(axis=1, keepdims=True))  # ties: all best
    neg = y < best - 1e-9
    useful = pos.any(axis=1)
    k = max(2, min(int(n_clusters), n // 4))
    clusters = KMeans(n_clusters=k, n_init=2, random_state=random_state).fit_predict(z)

    zt = torch.tensor(z, dtype=torch.float32)
    pos_t = torch.tensor(pos, dtype=torch.bool)
    neg_t = torch.tensor(neg, dtype=torch.bool)
    use_t = torch.tensor(useful, dtype=torch.bool)
    cl_t = torch.tensor(clusters, dtype=torch.long)

    def init(*shape: int, scale: float) -> Any:
        return (torch.randn(*shape, generator=gen) * scale).requires_grad_(True)

    p = {
        "w1": init(d, hidden, scale=1.0 / np.sqrt(d)),
        "b1": torch.zeros(hidden, requires_grad=True),
        "w2": init(hidden, hidden, scale=1.0 / np.sqrt(hidden)),
        "b2": torch.zeros(hidden, requires_grad=True),
        # Every model starts from the same key: models with identical scores get identical
        # gradients and stay identical (ties are never broken by initialisation).
        "keys": torch.randn(1, hidden, generator=gen).repeat(m, 1).requires_grad_(True),
    }
    opt = torch.optim.AdamW(list(p.values()), lr=lr, weight_decay=1e-4)

    def encode(zb: Any) -> Any:
        e = torch.relu(zb @ p["w1"] + p["b1"]) @ p["w2"] + p["b2"]
        return torch.nn.functional.normalize(e, dim=1)

    for _ in range(int(epochs)):
        order = torch.tensor(rng.permutation(n))
        for s in range(0, n, int(batch_size)):
            idx = order[s : s + int(batch_size)]
            e = encode(zt[idx])
            keys = torch.nn.functional.normalize(p["keys"], dim=1)
            sim = e @ keys.T / temperature  # (b, m)
            # sample-LLM loss: each positive against all negatives of its query.
            pb, nb, ub = pos_t[idx], neg_t[idx], use_t[idx]
            neg_lse = torch.logsumexp(sim.masked_fill(~nb, -1e9), dim=1, keepdim=True)
            per_pos = -(sim - torch.logaddexp(sim, neg_lse))
            has_neg = nb.any(dim=1, keepdim=True)
            mask = pb & has_neg & ub[:, None]
            loss = per_pos[mask].mean() if bool(mask.any()) else sim.sum() * 0.0
            # sample-sample loss: in-batch InfoNCE with same-cluster queries as positives.
            if sample_weight > 0:
                cb = cl_t[idx]
                ss = e @ e.T / temperature
                eye = torch.eye(len(idx), dtype=torch.bool)
                same = (cb[:, None] == cb[None, :]) & ~eye
                ok = same.any(dim=1)
                if bool(ok.any()):
                    logp = ss.masked_fill(eye, -1e9).log_softmax(dim=1)
                    pos_lp = logp.masked_fill(~same, 0.0).sum(dim=1) / same.sum(dim=1).clamp(min=1)
                    loss = loss - sample_weight * pos_lp[ok].mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
    params = {nm: v.detach().double().numpy() for nm, v in p.items()}
    head = ContrastiveHead(params, temperature)
    # Calibrate similarities to expected quality on the training queries.
    head.gamma, head.c = calibrate_logits(head.similarities(z), y, per_model=True, max_iter=200)
    return head


class ContrastiveScorer(HeadScorer):
    """RouterDC: dual contrastive learning of query and model embeddings (torch extra).

    Args:
        temperature: Softmax temperature of the similarities (``None``: chosen by CV).
        hidden: Embedding width.
        epochs: Passes over the training queries.
        batch_size: Queries per step.
        learning_rate: AdamW step size.
        n_clusters: k-means clusters of the sample-sample loss.
        sample_weight: Weight of the sample-sample loss (RouterDC: 1).

    Example:
        >>> ContrastiveScorer(temperature=0.2).temperature
        0.2
    """

    input = "dense"
    search_space = {"temperature": (0.1, 0.3)}
    tags = Tags(extras=("torch",), recipes=("contrastive",))

    def __init__(
        self,
        temperature: float | None = None,
        hidden: int = 64,
        epochs: int = 20,
        batch_size: int = 64,
        learning_rate: float = 3e-3,
        n_clusters: int = 10,
        sample_weight: float = 1.0,
    ) -> None:
        self.temperature = temperature
        self.hidden = hidden
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.n_clusters = n_clusters
        self.sample_weight = sample_weight

    def check_params(self) -> None:
        import_torch("the RouterDC scorer")
        if self.temperature is not None and not float(self.temperature) > 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature!r}")
        if min(int(self.hidden), int(self.epochs), int(self.batch_size)) < 1:
            raise ValueError("hidden, epochs and batch_size must be >= 1")

    def fit_head(self, X: Any, Y: FloatArray, params: dict[str, Any], context: FitContext) -> Head:
        return train_routerdc(
            np.asarray(X),
            Y,
            float(params["temperature"]),
            int(self.hidden),
            int(self.epochs),
            int(self.batch_size),
            float(self.learning_rate),
            int(self.n_clusters),
            float(self.sample_weight),
            context.random_state,
        )
