"""FrugalGPT's answer scorer and its chain, label and threshold search (Chen, Zaharia and Zou,
2023, "FrugalGPT").

The scorer ``g(query, answers so far) -> P(the stage's answer is good)`` is trained on the
*recorded* answers of the training data (``RoutingData.responses``):

* per chain model, a logistic regression on hashed words of the question's tail and of the
  answer, plus the answer's length (the *text heads*);
* per chain, a logistic regression on the question alone for the last model's quality (the
  *query head*: what escalating can be expected to bring);
* per (first stage called, stage), a logistic regression on the stage features of
  :func:`~llmrouter_core.cascades.answers.stage_matrix`: the text heads' out-of-fold logits
  and how far the answer agrees with the answers already obtained (the *stage heads*).

Every head is fitted by the one soft-label logistic solver,
:func:`~llmrouter_core.training.solvers.soft_logistic_path` (text and query heads: an
intercept penalised like liblinear's; stage heads: an unpenalised one).

:func:`fit_frugalgpt` chooses the chain (greedy, from the cheapest and the best model, adding
the model that helps most), the label (:data:`~llmrouter_core.cascades.answers.LABELS`) and,
per chain, the *efficient policies*: a first stage and one acceptance threshold per stage,
found by coordinate ascent on the out-of-fold utility for a range of cost weights. Everything
is chosen by cross-validated AIQ on the training data only.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from llmrouter_core._math import logit, sigmoid
from llmrouter_core.cascades.answers import (
    LABELS,
    agreement_tensor,
    is_text,
    stage_labels,
    stage_matrix,
    tail,
)
from llmrouter_core.data.core import FloatArray, RoutingData
from llmrouter_core.errors import DataError, UnknownModelError
from llmrouter_core.evaluation.metrics import aiq
from llmrouter_core.execution.plans import ACaller, Caller, Judgement, StageContext
from llmrouter_core.features.hashing import HashingEmbedder
from llmrouter_core.policy.base import cost_weight_grid
from llmrouter_core.training.solvers import Design, soft_logistic_path

__all__ = [
    "AnswerScorer",
    "ChainFit",
    "FrugalGPTFit",
    "LogisticHead",
    "constrained_argmax",
    "fit_frugalgpt",
    "outcome",
]

logger = logging.getLogger(__name__)

Arrays = dict[str, Any]
IntArray = npt.NDArray[np.intp]
Folds = list[tuple[IntArray, IntArray]]

ANSWER_CHARS = 2000  # the answer scorer reads this many characters of an answer
NEVER = 2.0  # a threshold no probability reaches: never accept at this stage
_STAGE_TOL = 1e-8  # the stage heads are small: solve them to (nearly) the exact optimum


# -- logistic heads ------------------------------------------------------------------------------


@dataclass
class LogisticHead:
    """``P = sigmoid(x @ coef + intercept)``.

    Scores in [0, 1] are soft labels: a row with score ``s`` counts as a positive with weight
    ``s`` and a negative with weight ``1 - s``. Labels of one class only give a constant head
    (their mean), never an error.
    """

    coef: FloatArray
    intercept: float

    @classmethod
    def fit_many(
        cls, x: Any, y: FloatArray, c: float, *, penalize_bias: bool = True, tol: float = 1e-5
    ) -> list[LogisticHead]:
        """One head per column of ``y`` on the same inputs ``x`` (sparse or dense), L2
        strength ``1 / c`` (scikit-learn's ``C``), by
        :func:`~llmrouter_core.training.solvers.soft_logistic_path`."""
        y = np.clip(np.asarray(y, dtype=np.float64).reshape(x.shape[0], -1), 0.0, 1.0)
        d = int(x.shape[1])
        heads: list[LogisticHead | None] = [None] * y.shape[1]
        solve = []
        for j in range(y.shape[1]):
            col = y[:, j]
            if not (col > 0).any() or not (col < 1).any():
                mean = float(np.clip(col.mean() if col.size else 0.5, 1e-3, 1 - 1e-3))
                heads[j] = cls(np.zeros(d), math.log(mean / (1.0 - mean)))
            else:
                solve.append(j)
        if solve:
            design = Design(x, bias=True)
            ((coef, bias),) = soft_logistic_path(
                design, y[:, solve], [float(c)], tol=tol, penalize_bias=penalize_bias
            )
            dense = coef.toarray() if hasattr(coef, "toarray") else np.asarray(coef)
            for k, j in enumerate(solve):
                heads[j] = cls(np.array(dense[:, k], dtype=np.float64), float(bias[k]))
        return [h for h in heads if h is not None]

    @classmethod
    def fit(cls, x: Any, y: FloatArray, c: float, *, penalize_bias: bool = True) -> LogisticHead:
        """One head (see :meth:`fit_many`); dense stage features get an unpenalised
        intercept and a tight tolerance."""
        tol = 1e-5 if penalize_bias else _STAGE_TOL
        return cls.fit_many(x, y, c, penalize_bias=penalize_bias, tol=tol)[0]

    def decision(self, x: Any) -> FloatArray:
        return np.asarray(x @ self.coef, dtype=np.float64).ravel() + self.intercept

    def predict(self, x: Any) -> FloatArray:
        return sigmoid(self.decision(x))

    def state(self, prefix: str) -> Arrays:
        return {f"{prefix}/coef": self.coef, f"{prefix}/intercept": np.asarray([self.intercept])}

    @classmethod
    def from_state(cls, arrays: Mapping[str, Any], prefix: str) -> LogisticHead:
        return cls(
            np.asarray(arrays[f"{prefix}/coef"], dtype=np.float64).ravel(),
            float(np.asarray(arrays[f"{prefix}/intercept"]).ravel()[0]),
        )


# -- the answer scorer -----------------------------------------------------------------------


class AnswerScorer:
    """FrugalGPT's answer scorer over a fitted chain (see the module docstring).

    It is also the cascade *acceptor* ``"frugalgpt"``: the executor asks :meth:`score` for the
    probability that a stage's answer is good (``None`` for a model outside its chain).

    Attributes:
        chain: The chain's models, cheapest first.
    """

    def __init__(
        self,
        chain: Sequence[str],
        emb_q: HashingEmbedder,
        emb_a: HashingEmbedder,
        text_heads: Sequence[LogisticHead],
        query_head: LogisticHead,
        stage_heads: Mapping[tuple[int, int], LogisticHead],
        lz_mean: FloatArray,
        ag_mean: FloatArray,
        query_chars: int,
    ) -> None:
        self.chain = list(chain)
        self.emb_q = emb_q
        self.emb_a = emb_a
        self.text_heads = list(text_heads)
        self.query_head = query_head
        self.stage_heads = dict(stage_heads)
        self.lz_mean = np.asarray(lz_mean, dtype=np.float64)
        self.ag_mean = np.asarray(ag_mean, dtype=np.float64)
        self.query_chars = int(query_chars)

    def __repr__(self) -> str:
        return f"AnswerScorer(chain={self.chain})"

    # -- features ----------------------------------------------------------------------------
    def question_features(self, queries: Sequence[str]) -> Any:
        return question_features(self.emb_q, queries, self.query_chars)

    def text_logits(self, queries: Sequence[str], answers: Sequence[Sequence[str | None]]) -> Any:
        """``(n, K)`` logits of the text heads; ``nan`` where an answer is missing."""
        n, k_len = len(queries), len(self.chain)
        out = np.full((n, k_len), np.nan)
        if n == 0:
            return out
        xq = self.question_features(queries)
        for k in range(k_len):
            rows = [i for i in range(n) if is_text(answers[i][k])]
            if not rows:
                continue
            x = text_inputs(self.emb_a, xq[rows], [str(answers[i][k]) for i in rows])
            out[rows, k] = np.clip(self.text_heads[k].decision(x), -9.0, 9.0)
        return out

    def query_logits(self, queries: Sequence[str]) -> FloatArray:
        """Logit of the last chain model's quality predicted from the question alone."""
        if not len(queries):
            return np.zeros(0)
        x = self.question_features(queries)
        return np.clip(self.query_head.decision(x), -9.0, 9.0)

    # -- scores ------------------------------------------------------------------------------
    def stage_probs(self, lz: FloatArray, lq: FloatArray, ag: FloatArray, start: int) -> FloatArray:
        """``(n, K - 1)`` P(good) of each stage from ``start`` on (0 before it), given the
        text logits ``lz``, query logits ``lq`` and agreement ``ag`` of every chain model."""
        k_len = len(self.chain)
        out = np.zeros((lz.shape[0], max(k_len - 1, 0)))
        for k in range(start, k_len - 1):
            x = stage_matrix(lz, ag, range(start, k), k, self.lz_mean, self.ag_mean, lq)
            out[:, k] = self.stage_heads[(start, k)].predict(np.nan_to_num(x))
        return out

    def stage_scores(
        self, queries: Sequence[str], answers: Sequence[Sequence[str | None]], start: int
    ) -> FloatArray:
        """``(n, K - 1)``: the score of stage ``k`` given the answers of stages ``start..k``
        (chain order; ``nan`` where stage ``k`` has no answer or ``k < start``)."""
        k_len = len(self.chain)
        lz = self.text_logits(queries, answers)
        lq = self.query_logits(queries)
        ag = agreement_tensor(answers) if len(answers) else np.zeros((0, k_len, k_len))
        probs = self.stage_probs(lz, lq, ag, start)
        out = np.full(probs.shape, np.nan)
        for k in range(start, k_len - 1):
            have = ~np.isnan(lz[:, k])
            out[have, k] = probs[have, k]
        return out

    def score_answers(
        self, queries: Sequence[str], answers: Sequence[Mapping[str, str]], *, start: int = 0
    ) -> FloatArray:
        """P(answer is good) of each chain model's answer, as the cascade would judge it.

        Args:
            queries: The questions.
            answers: Per query, the answers obtained so far by chain model name.
            start: Chain position the cascade started at.

        Returns:
            ``(n, len(chain) - 1)``: the score of stage ``k`` given the answers of stages
            ``start..k`` (``nan`` where stage ``k`` has no answer or ``k < start``).
        """
        rows = [[a.get(m) for m in self.chain] for a in answers]
        return self.stage_scores(list(queries), rows, start)

    # -- the acceptor ------------------------------------------------------------------------
    def score(self, stage: StageContext, call: Caller | None = None) -> Judgement:
        """P(good) of ``stage``'s answer given the answers of the stages before it (``None``
        when its model, or the cascade's first model, is not in the chain, or it is the
        chain's last model)."""
        chain = self.chain
        first, model = stage.plan.stages[0].model, stage.model
        if first not in chain or model not in chain:
            return Judgement(None)
        start, pos = chain.index(first), chain.index(model)
        if pos < start or pos >= len(chain) - 1:
            return Judgement(None)
        row: list[str | None] = [stage.answers.get(m) for m in chain]
        value = float(self.stage_scores([stage.query], [row], start)[0, pos])
        return Judgement(None if math.isnan(value) else value)

    async def ascore(self, stage: StageContext, acall: ACaller | None = None) -> Judgement:
        """:meth:`score` (no call is made)."""
        return self.score(stage)

    # -- persistence -------------------------------------------------------------------------
    def get_state(self) -> tuple[dict[str, Any], Arrays]:
        meta = {
            "chain": list(self.chain),
            "stages": [[s, k] for s, k in sorted(self.stage_heads)],
            "embedder": self.emb_q.get_config(),
            "answer_embedder": self.emb_a.get_config(),
            "query_chars": self.query_chars,
        }
        arrays: Arrays = {
            "emb_q/idf": self.emb_q.get_state()["idf"],
            "emb_a/idf": self.emb_a.get_state()["idf"],
            "lz_mean": self.lz_mean,
            "ag_mean": self.ag_mean,
        }
        for k, head in enumerate(self.text_heads):
            arrays.update(head.state(f"text/{k}"))
        arrays.update(self.query_head.state("query"))
        for (s, k), head in self.stage_heads.items():
            arrays.update(head.state(f"stage/{s}/{k}"))
        return meta, arrays

    @classmethod
    def from_state(cls, meta: Mapping[str, Any], arrays: Mapping[str, Any]) -> AnswerScorer:
        chain = [str(m) for m in meta["chain"]]
        emb_q = HashingEmbedder(**dict(meta["embedder"]))
        emb_q.set_state({"idf": arrays["emb_q/idf"]})
        emb_a = HashingEmbedder(**dict(meta["answer_embedder"]))
        emb_a.set_state({"idf": arrays["emb_a/idf"]})
        k_len = len(chain)
        stages = {(int(s), int(k)) for s, k in meta["stages"]}
        expected = {(s, k) for s in range(k_len - 1) for k in range(s, k_len - 1)}
        if stages != expected:
            raise ValueError(f"the saved stage heads {sorted(stages)} do not fit the chain")
        return cls(
            chain,
            emb_q,
            emb_a,
            [LogisticHead.from_state(arrays, f"text/{k}") for k in range(k_len)],
            LogisticHead.from_state(arrays, "query"),
            {(s, k): LogisticHead.from_state(arrays, f"stage/{s}/{k}") for s, k in stages},
            np.asarray(arrays["lz_mean"], dtype=np.float64),
            np.asarray(arrays["ag_mean"], dtype=np.float64),
            int(meta["query_chars"]),
        )


def question_features(emb: HashingEmbedder, queries: Sequence[str], chars: int) -> Any:
    """Hashed features of the last ``chars`` characters of each question."""
    return emb.transform([tail(q, chars) for q in queries])


def text_inputs(emb_a: HashingEmbedder, xq: Any, answers: Sequence[str]) -> Any:
    """A text head's inputs: question features, answer features and the answer's length."""
    import scipy.sparse as sp

    length = np.log1p(np.array([len(a) for a in answers], dtype=np.float64))[:, None] / 8.0
    return sp.hstack([xq, emb_a.transform(list(answers)), sp.csr_matrix(length)], format="csr")


# -- training: out-of-fold evaluation of chains -------------------------------------------------


@dataclass
class ChainFit:
    """Out-of-fold evaluation of one chain on the training queries: its efficient policies
    (a first stage and one threshold per stage each, with their training mean cost and
    quality) and the AIQ of the curve they give."""

    chain: list[int]
    label: str
    aiq: float
    starts: IntArray
    taus: FloatArray
    costs: FloatArray
    qualities: FloatArray


@dataclass
class _Search:
    lz: FloatArray  # (n, m) out-of-fold text logits of every model
    lq: FloatArray  # (n, m) out-of-fold question-only logits of every model
    ag: FloatArray  # (n, m, m) answer agreement
    scores: FloatArray
    costs: FloatArray
    folds: Folds
    c: float
    n_thresholds: int
    c_range: tuple[float, float]
    report: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class FrugalGPTFit:
    """What :func:`fit_frugalgpt` learns: the answer scorer, the chosen chain and label with
    their efficient policies, and every chain tried with its cross-validated AIQ."""

    scorer: AnswerScorer
    best: ChainFit
    report: list[dict[str, Any]]


def outcome(
    probs: FloatArray, tau: FloatArray, start: int, costs: FloatArray, scores: FloatArray
) -> tuple[IntArray, FloatArray, FloatArray]:
    """Chain position answering each query, its total cost and its score, for the policy
    (start, tau): stages from ``start`` on, accept at the first ``probs >= tau``."""
    n, k_len = costs.shape
    accept = np.ones((n, k_len - start), dtype=bool)
    if k_len - 1 > start:
        accept[:, :-1] = probs[:, start:] >= tau[None, start:]
    first = start + np.argmax(accept, axis=1)
    paid = np.cumsum(costs[:, start:], axis=1)
    rows = np.arange(n)
    return first, paid[rows, first - start], scores[rows, first]


def _evaluate_chain(chain: list[int], label: str, ctx: _Search) -> ChainFit:
    """Out-of-fold stage scores of ``chain``, its efficient policies, and the AIQ of the
    curve they give on the training queries (as served: see :func:`constrained_argmax`)."""
    k_len = len(chain)
    s_len = k_len - 1
    lz = ctx.lz[:, chain]
    lq = ctx.lq[:, chain[-1]]
    ag = ctx.ag[:, chain][:, :, chain]
    costs = ctx.costs[:, chain]
    scores = ctx.scores[:, chain]
    y = stage_labels(scores, label)
    lz_mean = lz.mean(axis=0)
    ag_mean = np.nan_to_num(np.nanmean(ag, axis=0), nan=0.0)
    n = lz.shape[0]
    starts: list[int] = []
    taus: list[FloatArray] = []
    pol_cost: list[float] = []
    pol_quality: list[float] = []
    for start in range(k_len):
        # Out-of-fold P(accept-worthy) of each stage when the cascade starts at ``start``.
        probs = np.zeros((n, s_len))
        for k in range(start, s_len):
            x = stage_matrix(lz, ag, range(start, k), k, lz_mean, ag_mean, lq)
            for tr, va in ctx.folds:
                head = LogisticHead.fit(x[tr], y[tr, k], ctx.c, penalize_bias=False)
                probs[va, k] = head.predict(x[va])
        found = _search_thresholds(probs, start, costs, scores, ctx)
        cands = np.asarray([c for _, c, _ in found])
        quals = np.asarray([q for _, _, q in found])
        # Per start, only the policies no cheaper policy of the same start beats.
        for i in _frontier(cands, quals):
            starts.append(start)
            taus.append(found[i][0])
            pol_cost.append(float(cands[i]))
            pol_quality.append(float(quals[i]))
    start_arr = np.asarray(starts, dtype=np.intp)
    tau_arr = np.asarray(taus, dtype=np.float64).reshape(len(taus), s_len)
    cost_arr = np.asarray(pol_cost)
    quality_arr = np.asarray(pol_quality)
    grid = cost_weight_grid(costs)
    chosen = [p for p in constrained_argmax(grid, cost_arr, quality_arr, start_arr) if p >= 0]
    points = [(cost_arr[p], quality_arr[p]) for p in chosen]
    c_min, c_max = ctx.c_range
    value = float(aiq(points, c_min, c_max)) if c_max > c_min else float(quality_arr.max())
    return ChainFit(list(chain), label, value, start_arr, tau_arr, cost_arr, quality_arr)


def _frontier(cost: FloatArray, quality: FloatArray) -> list[int]:
    """Indices of the points on the cost-quality frontier (each strictly better than every
    cheaper point), one per distinct point, cheapest first."""
    order = np.lexsort((-quality, cost))
    keep: list[int] = []
    best = -math.inf
    for i in order:
        if quality[i] > best + 1e-12:
            keep.append(int(i))
            best = float(quality[i])
    return keep


def _search_thresholds(
    probs: FloatArray, start: int, costs: FloatArray, scores: FloatArray, ctx: _Search
) -> list[tuple[FloatArray, float, float]]:
    """Threshold vectors with high out-of-fold utility for a range of lambdas, with their mean
    cost and quality.

    Coordinate ascent per lambda (a backward pass from "never accept", then forward and
    backward passes); each stage's threshold is chosen exactly among candidates (quantiles of
    its scores, 0 = always accept, and a never-accept value) with the others fixed. Also
    returned: "accept at the first stage" and "never accept" (straight to the last model).
    """
    n, k_len = costs.shape
    s_len = k_len - 1
    candidates = [np.full(s_len, NEVER)]
    if s_len > start:
        candidates.append(np.where(np.arange(s_len) >= start, 0.0, NEVER))
        qs = np.linspace(0.0, 1.0, ctx.n_thresholds + 1)[1:-1]
        cands = [
            np.unique(np.concatenate([[0.0, NEVER], np.quantile(probs[:, k], qs)]))
            for k in range(s_len)
        ]
        c_min, c_max = ctx.c_range
        lo = 0.01 / max(c_max, 1e-12)
        hi = 1.0 / max(c_min, 1e-12)
        cum = np.cumsum(costs, axis=1)
        rows = np.arange(n)
        stages = list(range(start, s_len))
        for lam in [*np.geomspace(hi, lo, 24).tolist(), 0.0]:
            tau = np.full(s_len, NEVER)
            for order in (stages[::-1], stages, stages[::-1]):
                for k in order:
                    tau[k] = _best_threshold(probs, tau, k, start, cum, scores, lam, cands[k], rows)
            candidates.append(tau.copy())
    out = []
    for tau in candidates:
        _, cost, quality = outcome(probs, tau, start, costs, scores)
        out.append((tau, float(cost.mean()), float(quality.mean())))
    return out


def _best_threshold(
    probs: FloatArray,
    tau: FloatArray,
    k: int,
    start: int,
    cum: FloatArray,
    scores: FloatArray,
    lam: float,
    cands: FloatArray,
    rows: IntArray,
) -> float:
    """The candidate threshold of stage ``k`` with the best total utility, others fixed."""
    n, k_len = cum.shape
    base = cum[:, start - 1] if start > 0 else np.zeros(n)
    accept = np.ones((n, k_len), dtype=bool)
    accept[:, : k_len - 1] = probs >= tau[None, :]
    accept[:, :start] = False
    # Reaching k: rejected at every stage in start..k-1.
    reach = ~accept[:, start:k].any(axis=1) if k > start else np.ones(n, dtype=bool)
    # If rejected at k: the first acceptance after k.
    after = accept[:, k + 1 :]
    nxt = k + 1 + np.argmax(after, axis=1)
    u_rest = scores[rows, nxt] - lam * (cum[rows, nxt] - base)
    u_acc = scores[:, k] - lam * (cum[:, k] - base)
    gain = np.where(reach, u_acc - u_rest, 0.0)
    p = probs[:, k]
    order = np.argsort(-p, kind="stable")
    sorted_p = p[order]
    csum = np.concatenate(([0.0], np.cumsum(gain[order])))
    # Number of queries with p >= t, for each candidate t.
    count = np.searchsorted(-sorted_p, -cands, side="right")
    total = csum[count]
    best = int(np.argmax(total))  # first maximum: the lowest threshold (cheaper) among ties
    return float(cands[best])


def constrained_argmax(
    grid: Sequence[float], cost: FloatArray, quality: FloatArray, starts: IntArray
) -> list[int]:
    """Policy per grid lambda (``-1`` at ``inf``): the best training utility among policies
    that start no earlier in the chain than the policy of any larger lambda, so the first
    model called only moves up the chain as the willingness to pay grows (and the mean cost
    never decreases)."""
    out: list[int] = []
    min_start = 0
    for w in grid:
        if math.isinf(w):
            out.append(-1)
            continue
        ok = starts >= min_start
        util = np.where(ok, quality - w * cost, -np.inf)
        best = util.max()
        tied = ok & (util >= best - 1e-12)
        p = int(np.argmin(np.where(tied, cost, np.inf)))
        out.append(p)
        min_start = int(starts[p])
    return out


# -- training: the whole search -----------------------------------------------------------------


def chain_order(models: Sequence[str], mean_cost: FloatArray, picks: Sequence[int]) -> list[int]:
    """``picks`` ordered cheap -> expensive (ties by name, never by column order)."""
    return sorted({int(j) for j in picks}, key=lambda j: (float(mean_cost[j]), models[j]))


def best_model(models: Sequence[str], mean_score: FloatArray, mean_cost: FloatArray) -> int:
    """Highest mean score; ties: cheaper, then by name."""
    return min(
        range(len(models)), key=lambda j: (-float(mean_score[j]), float(mean_cost[j]), models[j])
    )


def resolve_chain(chain: Sequence[str] | None, models: Sequence[str]) -> list[int] | None:
    """Column indices of a given chain (``None``: to be searched)."""
    if chain is None:
        return None
    if isinstance(chain, str) or not len(chain):
        raise ValueError("chain must be a non-empty list of pool model names")
    unknown = [m for m in chain if m not in models]
    if unknown:
        raise UnknownModelError(
            f"chain models not in the pool: {unknown}; the pool has {list(models)}"
        )
    if len(set(chain)) != len(chain):
        raise ValueError(f"chain has repeated models: {list(chain)}")
    return [list(models).index(m) for m in chain]


def fit_frugalgpt(
    data: RoutingData,
    folds: Folds,
    *,
    chain: Sequence[str] | None = None,
    max_length: int = 5,
    label: str | None = None,
    C: float = 1.0,
    n_features: int = 2**12,
    query_chars: int = 400,
    n_thresholds: int = 40,
) -> FrugalGPTFit:
    """Train FrugalGPT's answer scorer and choose its chain, label and policies (see the
    module docstring), on ``data``'s recorded answers, with the cross-validation ``folds``.

    Raises:
        DataError: ``data`` has no recorded responses (or none complete for the chain).
    """
    models = list(data.models)
    n = data.n_queries
    scores = data.scores
    costs = data.require_costs()
    mean_cost = costs.mean(axis=0)
    if data.responses is None:
        raise DataError(
            f"{data!r} has no recorded responses: FrugalGPT trains its answer scorer on the "
            "answers the models gave (e.g. RouterBench's files carry them)"
        )
    responses = data.responses
    complete = [j for j in range(len(models)) if all(is_text(a) for a in responses[:, j])]
    fixed = resolve_chain(chain, models)
    if fixed is not None:
        bad = [models[j] for j in fixed if j not in complete]
        if bad:
            raise DataError(f"chain models without complete recorded responses: {bad}")
    if not complete:
        raise DataError("no pool model has complete recorded responses to train on")
    skipped = [models[j] for j in range(len(models)) if j not in complete]
    if skipped:
        logger.warning(
            "frugalgpt: left out of the chain search (incomplete responses): %s", skipped
        )
    chars = int(query_chars)
    emb_q = HashingEmbedder(int(n_features), max_chars=chars).fit(
        [tail(q, chars) for q in data.queries]
    )
    emb_a = HashingEmbedder(int(n_features), max_chars=ANSWER_CHARS).fit(
        [str(a) for j in complete for a in responses[:, j]]
    )
    xq = question_features(emb_q, data.queries, chars)
    inputs = {j: text_inputs(emb_a, xq, [str(a) for a in responses[:, j]]) for j in complete}
    cols = np.asarray(complete, dtype=np.intp)
    text_oof = np.full((n, len(models)), np.nan)
    query_oof = np.full((n, len(models)), 0.5)
    for tr, va in folds:
        for j in complete:
            head = LogisticHead.fit(inputs[j][tr], scores[tr, j], C)
            text_oof[va, j] = head.predict(inputs[j][va])
        # One design for every model's question-only head.
        heads = LogisticHead.fit_many(xq[tr], scores[np.ix_(tr, cols)], C)
        for j, head in zip(complete, heads, strict=True):
            query_oof[va, j] = head.predict(xq[va])
    lz_all = logit(np.where(np.isnan(text_oof), 0.5, text_oof))
    ag_all = agreement_tensor(
        [[str(a) if j in complete else None for j, a in enumerate(row)] for row in responses]
    )
    ctx = _Search(
        lz=lz_all,
        lq=logit(query_oof),
        ag=ag_all,
        scores=scores,
        costs=costs,
        folds=folds,
        c=float(C),
        n_thresholds=int(n_thresholds),
        c_range=(float(mean_cost.min()), float(mean_cost.max())),
    )
    best: ChainFit | None = None
    for lab in [label] if label is not None else list(LABELS):
        if fixed is not None:
            fit = _evaluate_chain(fixed, lab, ctx)
            ctx.report.append({"chain": [models[j] for j in fixed], "label": lab, "aiq": fit.aiq})
        else:
            fit = _greedy_chain(models, lab, complete, mean_cost, int(max_length), ctx)
        if best is None or fit.aiq > best.aiq + 1e-12:
            best = fit
    assert best is not None
    idx = best.chain
    k_len = len(idx)
    # Final heads on every training query; the stage heads read out-of-fold text scores, as
    # they will read scores of unseen answers at routing time.
    text_heads = [LogisticHead.fit(inputs[j], scores[:, j], C) for j in idx]
    query_head = LogisticHead.fit(xq, scores[:, idx[-1]], C)
    lz = lz_all[:, idx]
    lq = ctx.lq[:, idx[-1]]
    ag = ag_all[:, idx][:, :, idx]
    lz_mean = lz.mean(axis=0)
    ag_mean = np.nan_to_num(np.nanmean(ag, axis=0), nan=0.0)
    y = stage_labels(scores[:, idx], best.label)
    stage_heads = {}
    for s in range(k_len - 1):
        for k in range(s, k_len - 1):
            x = stage_matrix(lz, ag, range(s, k), k, lz_mean, ag_mean, lq)
            stage_heads[(s, k)] = LogisticHead.fit(x, y[:, k], C, penalize_bias=False)
    scorer = AnswerScorer(
        [models[j] for j in idx],
        emb_q,
        emb_a,
        text_heads,
        query_head,
        stage_heads,
        lz_mean,
        ag_mean,
        chars,
    )
    return FrugalGPTFit(scorer, best, ctx.report)


def _greedy_chain(
    models: list[str],
    label: str,
    complete: list[int],
    mean_cost: FloatArray,
    max_length: int,
    ctx: _Search,
) -> ChainFit:
    """From the cheapest and the best model, add the cheaper model that raises the
    cross-validated AIQ most, while it rises by more than 1e-4 (up to ``max_length``)."""
    mean_score = ctx.scores.mean(axis=0)
    last = complete[
        best_model([models[j] for j in complete], mean_score[complete], mean_cost[complete])
    ]
    cheaper = chain_order(
        models, mean_cost, [j for j in complete if j != last and mean_cost[j] < mean_cost[last]]
    )
    chain = [cheaper[0], last] if cheaper else [last]
    best = _evaluate_chain(chain, label, ctx)
    ctx.report.append({"chain": [models[j] for j in chain], "label": label, "aiq": best.aiq})
    while len(best.chain) < max_length:
        trials = []
        for j in cheaper:
            if j in best.chain:
                continue
            cand = chain_order(models, mean_cost, [*best.chain, j])
            fit = _evaluate_chain(cand, label, ctx)
            ctx.report.append({"chain": [models[m] for m in cand], "label": label, "aiq": fit.aiq})
            trials.append(fit)
        if not trials:
            break
        top = max(trials, key=lambda f: f.aiq)
        if top.aiq <= best.aiq + 1e-4:
            break
        best = top
    return best
