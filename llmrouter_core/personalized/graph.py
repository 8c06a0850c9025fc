"""A GMTRouter-style graph learner (``learner="graph"``, the ``torch`` extra).

Users, queries, models and responses are typed nodes; the typed edges are the data in
:data:`EDGE_TYPES`. A response node is one model's answer to one query: it hears its query
(the base router's predicted quality and cost for every model on that query) and its model (a
learned embedding). A user node hears the responses the user gave feedback on, each edge
carrying what the user said: a rating's surprise (the rating minus the base router's utility
of that answer) or the side of a pairwise choice (+1 preferred, -1 not); the message is the
response's embedding scaled by it (signed), averaged over the user's edges. Pairs are only ever
formed from one user's own choice, and a user node has no parameters of its own: its profile
is computed from the user's last ``k`` events (inductive, so a new user with a few events gets
a profile without retraining; a user without events has the zero profile).

For a query, the personalized utility of model ``j`` is the base router's utility plus
``MAX_ADJUSTMENT * tanh(h_user . W h_response(q, j))``: query-conditioned, and exactly the
base router's for the zero profile.

Training (:meth:`GraphLearner.train`) reads many users' feedback: each event is predicted from
a profile built from the same user's events *before* it (the event's own rating never reaches
the graph it is scored by), and a share of the users is held out entirely as the validation
split that picks the epoch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from llmrouter_core.data.core import FloatArray
from llmrouter_core.errors import DataError
from llmrouter_core.personalized.learner import Evidence
from llmrouter_core.training.torch import import_torch, torch_threads

__all__ = ["EDGE_TYPES", "GraphLearner"]

#: The typed edges: (source node type, relation, destination node type), in message order.
EDGE_TYPES: tuple[tuple[str, str, str], ...] = (
    ("query", "answered_by", "response"),
    ("model", "wrote", "response"),
    ("response", "feedback_from", "user"),
)
#: Width of a feedback edge's attributes: (rating surprise, side of a pairwise choice).
EDGE_ATTRS = 2
#: The largest utility adjustment a profile makes (utility is on the quality scale, [0, 1]).
MAX_ADJUSTMENT = 0.5
_WHAT = 'the personalized router\'s learner="graph"'


@dataclass(frozen=True)
class _Context:
    """Feedback edges of several users: response rows and what each user said of them."""

    quality: FloatArray  # (r, m) the base's predictions at each response's query
    cost: FloatArray
    model: Any  # (r,) the response's model
    user: Any  # (r,) which user (0..n_users-1) gave the feedback
    attrs: FloatArray  # (r, EDGE_ATTRS)
    n_users: int


def _context(evidence: list[Evidence], cost_weight: float) -> _Context:
    """The feedback edges of each evidence (one per user; both sides of a pairwise choice)."""
    parts: list[tuple[Any, ...]] = []
    for u, ev in enumerate(evidence):
        rows = np.arange(ev.n)
        base = ev.quality - cost_weight * ev.cost
        rated = ~np.isnan(ev.rating)
        paired = ev.other >= 0
        r = rows[rated]
        surprise = ev.rating[rated] - base[r, ev.model[rated]]
        attrs_r = np.stack([surprise, np.zeros(r.size)], axis=1)
        p = rows[paired]
        won = np.stack([np.zeros(p.size), np.ones(p.size)], axis=1)
        lost = -won
        for idx, model, attrs in (
            (r, ev.model[rated], attrs_r),
            (p, ev.model[paired], won),
            (p, ev.other[paired], lost),
        ):
            parts.append((ev.quality[idx], ev.cost[idx], model, np.full(idx.size, u), attrs))
    m = evidence[0].quality.shape[1] if evidence else 0

    def cat(i: int, width: int | None) -> Any:
        arrays = [p[i] for p in parts if len(p[i])]
        if arrays:
            return np.concatenate(arrays)
        return np.zeros((0, width)) if width is not None else np.zeros(0, dtype=np.intp)

    return _Context(
        cat(0, m), cat(1, m), cat(2, None), cat(3, None), cat(4, EDGE_ATTRS), len(evidence)
    )


class GraphLearner:
    """The graph learner (see the module docstring); the same methods as
    :class:`~llmrouter_core.personalized.learner.OffsetLearner`, plus :meth:`train`.

    Args:
        n_models: Pool size.
        cost_scale: Mean training cost (costs are read in its units).
        dim: Width of the node embeddings.
        k: A profile reads the user's last ``k`` events.
        noise: Standard deviation of a rating around the user's utility (training loss).
        pair_scale: Slope of a pairwise choice's logistic (training loss).
        seed: Seed of the initial weights and the validation split.
    """

    def __init__(
        self,
        n_models: int,
        cost_scale: float,
        *,
        dim: int = 16,
        k: int = 10,
        noise: float = 0.25,
        pair_scale: float = 8.0,
        seed: int = 0,
    ) -> None:
        self.n_models, self.cost_scale, self.dim, self.k = n_models, cost_scale, dim, k
        self.noise, self.pair_scale, self.seed = noise, pair_scale, seed
        self.trained = False
        torch = import_torch(_WHAT)
        nn = torch.nn
        gen = torch.Generator().manual_seed(int(seed))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(gen.initial_seed()))
            self.net = nn.ModuleDict(
                {
                    "query": nn.Linear(2 * n_models, dim),
                    "model": nn.Embedding(n_models, dim),
                    "response": nn.Linear(2, dim),
                    **{
                        rel: nn.Linear(dim * (EDGE_ATTRS if dst == "user" else 1), dim)
                        for _, rel, dst in EDGE_TYPES
                    },
                    "score": nn.Linear(dim, dim, bias=False),
                }
            )
        self.net["score"].weight.data.zero_()  # untrained: the zero adjustment
        self.net.eval()

    # -- the graph ---------------------------------------------------------------------------
    def _responses(self, torch: Any, quality: Any, cost: Any, model: Any) -> Any:
        """Embeddings of response nodes (one model's answer to one query each): messages
        along the relations that end at a response."""
        q = torch.as_tensor(quality, dtype=torch.float32)
        c = torch.as_tensor(cost, dtype=torch.float32) / self.cost_scale
        j = torch.as_tensor(model, dtype=torch.long)
        rows = torch.arange(len(j))
        h = {
            "query": torch.tanh(self.net["query"](torch.cat([q, c], dim=1))),
            "model": self.net["model"].weight,
        }
        src_index = {"query": rows, "model": j}
        out = torch.tanh(self.net["response"](torch.stack([q[rows, j], c[rows, j]], dim=1)))
        for src, rel, dst in EDGE_TYPES:
            if dst == "response":  # each response has one query and one model
                out = torch.tanh(out + self._message(torch, rel, h[src][src_index[src]], None))
        return out

    def _users(self, torch: Any, ctx: _Context) -> Any:
        """User profiles: the mean message of each user's feedback edges (zero without)."""
        h_resp = self._responses(torch, ctx.quality, ctx.cost, ctx.model)
        dst = torch.as_tensor(ctx.user, dtype=torch.long)
        attrs = torch.as_tensor(ctx.attrs, dtype=torch.float32)
        h = torch.zeros(ctx.n_users, self.dim)
        for src, rel, kind in EDGE_TYPES:
            if kind == "user" and src == "response":
                msg = self._message(torch, rel, h_resp, attrs)
                total = torch.zeros(ctx.n_users, self.dim).index_add(0, dst, msg)
                degree = torch.zeros(ctx.n_users).index_add(0, dst, torch.ones(len(dst)))
                h = h + total / degree.clamp(min=1.0)[:, None]  # linear: no saturation
        return h

    def _message(self, torch: Any, rel: str, h_src: Any, attrs: Any) -> Any:
        if attrs is None:
            return self.net[rel](h_src)
        # Feedback: the response's embedding scaled by what the user said of it (signed: a
        # liked answer pulls the profile towards it, a disliked one away).
        signed = [h_src * attrs[:, i : i + 1] for i in range(EDGE_ATTRS)]
        return self.net[rel](torch.cat(signed, dim=1))

    def _delta(self, torch: Any, h_user: Any, quality: Any, cost: Any) -> Any:
        """``(n, m)`` utility adjustments for ``n`` queries of users ``h_user`` ``(n, d)``."""
        n, m = quality.shape
        q = np.repeat(np.asarray(quality), m, axis=0)
        c = np.repeat(np.asarray(cost), m, axis=0)
        h_resp = self._responses(torch, q, c, np.tile(np.arange(m), n)).reshape(n, m, -1)
        score = torch.einsum("nd,nmd->nm", self.net["score"](h_user), h_resp)
        return MAX_ADJUSTMENT * torch.tanh(score)  # bounded: a profile cannot swing wildly

    # -- the learner interface ---------------------------------------------------------------
    def fit(self, ev: Evidence, cost_weight: float) -> tuple[FloatArray, FloatArray]:
        """``(profile, empty covariance)``: the user's embedding from their last ``k`` events
        (zeros without events; no training: the shared weights are :meth:`train`'s)."""
        if ev.n == 0:
            return np.zeros(self.dim), np.zeros((0, 0))
        last = ev.take(np.arange(max(0, ev.n - self.k), ev.n))
        with torch_threads(_WHAT) as torch, torch.no_grad():
            h = self._users(torch, _context([last], cost_weight))
        return np.asarray(h[0].numpy(), dtype=np.float64), np.zeros((0, 0))

    def adjust(
        self, theta: FloatArray, quality: FloatArray, cost: FloatArray, cluster: Any
    ) -> FloatArray:
        """The personalized quality for ``(n, m)`` predictions (``cluster`` is not read)."""
        if not theta.any():
            return np.asarray(quality, dtype=np.float64)
        with torch_threads(_WHAT) as torch, torch.no_grad():
            h = torch.as_tensor(np.tile(theta, (len(quality), 1)), dtype=torch.float32)
            delta = self._delta(torch, h, quality, cost).double().numpy()
        return np.asarray(quality + delta, dtype=np.float64)

    def weight_shift(self, theta: FloatArray) -> float:
        """0: the price sensitivity is inside :meth:`adjust` (responses know their cost)."""
        return 0.0

    def gain_sd(
        self, covariance: FloatArray, cluster: int, models: tuple[int, int], cost: FloatArray
    ) -> float:
        """0: the graph has no posterior (the guard is its margin and the self-check)."""
        return 0.0

    # -- training ----------------------------------------------------------------------------
    def train(
        self,
        users: list[Evidence],
        cost_weight: float,
        *,
        epochs: int = 600,
        lr: float = 0.02,
        weight_decay: float = 1e-3,
        validation: float = 0.2,
    ) -> dict[str, Any]:
        """Learn the shared weights from ``users``' feedback (one evidence per user, events
        oldest first); returns the losses per epoch and the epoch kept (best on the held-out
        validation users).

        Raises:
            DataError: Fewer than 2 users with at least 2 events.
        """
        users = [ev for ev in users if ev.n >= 2]
        if len(users) < 2:
            raise DataError("the graph learner needs feedback from at least 2 users (2+ events)")
        rng = np.random.default_rng(self.seed)
        order = rng.permutation(len(users))
        n_val = max(1, int(round(validation * len(users))))
        splits = {
            "validation": self._samples([users[i] for i in order[:n_val]], cost_weight),
            "train": self._samples([users[i] for i in order[n_val:]], cost_weight),
        }
        history: dict[str, list[float]] = {"train": [], "validation": []}
        with torch_threads(_WHAT, seed=self.seed) as torch:
            opt = torch.optim.Adam(self.net.parameters(), lr=lr, weight_decay=weight_decay)
            best = (float("inf"), -1, {k: v.clone() for k, v in self.net.state_dict().items()})
            for epoch in range(int(epochs)):
                self.net.train()
                opt.zero_grad()
                loss = self._loss(torch, *splits["train"], cost_weight)
                loss.backward()
                opt.step()
                self.net.eval()
                with torch.no_grad():
                    val = float(self._loss(torch, *splits["validation"], cost_weight))
                history["train"].append(float(loss.detach()))
                history["validation"].append(val)
                if val < best[0]:
                    best = (val, epoch, {k: v.clone() for k, v in self.net.state_dict().items()})
            self.net.load_state_dict(best[2])
        self.trained = True
        return {**history, "best_epoch": best[1]}

    def _samples(self, users: list[Evidence], w: float) -> tuple[_Context, Evidence]:
        """Every event after a user's first, with a profile context of the same user's
        ``k`` events before it (a virtual user node per event: the event is never in the
        graph that scores it)."""
        contexts, targets = [], []
        for ev in users:
            for t in range(1, ev.n):
                contexts.append(ev.take(np.arange(max(0, t - self.k), t)))
                targets.append(ev.take(np.array([t])))
        target = Evidence(
            *(np.concatenate([getattr(e, f) for e in targets]) for f in _EVIDENCE_FIELDS)
        )
        return _context(contexts, w), target

    def _loss(self, torch: Any, ctx: _Context, target: Evidence, w: float) -> Any:
        """Negative log likelihood of the target events (ratings Gaussian, pairs logistic)."""
        h_user = self._users(torch, ctx)
        delta = self._delta(torch, h_user, target.quality, target.cost)
        base = torch.as_tensor(target.quality - w * target.cost, dtype=torch.float32)
        u = base + delta
        rows = np.arange(target.n)
        out = torch.zeros(())
        rated = ~np.isnan(target.rating)
        if rated.any():
            r = torch.as_tensor(target.rating[rated], dtype=torch.float32)
            err = u[rows[rated], target.model[rated]] - r
            out = out + 0.5 * (err**2).sum() / self.noise**2
        paired = target.other >= 0
        if paired.any():
            p = rows[paired]
            diff = u[p, target.model[paired]] - u[p, target.other[paired]]
            out = out + torch.nn.functional.softplus(-self.pair_scale * diff).sum()
        return out / max(target.n, 1)

    # -- persistence -------------------------------------------------------------------------
    def get_state(self) -> tuple[dict[str, Any], dict[str, FloatArray]]:
        """JSON-safe settings and the weights as plain arrays (no pickle)."""
        meta = {"dim": self.dim, "k": self.k, "trained": self.trained}
        arrays = {k: v.detach().numpy().copy() for k, v in self.net.state_dict().items()}
        return meta, arrays

    def set_state(self, arrays: dict[str, Any]) -> None:
        """Load weights saved by :meth:`get_state`.

        Raises:
            DataError: The arrays do not fit this learner.
        """
        torch = import_torch(_WHAT)
        own = self.net.state_dict()
        if set(arrays) != set(own):
            raise DataError("the saved graph learner's weights do not fit its settings")
        loaded = {}
        for key, value in own.items():
            array = np.asarray(arrays[key], dtype=np.float32)
            if array.shape != tuple(value.shape):
                raise DataError(f"the saved graph weight {key!r} has the wrong shape")
            loaded[key] = torch.as_tensor(array)
        self.net.load_state_dict(loaded)
        self.trained = True


_EVIDENCE_FIELDS = ("quality", "cost", "cluster", "model", "rating", "other")
