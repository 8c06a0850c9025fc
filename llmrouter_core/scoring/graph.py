"""Graph router: message passing over a query-model graph, inductive for new queries.

In the spirit of GraphRouter (Feng et al., ICLR 2025): queries and models are nodes; a
query-model edge carries the measured score; each query is linked to its ``n_neighbors`` most
similar training queries. Predicting the (query, model) edge of a new query is edge prediction:
the query joins the graph through its similarity edges, with no retraining.

One round of message passing (GraphSAGE-style, plain torch for training, numpy for routing):

.. math::

    \\bar y_i = \\sum_k \\omega_{ik} y_k, \\quad \\bar z_i = \\sum_k \\omega_{ik} z_k, \\quad
    h_i = \\mathrm{ReLU}(z_i W_z + \\bar z_i W_n + (\\bar y_i - \\pi) W_y + b)

    P(j \\text{ good on } i) = \\sigma(h_i \\cdot e_j + c_j + u_j(\\bar y_{ij} - \\pi_j))

``omega`` are the normalised similarities of the neighbours, ``y_k`` their measured scores of
every model (the query -> query -> model paths), ``pi`` the mean scores, ``e_j`` the model node
embeddings. Because ``W_y`` mixes all models' outcomes, the network can learn that one model's
success on a neighbour predicts another's (or, for near-duplicate "twin" questions with
opposite answers, its failure). A training query never sees its own edges (its neighbours
exclude itself). Trained full-batch with Adam on the soft-label logistic loss of every score;
the number of neighbours and the weight penalty are chosen by cross-validated AIQ.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from llmrouter_core._math import sigmoid
from llmrouter_core.data.core import FloatArray
from llmrouter_core.scoring.base import FitContext, HeadScorer, Tags
from llmrouter_core.scoring.heads import Head, register_head
from llmrouter_core.training.torch import import_torch, torch_threads

__all__ = ["GraphHead", "GraphScorer", "train_graph"]

_PARAMS = ("wz", "wn", "wy", "b", "e", "c", "u")
_CHUNK = 1024


def _normalize_rows(z: Any) -> Any:
    n = np.linalg.norm(z, axis=1, keepdims=True)
    return np.asarray(z / np.where(n == 0, 1.0, n), dtype=np.float32)


def neighbours(
    zq: FloatArray, z_train_n: FloatArray, k: int, exclude_self: bool = False
) -> tuple[np.ndarray, FloatArray]:
    """Indices ``(n, k)`` of the most cosine-similar training rows and their normalised
    non-negative weights."""
    qn = _normalize_rows(zq)
    n_train = z_train_n.shape[0]
    k = max(1, min(int(k), n_train - (1 if exclude_self else 0)))
    idx = np.empty((qn.shape[0], k), dtype=np.int64)
    w = np.empty((qn.shape[0], k), dtype=np.float64)
    for s in range(0, qn.shape[0], _CHUNK):
        sims = qn[s : s + _CHUNK] @ z_train_n.T
        if exclude_self:
            rows = np.arange(sims.shape[0])
            sims[rows, rows + s] = -np.inf
        part = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        ws = np.maximum(np.take_along_axis(sims, part, axis=1), 0.0).astype(np.float64)
        tot = ws.sum(axis=1, keepdims=True)
        ws = np.where(tot > 0, ws / np.where(tot > 0, tot, 1.0), 1.0 / k)
        idx[s : s + _CHUNK] = part
        w[s : s + _CHUNK] = ws
    return idx, w


@register_head
class GraphHead(Head):
    """The trained message-passing network, as arrays (numpy forward pass)."""

    kind = "graph"

    def __init__(
        self,
        z_train: FloatArray,
        y_train: FloatArray,
        k: int,
        mu: FloatArray,
        sd: FloatArray,
        params: dict[str, FloatArray],
    ) -> None:
        self.z_train = np.asarray(z_train, dtype=np.float32)
        self.z_train_n = _normalize_rows(self.z_train)
        self.y_train = np.asarray(y_train, dtype=np.float64)
        self.prior = self.y_train.mean(axis=0)
        self.k = int(k)
        self.mu = np.asarray(mu, dtype=np.float64)
        self.sd = np.asarray(sd, dtype=np.float64)
        self.params: dict[str, FloatArray] = {
            n: np.asarray(params[n], dtype=np.float64) for n in _PARAMS
        }

    def inputs(self, z: FloatArray, exclude_self: bool = False) -> tuple[FloatArray, ...]:
        """Standardised query features, neighbour features and neighbour outcomes."""
        idx, w = neighbours(z, self.z_train_n, self.k, exclude_self)
        zs = (np.asarray(z, dtype=np.float64) - self.mu) / self.sd
        zt = (self.z_train.astype(np.float64) - self.mu) / self.sd
        zbar = np.einsum("nk,nkd->nd", w, zt[idx])
        ybar = np.einsum("nk,nkm->nm", w, self.y_train[idx]) - self.prior
        return zs, zbar, ybar

    def predict(self, x: Any) -> FloatArray:
        zs, zbar, ybar = self.inputs(np.asarray(x))
        p = self.params
        h = np.maximum(zs @ p["wz"] + zbar @ p["wn"] + ybar @ p["wy"] + p["b"], 0.0)
        return sigmoid(h @ p["e"].T + p["c"] + p["u"] * ybar)

    def get_state(self) -> dict[str, Any]:
        out: dict[str, Any] = {f"p.{n}": v for n, v in self.params.items()}
        out.update(
            {
                "z_train": self.z_train,
                "y_train": self.y_train,
                "mu": self.mu,
                "sd": self.sd,
                "k": np.asarray([self.k]),
            }
        )
        return out

    @classmethod
    def from_state(cls, arrays: dict[str, Any]) -> GraphHead:
        return cls(
            arrays["z_train"],
            arrays["y_train"],
            int(arrays["k"][0]),
            arrays["mu"],
            arrays["sd"],
            {n: arrays[f"p.{n}"] for n in _PARAMS},
        )


def train_graph(
    z: FloatArray,
    y: FloatArray,
    k: int,
    l2: float,
    hidden: int,
    steps: int,
    lr: float,
    random_state: int,
) -> GraphHead:
    """Fit the network on the training graph (torch, full batch)."""
    with torch_threads("the graph scorer") as torch:
        return _train_graph(torch, z, y, k, l2, hidden, steps, lr, random_state)


def _train_graph(
    torch: Any,
    z: FloatArray,
    y: FloatArray,
    k: int,
    l2: float,
    hidden: int,
    steps: int,
    lr: float,
    random_state: int,
) -> GraphHead:
    mu = z.mean(axis=0)
    sd = np.maximum(z.std(axis=0), 1e-6)
    empty = {n: np.zeros(1) for n in _PARAMS}
    head = GraphHead(z, y, k, mu, sd, empty)
    zs, zbar, ybar = head.inputs(z, exclude_self=True)
    d, m = z.shape[1], y.shape[1]
    t = {
        "zs": torch.tensor(zs, dtype=torch.float32),
        "zbar": torch.tensor(zbar, dtype=torch.float32),
        "ybar": torch.tensor(ybar, dtype=torch.float32),
        "y": torch.tensor(y, dtype=torch.float32),
    }
    gen = torch.Generator().manual_seed(int(random_state))

    def init(*shape: int, scale: float) -> Any:
        return (torch.randn(*shape, generator=gen) * scale).requires_grad_(True)

    p = {
        "wz": init(d, hidden, scale=1.0 / np.sqrt(d)),
        "wn": init(d, hidden, scale=1.0 / np.sqrt(d)),
        "wy": init(m, hidden, scale=1.0 / np.sqrt(m)),
        "b": torch.zeros(hidden, requires_grad=True),
        # Every model starts from the same embedding: models with identical scores get
        # identical gradients and stay identical (ties are never broken by initialisation).
        "e": (torch.randn(1, hidden, generator=gen) / np.sqrt(hidden))
        .repeat(m, 1)
        .requires_grad_(True),
        "c": torch.tensor(
            np.log(np.clip(head.prior, 0.02, 0.98) / (1 - np.clip(head.prior, 0.02, 0.98))),
            dtype=torch.float32,
        ).requires_grad_(True),
        "u": torch.zeros(m, requires_grad=True),
    }
    opt = torch.optim.Adam(list(p.values()), lr=lr)
    bce = torch.nn.BCEWithLogitsLoss()
    for _ in range(int(steps)):
        opt.zero_grad()
        h = torch.relu(t["zs"] @ p["wz"] + t["zbar"] @ p["wn"] + t["ybar"] @ p["wy"] + p["b"])
        logits = h @ p["e"].T + p["c"] + p["u"] * t["ybar"]
        penalty = sum((p[n] ** 2).sum() for n in ("wz", "wn", "wy", "e", "u"))
        loss = bce(logits, t["y"]) + l2 * penalty
        loss.backward()
        opt.step()
    head.params = {n: v.detach().double().numpy() for n, v in p.items()}
    return head


class GraphScorer(HeadScorer):
    """Inductive query-model graph network (GraphRouter-style edge prediction), torch extra.

    Args:
        n_neighbors: Similarity edges per query (``None``: chosen by CV).
        l2: Weight penalty (``None``: chosen by CV).
        hidden: Width of the query node states and model embeddings.
        steps: Full-batch Adam steps.
        learning_rate: Adam step size.

    Example:
        >>> GraphScorer(n_neighbors=20).n_neighbors
        20
    """

    input = "dense_raw"
    search_space = {"n_neighbors": (10, 40), "l2": (1e-4, 1e-3)}
    tags = Tags(extras=("torch",))

    def __init__(
        self,
        n_neighbors: int | None = None,
        l2: float | None = None,
        hidden: int = 32,
        steps: int = 300,
        learning_rate: float = 0.01,
    ) -> None:
        self.n_neighbors = n_neighbors
        self.l2 = l2
        self.hidden = hidden
        self.steps = steps
        self.learning_rate = learning_rate

    def check_params(self) -> None:
        import_torch("the graph scorer")
        if self.n_neighbors is not None and int(self.n_neighbors) < 1:
            raise ValueError(f"n_neighbors must be >= 1, got {self.n_neighbors!r}")
        if int(self.hidden) < 1 or int(self.steps) < 1:
            raise ValueError("hidden and steps must be >= 1")
        if self.l2 is not None and not float(self.l2) >= 0:
            raise ValueError(f"l2 must be >= 0, got {self.l2!r}")

    def fit_head(self, X: Any, Y: FloatArray, params: dict[str, Any], context: FitContext) -> Head:
        return train_graph(
            np.asarray(X),
            Y,
            int(params["n_neighbors"]),
            float(params["l2"]),
            int(self.hidden),
            int(self.steps),
            float(self.learning_rate),
            context.random_state,
        )
