"""Cascade routers: ask a cheap model first, escalate when its answer does not look good.

A router picks one model per query before any model has answered. A *cascade* instead calls
the models of an ordered chain (cheap to expensive) one after the other and stops at the
first answer it accepts, so it can use what the answers themselves say. Its cost for a query
is the sum of the costs of *every* model it called.

* :class:`FrugalGPTRouter` (``frugalgpt``; Chen, Zaharia and Zou, 2023, "FrugalGPT"): a chain
  and a learned answer scorer ``g(query, answer) -> P(answer is good)`` with one acceptance
  threshold per stage. The scorer is trained on the *recorded* answers of the training data
  (``RoutingData.responses``): a logistic regression per model on hashed words of the
  question and of the answer plus the answer's length, stacked under a logistic regression
  per stage that adds how far the answer agrees with the answers of the models already
  called (consistency: independent models that give the same answer are more often right)
  and a question-only estimate of the last model's quality. The chain, the label (``good``:
  the answer scores well; ``as_good_as_last``: it scores as well as the last model's, ties
  included; ``gain``: half of one plus its score minus the last model's) and the thresholds
  are chosen by cross-validation on the training data only.
* :class:`AutoMixRouter` (``automix``; Madaan et al., 2023, "AutoMix"): the small model
  answers, then a verifier (by default the same model: *self*-verification) is asked ``k``
  times with a few-shot prompt whether the answer is correct; the share of "correct"
  verdicts is compared with a threshold (AutoMix's meta-verifier in its simplest form) to
  decide whether to escalate. Verifier outcomes are not part of any recorded dataset, so they
  only ever come from real calls (:meth:`AutoMixRouter.collect_verifications`).

The one cost-quality knob ``cost_weight`` (lambda in utility = quality - lambda x cost) maps
to the thresholds: FrugalGPT picks, for each lambda, the chain suffix and thresholds with the
best out-of-fold utility on the training queries (so a higher willingness to pay means
stricter acceptance and more escalation); AutoMix escalates from stage ``k`` when the
verifier's confidence is below ``mean quality(next) - lambda x mean cost(next)`` of the
next model on the training data. ``cost_weight=math.inf`` calls the cheapest model alone.

Three ways to use a fitted cascade:

* :meth:`CascadeRouter.run` executes it for real through an
  :class:`~llmrouter_core.execution.Executor` (LiteLLM, budgets, retries): every call, its
  cost and the score that decided to accept or escalate are in the :class:`CascadeResult`;
  a model that fails is logged and the cascade escalates past it.
* :meth:`CascadeRouter.simulate` replays it on recorded answers (for
  :func:`llmrouter_core.evaluation.evaluate`, which charges every called model).
* ``route`` returns a plain :class:`~llmrouter_core.decision.Decision` (the first model of
  the cascade, the rest of the chain as fallbacks; ``decision.extra["cascade"]`` lists the
  chain and ``decision.extra["thresholds"]`` the thresholds), so a cascade also works where
  only one call per request is possible (then without answer scoring).

Example:
    >>> from llmrouter_core import get_router
    >>> get_router("frugalgpt", max_length=3).max_length
    3
    >>> answer_agreement("B", " b\\n"), answer_agreement("A", "B")
    (1.0, 0.0)
"""

from __future__ import annotations

import logging
import math
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import numpy as np
import numpy.typing as npt

from llmrouter_core.data.core import FloatArray, RoutingData
from llmrouter_core.decision import Decision
from llmrouter_core.errors import DataError, UnknownModelError
from llmrouter_core.evaluation.curve import SimulatedOutcomes
from llmrouter_core.policy import choose, rank
from llmrouter_core.routers.base import Arrays, Router, _cost_weight_grid, _unpack_policy
from llmrouter_core.routers.selection import kfold

if TYPE_CHECKING:
    from llmrouter_core.execution import Attempt, Executor

__all__ = [
    "LABELS",
    "AutoMixRouter",
    "CascadeResult",
    "CascadeRouter",
    "CascadeStep",
    "FrugalGPTRouter",
    "VerificationLog",
    "answer_agreement",
    "answer_key",
    "parse_verdict",
    "verification_messages",
]

logger = logging.getLogger(__name__)

#: Training labels of the FrugalGPT scorer: the answer is good (its score); the answer is as
#: good as the last model's (ties count as as good: escalating would not have helped); or the
#: gain of keeping it, ``(1 + score - score of the last model) / 2`` (a soft label: 0.5 on ties).
LABELS = ("good", "as_good_as_last", "gain")

#: Answers up to this many characters are compared as a choice/short answer; longer ones by
#: the overlap of their word sets.
SHORT_ANSWER_CHARS = 40
_WORD = re.compile(r"\w+")
_ANSWER_CHARS = 2000  # the answer scorer reads this many characters of an answer
_NEVER = 2.0  # a threshold no probability reaches: never accept at this stage
_EPS = 1e-4


# -- answers -----------------------------------------------------------------------------------


def answer_key(text: str) -> str | frozenset[str]:
    """A normalised form of an answer for comparing answers of different models.

    Short answers (multiple choice, a number, a name) become their lower-case words, or just
    the leading letter/digit when the answer starts with a one-character token (``"B) house"``
    -> ``"b"``); long answers become the set of their lower-case words.

    Example:
        >>> answer_key(" D\\n"), answer_key("B) house"), answer_key("Rachel.")
        ('d', 'b', 'rachel')
    """
    s = " ".join(str(text).lower().split())
    if len(s) <= SHORT_ANSWER_CHARS:
        tokens = _WORD.findall(s)
        if not tokens:
            return s
        if len(tokens[0]) == 1:
            return str(tokens[0])
        return " ".join(tokens)
    return frozenset(_WORD.findall(s))


def answer_agreement(a: str | None, b: str | None) -> float:
    """How far two answers agree, in [0, 1] (``nan`` if one is missing).

    Two short answers agree (1.0) when their keys are equal (see :func:`answer_key`); two long
    answers by the Jaccard overlap of their word sets; a short and a long answer do not agree.

    Example:
        >>> answer_agreement("C", "C\\n"), answer_agreement("C", "I do not know")
        (1.0, 0.0)
    """
    if not isinstance(a, str) or not isinstance(b, str):
        return math.nan
    return _agreement(answer_key(a), answer_key(b))


def _agreement(ka: str | frozenset[str], kb: str | frozenset[str]) -> float:
    if isinstance(ka, str) and isinstance(kb, str):
        return float(ka == kb)
    if isinstance(ka, frozenset) and isinstance(kb, frozenset):
        union = len(ka | kb)
        return len(ka & kb) / union if union else 1.0
    return 0.0


def _agreement_tensor(answers: Sequence[Sequence[str | None]]) -> FloatArray:
    """``(n, k, k)`` pairwise agreement of ``k`` answers per query (``nan`` where missing)."""
    n = len(answers)
    k = len(answers[0]) if n else 0
    out = np.full((n, k, k), np.nan)
    for i, row in enumerate(answers):
        keys = [answer_key(a) if isinstance(a, str) else None for a in row]
        for p in range(k):
            kp = keys[p]
            if kp is None:
                continue
            out[i, p, p] = 1.0
            for r in range(p + 1, k):
                kr = keys[r]
                if kr is not None:
                    out[i, p, r] = out[i, r, p] = _agreement(kp, kr)
    return out


def _stage_matrix(
    lz: FloatArray,
    ag: FloatArray,
    prev: Sequence[int],
    k: int,
    lz_mean: FloatArray,
    ag_mean: FloatArray,
    lq: FloatArray,
) -> FloatArray:
    """Stage features of chain position ``k`` after the positions ``prev`` were called.

    ``lz`` ``(n, K)``: logits of the per-model text scorers; ``ag`` ``(n, K, K)``: answer
    agreement. Per earlier stage ``p``: the agreement with it, the agreement times its logit
    (agreeing with a confident model counts more) and its logit; then the mean agreement and
    whether every earlier answer agrees; last, ``lq``: the logit of the last model's quality
    predicted from the question alone (what escalating can be expected to bring). ``nan`` (a
    model that failed) becomes its training mean.
    """
    cols = [lz[:, k], lq]
    agrees = []
    for p in prev:
        a = np.where(np.isnan(ag[:, k, p]), ag_mean[k, p], ag[:, k, p])
        z = np.where(np.isnan(lz[:, p]), lz_mean[p], lz[:, p])
        agrees.append(a)
        cols += [a, a * z, z]
    if agrees:
        stacked = np.column_stack(agrees)
        cols += [stacked.mean(axis=1), (stacked.min(axis=1) >= 1.0 - 1e-9).astype(float)]
    return np.column_stack(cols)


def _tail(text: str, chars: int) -> str:
    """The last ``chars`` characters (where few-shot prompts keep the actual question)."""
    return text[-chars:] if len(text) > chars else text


# -- a logistic head that saves as arrays ------------------------------------------------------


def _sigmoid(z: FloatArray) -> FloatArray:
    return np.asarray(1.0 / (1.0 + np.exp(-np.clip(z, -35.0, 35.0))), dtype=np.float64)


def _logit(p: FloatArray) -> FloatArray:
    p = np.clip(p, _EPS, 1.0 - _EPS)
    return np.asarray(np.log(p / (1.0 - p)), dtype=np.float64)


class _Logistic:
    """``P = sigmoid(x @ coef + intercept)``, fitted by scikit-learn's logistic regression.

    Scores in [0, 1] are soft labels: a row with score ``s`` counts as a positive with weight
    ``s`` and a negative with weight ``1 - s`` (0/1 scores are plain labels). Labels of one
    class only give a constant head (their mean), never an error.
    """

    def __init__(self, coef: FloatArray, intercept: float) -> None:
        self.coef = np.asarray(coef, dtype=np.float64).ravel()
        self.intercept = float(intercept)

    @classmethod
    def fit(cls, x: Any, y: FloatArray, c: float, *, sparse: bool, seed: int) -> _Logistic:
        """Fit by L2-regularised maximum likelihood (``c``: inverse strength, as scikit-learn's
        ``C``; the intercept is not penalised for dense inputs)."""
        y = np.clip(np.asarray(y, dtype=np.float64), 0.0, 1.0)
        d = x.shape[1]
        if not (y > 0).any() or not (y < 1).any():
            mean = float(np.clip(y.mean() if y.size else 0.5, 1e-3, 1 - 1e-3))
            return cls(np.zeros(d), math.log(mean / (1.0 - mean)))
        if not sparse:
            coef, intercept = _newton_logistic(np.asarray(x, dtype=np.float64), y, c)
            return cls(coef, intercept)
        from sklearn.linear_model import LogisticRegression

        hard = bool(np.all((y == 0) | (y == 1)))
        if hard:
            xs, labels, weights = x, y.astype(np.int64), None
        else:
            import scipy.sparse as sp

            pos, neg = y > 0, y < 1
            xs = sp.vstack([x[pos], x[neg]])
            labels = np.concatenate([np.ones(pos.sum()), np.zeros(neg.sum())]).astype(np.int64)
            weights = np.concatenate([y[pos], 1.0 - y[neg]])
        est = LogisticRegression(C=c, solver="liblinear", random_state=seed)
        est.fit(xs, labels, sample_weight=weights)
        return cls(np.asarray(est.coef_).ravel(), float(np.asarray(est.intercept_).ravel()[0]))

    def decision(self, x: Any) -> FloatArray:
        return np.asarray(x @ self.coef, dtype=np.float64).ravel() + self.intercept

    def predict(self, x: Any) -> FloatArray:
        return _sigmoid(self.decision(x))

    def state(self, prefix: str) -> Arrays:
        return {f"{prefix}/coef": self.coef, f"{prefix}/intercept": np.asarray([self.intercept])}

    @classmethod
    def from_state(cls, arrays: Mapping[str, Any], prefix: str) -> _Logistic:
        return cls(np.asarray(arrays[f"{prefix}/coef"]), float(arrays[f"{prefix}/intercept"][0]))


def _newton_logistic(x: FloatArray, y: FloatArray, c: float) -> tuple[FloatArray, float]:
    """Logistic regression with soft labels ``y`` in [0, 1] by Newton's method.

    Minimises ``sum_i logloss(y_i, sigmoid(x_i w + b)) + ||w||^2 / (2 c)``: the objective of
    scikit-learn's ``LogisticRegression(C=c)`` without an intercept penalty. For the few dense
    features of a stage scorer this takes milliseconds (L-BFGS in scikit-learn takes far
    longer on a busy machine). Deterministic.
    """
    n, d = x.shape
    z = np.hstack([x, np.ones((n, 1))])
    reg = np.full(d + 1, 1.0 / c)
    reg[-1] = 0.0
    w = np.zeros(d + 1)
    w[-1] = float(_logit(np.asarray(y.mean())))

    def loss(v: FloatArray) -> float:
        t = z @ v
        return float(np.sum(np.logaddexp(0.0, t) - y * t) + 0.5 * np.sum(reg * v * v))

    current = loss(w)
    for _ in range(50):
        p = _sigmoid(z @ w)
        grad = z.T @ (p - y) + reg * w
        hess = (z * (p * (1.0 - p))[:, None]).T @ z + np.diag(reg + 1e-8)
        step = np.linalg.solve(hess, grad)
        t = 1.0
        while True:  # backtracking keeps each step a descent step
            trial = w - t * step
            value = loss(trial)
            if value <= current or t < 1e-6:
                break
            t *= 0.5
        w, previous, current = trial, current, value
        if previous - current < 1e-10 * max(1.0, abs(previous)):
            break
    return w[:-1].copy(), float(w[-1])


# -- verification (AutoMix) ---------------------------------------------------------------------

_VERIFY_SYSTEM = "You grade answers. Reply with exactly one word: Correct or Incorrect."
_VERIFY_TURN = (
    "Question: {question}\n\nProposed answer: {answer}\n\n"
    "Is the proposed answer correct? Reply Correct or Incorrect."
)
# Worked examples, given as earlier chat turns (small chat models follow the format far more
# often this way than with the examples inside one prompt).
_VERIFY_SHOTS = (
    ("What is the capital of France?", "Paris", "Correct"),
    ("How many legs does a spider have?", "Six", "Incorrect"),
    ("Which of these is a mammal? A) shark B) dolphin C) trout", "B", "Correct"),
)

# "The correct answer is ..." names a different answer: it counts as a negative verdict.
_NEGATIVE = re.compile(r"\b(incorrect|not correct|wrong|false|no|the correct answer is)\b")
_POSITIVE = re.compile(r"\b(correct|right|true|yes)\b")


def verification_messages(
    question: str, answer: str, *, context_chars: int = 1500, answer_chars: int = 1500
) -> list[dict[str, str]]:
    """The few-shot self-verification request of AutoMix for one answer.

    Three worked examples come as earlier chat turns, then the question and the answer to
    check. Only the last ``context_chars`` characters of the question are shown (few-shot
    prompts keep the actual question at the end) and the first ``answer_chars`` of the answer.

    Example:
        >>> msgs = verification_messages("2 + 2 = ?", "4")
        >>> len(msgs), msgs[-1]["content"].splitlines()[2]
        (8, 'Proposed answer: 4')
    """
    q = _tail(" ".join(question.split()), context_chars)
    a = " ".join(answer.split())[:answer_chars]
    out = [{"role": "system", "content": _VERIFY_SYSTEM}]
    for shot_q, shot_a, verdict in _VERIFY_SHOTS:
        out.append({"role": "user", "content": _VERIFY_TURN.format(question=shot_q, answer=shot_a)})
        out.append({"role": "assistant", "content": verdict})
    out.append({"role": "user", "content": _VERIFY_TURN.format(question=q, answer=a)})
    return out


def parse_verdict(text: str) -> bool | None:
    """A verifier's verdict: ``True`` (correct), ``False`` (incorrect) or ``None`` (neither).

    The first verdict word wins ("Incorrect. The correct answer is..." is ``False``).

    Example:
        >>> parse_verdict("Correct"), parse_verdict(" incorrect, because"), parse_verdict("?")
        (True, False, None)
    """
    s = text.lower()
    neg, pos = _NEGATIVE.search(s), _POSITIVE.search(s)
    if neg is None and pos is None:
        return None
    if pos is None:
        return False
    if neg is None:
        return True
    return pos.start() < neg.start()


@dataclass(frozen=True)
class VerificationLog:
    """Real verifier outcomes of AutoMix on recorded answers, for offline evaluation.

    Attributes:
        queries: ``n`` query texts.
        models: The verified chain models (every stage but the last).
        confidence: ``(n, stages)`` share of the ``k`` verdicts that said "correct"
            (unparseable verdicts and failed calls count as not verified).
        cost: ``(n, stages)`` USD spent on the verification calls.
        verdicts: ``(n, stages, k)``: 1 correct, 0 incorrect, -1 unparseable, -2 call failed.
        verifier: The model that verified (``None``: each stage's own model).

    Example:
        >>> log = VerificationLog(["q"], ["small"], np.array([[0.5]]), np.zeros((1, 1)),
        ...                       np.array([[[1, 0]]]), None)
        >>> log.parsed_share
        1.0
    """

    queries: list[str]
    models: list[str]
    confidence: FloatArray
    cost: FloatArray
    verdicts: npt.NDArray[np.int8] | npt.NDArray[np.int64]
    verifier: str | None

    @property
    def parsed_share(self) -> float:
        """Share of verifier calls whose answer was a verdict."""
        v = np.asarray(self.verdicts, dtype=np.int64)
        return float(np.mean(v >= 0)) if v.size else math.nan

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict."""
        return {
            "queries": list(self.queries),
            "models": list(self.models),
            "confidence": np.asarray(self.confidence).tolist(),
            "cost": np.asarray(self.cost).tolist(),
            "verdicts": np.asarray(self.verdicts).tolist(),
            "verifier": self.verifier,
        }


# -- execution results -------------------------------------------------------------------------

StepOutcome = Literal["accepted", "escalated", "failed", "answered"]


@dataclass(frozen=True)
class CascadeStep:
    """One stage of an executed cascade.

    Attributes:
        model: The pool model of this stage.
        outcome: ``"accepted"`` (its answer is returned), ``"escalated"`` (its answer was
            rejected), ``"failed"`` (the call failed or did not fit the budget) or
            ``"answered"`` (it answered but a later stage's answer is returned after the last
            model failed).
        answer: Its answer (``None`` if it failed).
        score: What decided: FrugalGPT's P(good), AutoMix's verifier confidence (``None`` for
            the last stage, which is always accepted).
        threshold: The acceptance threshold of this stage (``None`` for the last stage).
        cost: USD spent at this stage (the answer and, for AutoMix, its verification).
        error: The failure, if any.
        verdicts: AutoMix: the parsed verdicts of the verifier samples.

    Example:
        >>> CascadeStep("small", "escalated", "B", 0.31, 0.5, 1e-4).to_dict()["outcome"]
        'escalated'
    """

    model: str
    outcome: StepOutcome
    answer: str | None = None
    score: float | None = None
    threshold: float | None = None
    cost: float = 0.0
    error: str | None = None
    verdicts: tuple[bool | None, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict."""
        return {
            "model": self.model,
            "outcome": self.outcome,
            "answer": self.answer,
            "score": self.score,
            "threshold": self.threshold,
            "cost": self.cost,
            "error": self.error,
            "verdicts": list(self.verdicts),
        }


@dataclass(frozen=True)
class CascadeResult:
    """The outcome of running a cascade on one request.

    Attributes:
        answer: The returned answer.
        model: The model whose answer is returned.
        decision: The routing decision (the planned chain is ``decision.extra["cascade"]``).
        steps: One :class:`CascadeStep` per stage tried, in order.
        attempts: Every LiteLLM call (answers and verifications, retries, failures), in order.
        cost: Total USD of every call made for this request.
        latency_s: Wall time of the whole cascade.

    Example:
        >>> r = CascadeResult("B", "small", None, (), (), cost=1e-4)
        >>> r.to_dict()["cost"]
        0.0001
    """

    answer: str
    model: str
    decision: Decision | None
    steps: tuple[CascadeStep, ...]
    attempts: tuple[Attempt, ...]
    cost: float = 0.0
    latency_s: float = 0.0

    @property
    def models_called(self) -> list[str]:
        """The models that answered (stages whose call succeeded), in order."""
        return [s.model for s in self.steps if s.answer is not None]

    @property
    def escalated(self) -> bool:
        """Whether a model after the first was needed."""
        return len(self.steps) > 1

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict."""
        return {
            "answer": self.answer,
            "model": self.model,
            "cost": self.cost,
            "latency_s": round(self.latency_s, 6),
            "steps": [s.to_dict() for s in self.steps],
            "attempts": [a.to_dict() for a in self.attempts],
            "decision": None if self.decision is None else self.decision.to_dict(),
        }


@dataclass
class _Judgement:
    score: float | None
    threshold: float | None
    accept: bool
    cost: float = 0.0
    attempts: list[Attempt] = field(default_factory=list)
    verdicts: tuple[bool | None, ...] = ()


# -- the shared base ---------------------------------------------------------------------------


class CascadeRouter(Router):
    """Base of the cascade routers: a chain of pool models called until one answer is accepted.

    Subclasses choose the chain and the acceptance rule. Shared here: the routing decision
    (first model of the cascade, the chain as fallbacks), one-call routing at
    ``cost_weight=inf`` (the cheapest model), execution through an
    :class:`~llmrouter_core.execution.Executor`, and the prior quality per model (the mean
    training score) used where no answer is available yet.
    """

    family = "cascade"
    kind: ClassVar[str] = ""
    #: Not in ``llmrouter benchmark`` by default: FrugalGPT needs recorded responses (which
    #: most datasets lack) and AutoMix real verifier calls; ``benchmarks/bench_cascades.py``
    #: runs both.
    benchmark_by_default: ClassVar[bool] = False

    #: The fitted chain (model names, cheapest first) and its columns in ``models_``.
    chain_: list[str]
    chain_index_: list[int]
    prior_: FloatArray

    # -- subclass hooks ------------------------------------------------------------------
    def _plan(self, weight: float) -> tuple[list[int], list[float]]:
        """Chain positions to visit at ``weight`` (finite) and the thresholds of every
        visited stage but the last."""
        raise NotImplementedError  # pragma: no cover

    def _judge(
        self,
        pos: int,
        threshold: float,
        query: str,
        answers: dict[int, str],
        executor: Executor,
        user: str | None,
        plan: list[int],
    ) -> _Judgement:
        raise NotImplementedError  # pragma: no cover

    # -- common state -----------------------------------------------------------------------
    def _predict_quality(self, queries: Sequence[str]) -> FloatArray:
        # Before any model has answered, a cascade knows only each model's training quality.
        return np.tile(self.prior_, (len(queries), 1))

    def _cheapest(self, cost: FloatArray, mask: npt.NDArray[np.bool_] | None = None) -> Any:
        q = np.tile(self.prior_, (cost.shape[0], 1))
        return choose(q, cost, math.inf, mask)

    def _first_position(self, weight: float) -> int:
        return self._plan(weight)[0][0]

    def choose_indices(
        self, queries: Sequence[str], cost_weights: Sequence[float]
    ) -> npt.NDArray[np.intp]:
        """The first model each query is sent to, per operating point and query.

        ``cost_weight=inf`` is the cheapest model per query; any finite weight starts the
        cascade at the chain model its plan begins with.
        """
        self._check_fitted()
        if not len(cost_weights):
            return np.empty((0, len(queries)), dtype=np.intp)
        cost = self.predict_cost(queries)
        rows = []
        for w in cost_weights:
            if math.isinf(w):
                rows.append(np.asarray(self._cheapest(cost), dtype=np.intp))
            else:
                first = self.chain_index_[self._first_position(float(w))]
                rows.append(np.full(len(queries), first, dtype=np.intp))
        return np.stack(rows)

    def route_batch(
        self,
        queries: Sequence[str],
        *,
        cost_weight: float | None = None,
        budget: float | None = None,
        threshold: float | None = None,
        policy: Any = None,
        allowed: Any = None,
        max_cost: float | None = None,
    ) -> list[Decision]:
        """Route many queries: the first model of the cascade, the chain as fallbacks.

        ``decision.extra`` has ``"cascade"`` (the models the cascade would call, in order),
        ``"thresholds"`` (one per stage but the last) and ``"kind"``. ``allowed`` and
        ``max_cost`` remove chain models (and the rest of the ranking) as for any router.
        The two-model ``threshold`` form does not apply to cascades.
        """
        self._check_fitted()
        cost_weight, budget, threshold = _unpack_policy(policy, cost_weight, budget, threshold)
        if threshold is not None:
            raise ValueError(
                "a cascade has no two-model threshold form; give cost_weight or budget"
            )
        weight = self._resolve_weight(cost_weight, budget)
        q, c = self.predict(queries)
        mask = self._allowed_mask(allowed, c, max_cost)
        models = self.models_
        if math.isinf(weight):
            plan: list[int] = []
            thresholds: list[float] = []
        else:
            positions, thresholds = self._plan(weight)
            plan = [self.chain_index_[p] for p in positions]
        out = []
        for i in range(q.shape[0]):
            row_mask = None if mask is None else mask[i]
            order = [int(j) for j in rank(q[i], c[i], weight, row_mask)]
            if plan:
                stages = [j for j in plan if row_mask is None or row_mask[j]]
                kept = [t for j, t in zip(plan[:-1], thresholds, strict=True) if j in stages]
            else:
                stages, kept = [order[0]], []
            if not stages:  # every chain model excluded: route among what is left
                stages, kept = [order[0]], []
            kept = kept[: max(len(stages) - 1, 0)]
            ranked = stages + [j for j in order if j not in stages]
            names = [models[j] for j in stages]
            quality = dict(zip(models, q[i].tolist(), strict=True))
            cost = dict(zip(models, c[i].tolist(), strict=True))
            reason = (
                f"cheapest model {names[0]} alone (cost weight inf)"
                if len(names) == 1
                else f"{self.kind} cascade {' -> '.join(names)}; accept a stage's answer when "
                f"its score reaches {', '.join(f'{t:.3g}' for t in kept)}"
            )
            out.append(
                Decision(
                    model=names[0],
                    ranked=tuple(models[j] for j in ranked),
                    quality=quality,
                    cost=cost,
                    cost_weight=weight,
                    router=self.name or type(self).__name__,
                    reason=reason,
                    extra={"kind": self.kind, "cascade": names, "thresholds": kept},
                )
            )
        return out

    # -- execution --------------------------------------------------------------------------
    def run(
        self,
        messages: str | Sequence[Mapping[str, Any]],
        executor: Executor,
        *,
        cost_weight: float | None = None,
        budget: float | None = None,
        user: str | None = None,
        **litellm_kwargs: Any,
    ) -> CascadeResult:
        """Execute the cascade for one request through ``executor`` (LiteLLM).

        Calls the first model of the plan, scores its answer, and escalates down the chain
        until an answer is accepted; the last model's answer is always accepted. A model whose
        call fails (after the executor's retries) or does not fit the budget is logged as a
        failed step and the cascade moves on. If the last model fails, the best-scored answer
        obtained so far is returned (its step says ``"accepted"``, the others
        ``"answered"``).

        Args:
            messages: A prompt string or OpenAI-style messages.
            executor: An :class:`~llmrouter_core.execution.Executor` whose pool has the
                chain's models (e.g. ``Executor(router, pool=replay_pool(router.pool_))``
                to answer with recorded responses).
            cost_weight: lambda for this request (default: the router's default).
            budget: Alternatively, a target mean cost per query (resolved like ``route``).
            user: Whose budget the executor charges.
            **litellm_kwargs: Passed to every answering call (e.g. ``temperature``).

        Returns:
            The :class:`CascadeResult`; ``result.cost`` is the sum over every call.

        Raises:
            AllModelsFailedError: no model of the plan answered (lists every attempt).
        """
        from llmrouter_core.execution import _support as sup
        from llmrouter_core.execution.budget import BudgetExceededError
        from llmrouter_core.execution.results import AllModelsFailedError, ExecutionError

        self._check_fitted()
        started = time.perf_counter()
        weight = self._resolve_weight(cost_weight, budget)
        msgs = sup.normalize_messages(messages)
        text = sup.routing_text(msgs, getattr(executor, "routing_text", "last_user"))
        decision = self.route(text, cost_weight=weight)
        names = list(decision.extra["cascade"])
        thresholds = list(decision.extra["thresholds"])
        position = {name: p for p, name in enumerate(self.chain_)}
        plan = [position[n] for n in names if n in position]
        steps: list[CascadeStep] = []
        attempts: list[Attempt] = []
        answers: dict[int, str] = {}
        scored: list[tuple[float, int]] = []  # (score, step index) of answered stages
        total = 0.0
        for s, name in enumerate(names):
            last = s == len(names) - 1
            try:
                res = executor.complete(msgs, model=name, user=user, **litellm_kwargs)
            except (ExecutionError, BudgetExceededError) as exc:
                attempts.extend(getattr(exc, "attempts", ()) or ())
                steps.append(
                    CascadeStep(name, "failed", error=f"{type(exc).__name__}: {exc}"[:600])
                )
                logger.info("cascade stage %s failed (%s); escalating", name, type(exc).__name__)
                continue
            attempts.extend(res.attempts)
            total += res.cost
            pos = position.get(name)
            if pos is not None:
                answers[pos] = res.answer
            if last or pos is None:
                steps.append(CascadeStep(name, "accepted", res.answer, cost=res.cost))
                return CascadeResult(
                    res.answer,
                    name,
                    decision,
                    tuple(steps),
                    tuple(attempts),
                    cost=total,
                    latency_s=time.perf_counter() - started,
                )
            verdict = self._judge(pos, thresholds[s], text, answers, executor, user, plan)
            attempts.extend(verdict.attempts)
            total += verdict.cost
            step = CascadeStep(
                name,
                "accepted" if verdict.accept else "escalated",
                res.answer,
                verdict.score,
                verdict.threshold,
                res.cost + verdict.cost,
                verdicts=verdict.verdicts,
            )
            steps.append(step)
            if verdict.accept:
                return CascadeResult(
                    res.answer,
                    name,
                    decision,
                    tuple(steps),
                    tuple(attempts),
                    cost=total,
                    latency_s=time.perf_counter() - started,
                )
            scored.append((-math.inf if verdict.score is None else verdict.score, len(steps) - 1))
        if not scored:
            raise AllModelsFailedError(tuple(attempts))
        # The last model failed: keep the best-scored answer we have (ties: the later stage).
        _, best = max(scored)
        for k in range(len(steps)):
            if steps[k].answer is not None:
                outcome: StepOutcome = "accepted" if k == best else "answered"
                steps[k] = _replace_outcome(steps[k], outcome)
        chosen = steps[best]
        assert chosen.answer is not None
        logger.info("cascade: the last model failed; answering with %s", chosen.model)
        return CascadeResult(
            chosen.answer,
            chosen.model,
            decision,
            tuple(steps),
            tuple(attempts),
            cost=total,
            latency_s=time.perf_counter() - started,
        )

    # -- offline replay ------------------------------------------------------------------------
    def _replay_inputs(
        self, data: RoutingData, cost_weights: Sequence[float]
    ) -> tuple[RoutingData, FloatArray, list[float]]:
        from llmrouter_core.evaluation.metrics import require_complete

        self._check_fitted()
        if data.models != self.models_:
            data = data.select_models(self.models_)
        costs = require_complete(data)
        weights = [float(w) for w in cost_weights]
        for w in weights:
            if math.isnan(w) or w < 0:
                raise DataError(f"cost weights must be >= 0 or inf; got {w}")
        return data, costs, weights

    def _recorded_answers(self, data: RoutingData, positions: Sequence[int]) -> list[list[str]]:
        """Recorded answers of the chain models at ``positions`` (clear error if missing)."""
        if data.responses is None:
            raise DataError(
                f"{data!r} has no recorded responses; replaying a cascade needs the answers of "
                "its chain models (e.g. RouterBench's files)"
            )
        cols = [self.chain_index_[p] for p in positions]
        block = data.responses[:, cols]
        missing = [
            (i, self.models_[cols[k]])
            for i in range(block.shape[0])
            for k in range(block.shape[1])
            if not _is_text(block[i, k])
        ]
        if missing:
            i, model = missing[0]
            raise DataError(
                f"{len(missing)} recorded responses of the chain models are missing in {data!r} "
                f"(e.g. {model} on query {data.query_ids[i]!r}); drop those queries first"
            )
        return [[str(a) for a in row] for row in block]

    def _inf_outcome(
        self, data: RoutingData, costs: FloatArray
    ) -> tuple[npt.NDArray[np.intp], FloatArray]:
        pick = np.asarray(self._cheapest(self.predict_cost(data.queries)), dtype=np.intp)
        return pick, costs[np.arange(data.n_queries), pick]

    def _cheapest_calibration(self, data: RoutingData) -> tuple[float, float]:
        pick = np.asarray(self._cheapest(self.predict_cost(data.queries)), dtype=np.intp)
        rows = np.arange(data.n_queries)
        return float(data.require_costs()[rows, pick].mean()), float(data.scores[rows, pick].mean())

    # -- persistence -----------------------------------------------------------------------------
    def _set_chain(self, index: Sequence[int]) -> None:
        self.chain_index_ = [int(j) for j in index]
        self.chain_ = [self.models_[j] for j in self.chain_index_]

    def _base_state(self) -> tuple[dict[str, Any], Arrays]:
        return {"chain": list(self.chain_)}, {"prior": self.prior_}

    def _set_base_state(self, meta: dict[str, Any], arrays: Arrays) -> None:
        self._set_chain([self.models_.index(m) for m in meta["chain"]])
        self.prior_ = np.asarray(arrays["prior"], dtype=np.float64)


def _is_text(value: Any) -> bool:
    return isinstance(value, str)


def _replace_outcome(step: CascadeStep, outcome: StepOutcome) -> CascadeStep:
    from dataclasses import replace

    return replace(step, outcome=outcome)


def _chain_order(models: Sequence[str], mean_cost: FloatArray, picks: Sequence[int]) -> list[int]:
    """``picks`` ordered cheap -> expensive (ties by name, never by column order)."""
    return sorted({int(j) for j in picks}, key=lambda j: (float(mean_cost[j]), models[j]))


def _best_model(models: Sequence[str], mean_score: FloatArray, mean_cost: FloatArray) -> int:
    """Highest mean score; ties: cheaper, then by name."""
    return min(
        range(len(models)), key=lambda j: (-float(mean_score[j]), float(mean_cost[j]), models[j])
    )


def _resolve_chain(
    chain: Sequence[str] | None, models: list[str], mean_cost: FloatArray
) -> list[int] | None:
    if chain is None:
        return None
    if isinstance(chain, str) or not len(chain):
        raise ValueError("chain must be a non-empty list of pool model names")
    unknown = [m for m in chain if m not in models]
    if unknown:
        raise UnknownModelError(f"chain models not in the pool: {unknown}; the pool has {models}")
    if len(set(chain)) != len(chain):
        raise ValueError(f"chain has repeated models: {list(chain)}")
    return [models.index(m) for m in chain]


# -- FrugalGPT ---------------------------------------------------------------------------------


@dataclass
class _ChainFit:
    """Out-of-fold evaluation of one chain on the training queries."""

    chain: list[int]
    label: str
    aiq: float
    starts: npt.NDArray[np.intp]
    taus: FloatArray
    costs: FloatArray
    qualities: FloatArray


class FrugalGPTRouter(CascadeRouter):
    """FrugalGPT: a learned chain with a learned answer scorer and per-stage thresholds.

    Args:
        chain: The chain, cheapest first (``None``: chosen by cross-validated AIQ, growing
            greedily from the cheapest model + the best model by adding the model that helps
            most, up to ``max_length``).
        max_length: Longest chain the search builds.
        label: Scorer target, one of :data:`LABELS` (``None``: chosen by CV).
        C: Inverse L2 strength of the logistic heads.
        n_features: Hash space of the question's and the answer's word features.
        query_chars: The scorer reads the last this many characters of the question.
        n_thresholds: Candidate thresholds per stage (quantiles of its out-of-fold scores).
        cv: Folds of the out-of-fold scores.
        random_state: Seed of the folds.

    Example:
        >>> from llmrouter_core import get_router
        >>> r = get_router("frugalgpt", chain=["mistralai/mistral-7b-chat",
        ...                                     "gpt-4-1106-preview"])
        >>> r.label is None
        True
    """

    name = "frugalgpt"
    kind = "frugalgpt"

    def __init__(
        self,
        *,
        chain: Sequence[str] | None = None,
        max_length: int = 5,
        label: str | None = None,
        C: float = 1.0,
        n_features: int = 2**12,
        query_chars: int = 400,
        n_thresholds: int = 40,
        cv: int = 3,
        random_state: int = 0,
    ) -> None:
        self.chain = chain
        self.max_length = max_length
        self.label = label
        self.C = C
        self.n_features = n_features
        self.query_chars = query_chars
        self.n_thresholds = n_thresholds
        self.cv = cv
        self.random_state = random_state

    def _check_params(self) -> None:
        if self.label is not None and self.label not in LABELS:
            raise ValueError(f"label must be one of {LABELS}, got {self.label!r}")
        if int(self.max_length) < 1:
            raise ValueError("max_length must be >= 1")
        if not float(self.C) > 0:
            raise ValueError("C must be > 0")
        if int(self.n_features) < 16 or int(self.query_chars) < 1 or int(self.n_thresholds) < 2:
            raise ValueError("n_features >= 16, query_chars >= 1 and n_thresholds >= 2 required")

    # -- features ------------------------------------------------------------------------
    def _question_features(self, queries: Sequence[str]) -> Any:
        return self.emb_q_.transform([_tail(q, int(self.query_chars)) for q in queries])

    def _text_inputs(self, xq: Any, answers: Sequence[str]) -> Any:
        import scipy.sparse as sp

        length = np.log1p(np.array([len(a) for a in answers], dtype=np.float64))[:, None] / 8.0
        return sp.hstack(
            [xq, self.emb_a_.transform(list(answers)), sp.csr_matrix(length)], format="csr"
        )

    # -- training --------------------------------------------------------------------------
    def _fit(self, data: RoutingData) -> None:
        self._check_params()
        from llmrouter_core.features.hashing import HashingEmbedder

        models = self.models_
        n = data.n_queries
        scores = data.scores
        costs = data.require_costs()
        mean_cost = costs.mean(axis=0)
        self.prior_ = scores.mean(axis=0)
        if data.responses is None:
            raise DataError(
                f"{data!r} has no recorded responses: FrugalGPT trains its answer scorer on the "
                "answers the models gave (e.g. RouterBench's files carry them)"
            )
        complete = [j for j in range(len(models)) if all(_is_text(a) for a in data.responses[:, j])]
        fixed = _resolve_chain(self.chain, models, mean_cost)
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
        seed = int(self.random_state)
        self.emb_q_ = HashingEmbedder(int(self.n_features), max_chars=int(self.query_chars)).fit(
            [_tail(q, int(self.query_chars)) for q in data.queries]
        )
        self.emb_a_ = HashingEmbedder(int(self.n_features), max_chars=_ANSWER_CHARS).fit(
            [str(a) for j in complete for a in data.responses[:, j]]
        )
        xq = self._question_features(data.queries)
        folds = list(kfold(n, int(self.cv), seed))
        inputs = {
            j: self._text_inputs(xq, [str(a) for a in data.responses[:, j]]) for j in complete
        }
        text_oof = np.full((n, len(models)), np.nan)
        query_oof = np.full((n, len(models)), 0.5)
        for j in complete:
            for tr, va in folds:
                head = _Logistic.fit(
                    inputs[j][tr], scores[tr, j], float(self.C), sparse=True, seed=seed
                )
                text_oof[va, j] = head.predict(inputs[j][va])
                head = _Logistic.fit(xq[tr], scores[tr, j], float(self.C), sparse=True, seed=seed)
                query_oof[va, j] = head.predict(xq[va])
        lz_all = _logit(np.where(np.isnan(text_oof), 0.5, text_oof))
        ag_all = _agreement_tensor(
            [
                [str(a) if j in complete else None for j, a in enumerate(row)]
                for row in data.responses
            ]
        )
        lq_all = _logit(query_oof)
        ctx = _SearchContext(
            lz=lz_all,
            lq=lq_all,
            ag=ag_all,
            scores=scores,
            costs=costs,
            folds=folds,
            seed=seed,
            c=self.C,
            n_thresholds=int(self.n_thresholds),
            c_range=(float(mean_cost.min()), float(mean_cost.max())),
        )
        labels = [self.label] if self.label is not None else list(LABELS)
        best: _ChainFit | None = None
        report: list[dict[str, Any]] = []
        for label in labels:
            if fixed is not None:
                fit = _evaluate_chain(fixed, label, ctx)
                report.append({"chain": [models[j] for j in fixed], "label": label, "aiq": fit.aiq})
            else:
                fit = self._greedy_chain(label, complete, mean_cost, ctx, report)
            if best is None or fit.aiq > best.aiq + 1e-12:
                best = fit
        assert best is not None
        self._set_chain(best.chain)
        self.label_ = best.label
        self.cv_aiq_ = float(best.aiq)
        self.search_report_ = report
        idx = self.chain_index_
        k_len = len(idx)
        # Final heads on every training query; the stage heads read out-of-fold text scores,
        # as they will read scores of unseen answers at routing time.
        self.text_heads_ = [
            _Logistic.fit(inputs[j], scores[:, j], float(self.C), sparse=True, seed=seed)
            for j in idx
        ]
        lz = lz_all[:, idx]
        lq = lq_all[:, idx[-1]]
        self.query_head_ = _Logistic.fit(
            xq, scores[:, idx[-1]], float(self.C), sparse=True, seed=seed
        )
        ag = ag_all[:, idx][:, :, idx]
        self.lz_mean_ = lz.mean(axis=0)
        self.ag_mean_ = np.nan_to_num(np.nanmean(ag, axis=0), nan=0.0)
        y = _stage_labels(scores[:, idx], self.label_)
        self.stage_heads_: dict[tuple[int, int], _Logistic] = {}
        for s in range(k_len - 1):
            for k in range(s, k_len - 1):
                x = _stage_matrix(lz, ag, range(s, k), k, self.lz_mean_, self.ag_mean_, lq)
                self.stage_heads_[(s, k)] = _Logistic.fit(
                    x, y[:, k], float(self.C), sparse=False, seed=seed
                )
        self.policy_start_ = best.starts
        self.policy_tau_ = best.taus
        self.policy_cost_ = best.costs
        self.policy_quality_ = best.qualities
        self._build_calibration(data)

    def _greedy_chain(
        self,
        label: str,
        complete: list[int],
        mean_cost: FloatArray,
        ctx: _SearchContext,
        report: list[dict[str, Any]],
    ) -> _ChainFit:
        models = self.models_
        mean_score = ctx.scores.mean(axis=0)
        last = _best_model([models[j] for j in complete], mean_score[complete], mean_cost[complete])
        last = complete[last]
        cheaper = _chain_order(
            models, mean_cost, [j for j in complete if j != last and mean_cost[j] < mean_cost[last]]
        )
        chain = [cheaper[0], last] if cheaper else [last]
        best = _evaluate_chain(chain, label, ctx)
        report.append({"chain": [models[j] for j in chain], "label": label, "aiq": best.aiq})
        while len(best.chain) < int(self.max_length):
            trials = []
            for j in cheaper:
                if j in best.chain:
                    continue
                cand = _chain_order(models, mean_cost, [*best.chain, j])
                fit = _evaluate_chain(cand, label, ctx)
                report.append({"chain": [models[m] for m in cand], "label": label, "aiq": fit.aiq})
                trials.append(fit)
            if not trials:
                break
            top = max(trials, key=lambda f: f.aiq)
            if top.aiq <= best.aiq + 1e-4:
                break
            best = top
        return best

    def _build_calibration(self, data: RoutingData) -> None:
        """The lambda grid, the policy each lambda uses, and the training (out-of-fold) mean
        cost and quality of each (read by ``sweep`` and budgets)."""
        grid = _cost_weight_grid(data.require_costs())
        chosen = _constrained_argmax(
            grid, self.policy_cost_, self.policy_quality_, self.policy_start_
        )
        inf_cost, inf_quality = self._cheapest_calibration(data)
        mean_cost = [inf_cost if p < 0 else float(self.policy_cost_[p]) for p in chosen]
        mean_quality = [inf_quality if p < 0 else float(self.policy_quality_[p]) for p in chosen]
        self.grid_policy_ = np.asarray(chosen, dtype=np.int64)
        self._train_calibration = {
            "cost_weight": list(grid),
            "mean_cost": mean_cost,
            "mean_quality": mean_quality,
        }

    def _calibrate(self, queries: Sequence[str]) -> dict[str, list[float]]:
        return self._train_calibration

    # -- the knob -> a plan ----------------------------------------------------------------
    def _policy(self, weight: float) -> int:
        """Index of the policy used at ``weight`` (-1: the cheapest model alone)."""
        if math.isinf(weight):
            return -1
        grid = self.calibration_["cost_weight"]
        # The most cost-averse grid point at or below this willingness to pay.
        idx = 1
        for i in range(1, len(grid)):
            if grid[i] >= weight:
                idx = i
            else:
                break
        return int(self.grid_policy_[idx])

    def _plan(self, weight: float) -> tuple[list[int], list[float]]:
        p = self._policy(weight)
        if p < 0:  # only reached through a finite weight above the grid: cannot happen
            p = int(self.grid_policy_[1])
        start = int(self.policy_start_[p])
        positions = list(range(start, len(self.chain_index_)))
        thresholds = [float(self.policy_tau_[p, k]) for k in positions[:-1]]
        return positions, thresholds

    # -- scoring answers ------------------------------------------------------------------
    def _text_logits(self, queries: Sequence[str], answers: Sequence[Sequence[str | None]]) -> Any:
        """``(n, K)`` logits of the text scorers; ``nan`` where an answer is missing."""
        n, k_len = len(queries), len(self.chain_index_)
        out = np.full((n, k_len), np.nan)
        if n == 0:
            return out
        xq = self._question_features(queries)
        for k in range(k_len):
            rows = [i for i in range(n) if _is_text(answers[i][k])]
            if not rows:
                continue
            x = self._text_inputs(xq[rows], [str(answers[i][k]) for i in rows])
            out[rows, k] = np.clip(self.text_heads_[k].decision(x), -9.0, 9.0)
        return out

    def _query_logits(self, queries: Sequence[str]) -> FloatArray:
        """Logit of the last chain model's quality predicted from the question alone."""
        if not len(queries):
            return np.zeros(0)
        x = self._question_features(queries)
        return np.clip(self.query_head_.decision(x), -9.0, 9.0)

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
        self._check_fitted()
        rows = [[a.get(m) for m in self.chain_] for a in answers]
        return self._stage_scores(list(queries), rows, start)

    def _stage_scores(
        self, queries: list[str], answers: list[list[str | None]], start: int
    ) -> FloatArray:
        k_len = len(self.chain_index_)
        lz = self._text_logits(queries, answers)
        lq = self._query_logits(queries)
        ag = _agreement_tensor(answers) if answers else np.zeros((0, k_len, k_len))
        out = np.full((len(queries), max(k_len - 1, 0)), np.nan)
        for k in range(start, k_len - 1):
            x = _stage_matrix(lz, ag, range(start, k), k, self.lz_mean_, self.ag_mean_, lq)
            p = self.stage_heads_[(start, k)].predict(np.nan_to_num(x))
            have = ~np.isnan(lz[:, k])
            out[have, k] = p[have]
        return out

    def _judge(
        self,
        pos: int,
        threshold: float,
        query: str,
        answers: dict[int, str],
        executor: Executor,
        user: str | None,
        plan: list[int],
    ) -> _Judgement:
        row: list[str | None] = [answers.get(k) for k in range(len(self.chain_index_))]
        start = plan[0]
        score = float(self._stage_scores([query], [row], start)[0, pos])
        return _Judgement(score=score, threshold=threshold, accept=score >= threshold)

    # -- offline replay ---------------------------------------------------------------------
    def simulate(self, data: RoutingData, cost_weights: Sequence[float]) -> SimulatedOutcomes:
        """Replay the cascade on recorded answers, at each cost weight.

        The scorer reads the recorded responses of the chain models; each query's outcome is
        the recorded score of the accepted answer and the sum of the recorded costs of every
        model called.

        Raises:
            DataError: ``data`` lacks scores, costs or the chain models' responses.
        """
        data, costs, weights = self._replay_inputs(data, cost_weights)
        idx = self.chain_index_
        n, k_len = data.n_queries, len(idx)
        answers = self._recorded_answers(data, range(k_len))
        lz = self._text_logits(data.queries, answers)
        lq = self._query_logits(data.queries)
        ag = _agreement_tensor(answers)
        chain_costs = costs[:, idx]
        chain_scores = data.scores[:, idx]
        probs: dict[int, FloatArray] = {}
        final = np.empty((len(weights), n), dtype=np.intp)
        spent = np.empty((len(weights), n))
        calls = np.empty((len(weights), n), dtype=np.intp)
        for w_i, w in enumerate(weights):
            p = self._policy(w)
            if p < 0:
                final[w_i], spent[w_i] = self._inf_outcome(data, costs)
                calls[w_i] = 1
                continue
            start = int(self.policy_start_[p])
            if start not in probs:
                probs[start] = np.zeros((n, max(k_len - 1, 0)))
                for k in range(start, k_len - 1):
                    x = _stage_matrix(lz, ag, range(start, k), k, self.lz_mean_, self.ag_mean_, lq)
                    probs[start][:, k] = self.stage_heads_[(start, k)].predict(x)
            first, cost, _ = _outcome(
                probs[start], self.policy_tau_[p], start, chain_costs, chain_scores
            )
            final[w_i] = np.asarray(idx, dtype=np.intp)[first]
            spent[w_i] = cost
            calls[w_i] = first - start + 1
        return SimulatedOutcomes(final=final, cost=spent, calls=calls)

    # -- persistence -------------------------------------------------------------------------
    def _get_state(self) -> tuple[dict[str, Any], Arrays]:
        meta, arrays = self._base_state()
        meta.update(
            {
                "label": self.label_,
                "cv_aiq": self.cv_aiq_,
                "search": self.search_report_,
                "stages": [[s, k] for s, k in sorted(self.stage_heads_)],
                "embedder": self.emb_q_.get_config(),
                "answer_embedder": self.emb_a_.get_config(),
            }
        )
        arrays.update(
            {
                "emb_q/idf": self.emb_q_.get_state()["idf"],
                "emb_a/idf": self.emb_a_.get_state()["idf"],
                "lz_mean": self.lz_mean_,
                "ag_mean": self.ag_mean_,
                "policy/start": self.policy_start_,
                "policy/tau": self.policy_tau_,
                "policy/cost": self.policy_cost_,
                "policy/quality": self.policy_quality_,
                "grid_policy": self.grid_policy_,
            }
        )
        for k, head in enumerate(self.text_heads_):
            arrays.update(head.state(f"text/{k}"))
        arrays.update(self.query_head_.state("query"))
        for (s, k), head in self.stage_heads_.items():
            arrays.update(head.state(f"stage/{s}/{k}"))
        return meta, arrays

    def _set_state(self, meta: dict[str, Any], arrays: Arrays) -> None:
        from llmrouter_core.features.hashing import HashingEmbedder

        self._set_base_state(meta, arrays)
        config = dict(meta["embedder"])
        self.emb_q_ = HashingEmbedder(**config)
        self.emb_q_.set_state({"idf": arrays["emb_q/idf"]})
        self.emb_a_ = HashingEmbedder(**dict(meta["answer_embedder"]))
        self.emb_a_.set_state({"idf": arrays["emb_a/idf"]})
        self.label_ = str(meta["label"])
        self.cv_aiq_ = float(meta["cv_aiq"])
        self.search_report_ = list(meta["search"])
        self.lz_mean_ = np.asarray(arrays["lz_mean"], dtype=np.float64)
        self.ag_mean_ = np.asarray(arrays["ag_mean"], dtype=np.float64)
        self.policy_start_ = np.asarray(arrays["policy/start"], dtype=np.intp)
        self.policy_tau_ = np.asarray(arrays["policy/tau"], dtype=np.float64)
        self.policy_cost_ = np.asarray(arrays["policy/cost"], dtype=np.float64)
        self.policy_quality_ = np.asarray(arrays["policy/quality"], dtype=np.float64)
        self.grid_policy_ = np.asarray(arrays["grid_policy"], dtype=np.int64)
        self.text_heads_ = [
            _Logistic.from_state(arrays, f"text/{k}") for k in range(len(self.chain_index_))
        ]
        self.query_head_ = _Logistic.from_state(arrays, "query")
        self.stage_heads_ = {
            (int(s), int(k)): _Logistic.from_state(arrays, f"stage/{s}/{k}")
            for s, k in meta["stages"]
        }


@dataclass
class _SearchContext:
    lz: FloatArray  # (n, m) out-of-fold text logits of every model
    lq: FloatArray  # (n, m) out-of-fold question-only logits of every model
    ag: FloatArray  # (n, m, m) answer agreement
    scores: FloatArray
    costs: FloatArray
    folds: list[tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]]
    seed: int
    c: float
    n_thresholds: int
    c_range: tuple[float, float]


def _stage_labels(scores: FloatArray, label: str) -> FloatArray:
    """``(n, K)`` training targets of the stage scorers for a chain's scores."""
    if label == "good":
        return np.asarray(scores, dtype=np.float64)
    last = scores[:, [-1]]
    if label == "gain":
        return np.asarray(np.clip((1.0 + scores - last) / 2.0, 0.0, 1.0), dtype=np.float64)
    # Ties count as "as good": escalating to the last model would not have raised the score.
    return (scores >= last - 1e-9).astype(np.float64)


def _outcome(
    probs: FloatArray, tau: FloatArray, start: int, costs: FloatArray, scores: FloatArray
) -> tuple[npt.NDArray[np.intp], FloatArray, FloatArray]:
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


def _evaluate_chain(chain: list[int], label: str, ctx: _SearchContext) -> _ChainFit:
    """Out-of-fold stage scores of ``chain``, its efficient policies, and the AIQ of the
    curve they give on the training queries (as served: see :func:`_constrained_argmax`)."""
    from llmrouter_core.evaluation.metrics import aiq

    k_len = len(chain)
    s_len = k_len - 1
    lz = ctx.lz[:, chain]
    lq = ctx.lq[:, chain[-1]]
    ag = ctx.ag[:, chain][:, :, chain]
    costs = ctx.costs[:, chain]
    scores = ctx.scores[:, chain]
    y = _stage_labels(scores, label)
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
            x = _stage_matrix(lz, ag, range(start, k), k, lz_mean, ag_mean, lq)
            for tr, va in ctx.folds:
                head = _Logistic.fit(x[tr], y[tr, k], ctx.c, sparse=False, seed=ctx.seed)
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
    grid = _cost_weight_grid(costs)
    chosen = [p for p in _constrained_argmax(grid, cost_arr, quality_arr, start_arr) if p >= 0]
    points = [(cost_arr[p], quality_arr[p]) for p in chosen]
    c_min, c_max = ctx.c_range
    value = float(aiq(points, c_min, c_max)) if c_max > c_min else float(quality_arr.max())
    return _ChainFit(
        chain=list(chain),
        label=label,
        aiq=value,
        starts=start_arr,
        taus=tau_arr,
        costs=cost_arr,
        qualities=quality_arr,
    )


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
    probs: FloatArray, start: int, costs: FloatArray, scores: FloatArray, ctx: _SearchContext
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
    candidates = [np.full(s_len, _NEVER)]
    if s_len > start:
        candidates.append(np.where(np.arange(s_len) >= start, 0.0, _NEVER))
        qs = np.linspace(0.0, 1.0, ctx.n_thresholds + 1)[1:-1]
        cands = [
            np.unique(np.concatenate([[0.0, _NEVER], np.quantile(probs[:, k], qs)]))
            for k in range(s_len)
        ]
        c_min, c_max = ctx.c_range
        lo = 0.01 / max(c_max, 1e-12)
        hi = 1.0 / max(c_min, 1e-12)
        cum = np.cumsum(costs, axis=1)
        rows = np.arange(n)
        stages = list(range(start, s_len))
        for lam in [*np.geomspace(hi, lo, 24).tolist(), 0.0]:
            tau = np.full(s_len, _NEVER)
            for order in (stages[::-1], stages, stages[::-1]):
                for k in order:
                    tau[k] = _best_threshold(probs, tau, k, start, cum, scores, lam, cands[k], rows)
            candidates.append(tau.copy())
    out = []
    for tau in candidates:
        _, cost, quality = _outcome(probs, tau, start, costs, scores)
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
    rows: npt.NDArray[np.intp],
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


def _constrained_argmax(
    grid: Sequence[float], cost: FloatArray, quality: FloatArray, starts: npt.NDArray[np.intp]
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


# -- AutoMix -----------------------------------------------------------------------------------


class AutoMixRouter(CascadeRouter):
    """AutoMix: the small model answers, verifies itself few-shot, escalates if unsure.

    At stage ``k`` the answer is sent back to a verifier ``n_samples`` times (few-shot prompt,
    sampling at ``temperature``); the confidence is the share of "Correct" verdicts. The stage
    escalates when the confidence is below ``q(next) - lambda x c(next)``, the mean training
    score and cost of the next model (a threshold on the verification frequency: AutoMix's
    meta-verifier in its simplest form). A threshold at or below 0 accepts without verifying;
    above 1 escalates without verifying. The verification calls are charged to the request.

    Before any verifier outcome is known, ``sweep`` and budgets use a stated prior: the
    confidence is taken as uniform on [0, 1] and uninformative (escalation probability =
    threshold), with each verification call costed like one answer of the verifying model
    (or 0 for a verifier outside the pool). :meth:`collect_verifications` gets real outcomes
    on recorded answers, and :meth:`simulate` replays the cascade with them.

    Args:
        chain: The chain, cheapest first (``None``: the cheapest model, then the best model
            by mean training score).
        verifier: The model that verifies (an executor pool model name); ``None``: each stage
            verifies itself (AutoMix's self-verification).
        n_samples: Verifier samples per answer (``k``).
        temperature: Sampling temperature of the verifier.
        max_verifier_tokens: Output tokens per verifier call.
        context_chars: The verifier sees the last this many characters of the question.
        random_state: Unused (the router is deterministic); kept for the estimator contract.

    Example:
        >>> from llmrouter_core import get_router
        >>> get_router("automix", n_samples=3).n_samples
        3
    """

    name = "automix"
    kind = "automix"

    def __init__(
        self,
        *,
        chain: Sequence[str] | None = None,
        verifier: str | None = None,
        n_samples: int = 4,
        temperature: float = 1.0,
        max_verifier_tokens: int = 16,
        context_chars: int = 1500,
        random_state: int = 0,
    ) -> None:
        self.chain = chain
        self.verifier = verifier
        self.n_samples = n_samples
        self.temperature = temperature
        self.max_verifier_tokens = max_verifier_tokens
        self.context_chars = context_chars
        self.random_state = random_state

    def _fit(self, data: RoutingData) -> None:
        if int(self.n_samples) < 1:
            raise ValueError("n_samples must be >= 1")
        if not float(self.temperature) >= 0:
            raise ValueError("temperature must be >= 0")
        models = self.models_
        costs = data.require_costs()
        self.prior_ = data.scores.mean(axis=0)
        self.mean_cost_ = costs.mean(axis=0)
        fixed = _resolve_chain(self.chain, models, self.mean_cost_)
        if fixed is None:
            best = _best_model(models, self.prior_, self.mean_cost_)
            cheapest = _chain_order(models, self.mean_cost_, range(len(models)))[0]
            fixed = [cheapest, best] if cheapest != best else [best]
        self._set_chain(fixed)
        # Prior cost of verifying one answer of each stage (see the class docstring).
        per_call = [
            float(self.mean_cost_[models.index(self.verifier)])
            if self.verifier in models
            else (0.0 if self.verifier is not None else float(self.mean_cost_[j]))
            for j in self.chain_index_
        ]
        self.verify_cost_ = np.asarray(per_call) * int(self.n_samples)
        self._train_calibration = self._prior_calibration(data)

    def _thresholds(self, weight: float) -> list[float]:
        """Escalation threshold of every stage but the last at ``weight``."""
        out = []
        for k in range(len(self.chain_index_) - 1):
            nxt = self.chain_index_[k + 1]
            out.append(float(self.prior_[nxt] - weight * self.mean_cost_[nxt]))
        return out

    def _plan(self, weight: float) -> tuple[list[int], list[float]]:
        return list(range(len(self.chain_index_))), self._thresholds(weight)

    def _prior_calibration(self, data: RoutingData) -> dict[str, list[float]]:
        grid = _cost_weight_grid(data.require_costs())
        inf_cost, inf_quality = self._cheapest_calibration(data)
        mean_cost, mean_quality = [], []
        for w in grid:
            if math.isinf(w):
                mean_cost.append(inf_cost)
                mean_quality.append(inf_quality)
                continue
            taus = self._thresholds(w)
            idx = self.chain_index_
            cost, quality = float(self.mean_cost_[idx[-1]]), float(self.prior_[idx[-1]])
            for k in range(len(idx) - 2, -1, -1):
                j, tau = idx[k], taus[k]
                p_up = min(max(tau, 0.0), 1.0)
                verify = float(self.verify_cost_[k]) if 0.0 < tau <= 1.0 else 0.0
                cost = float(self.mean_cost_[j]) + verify + p_up * cost
                quality = (1.0 - p_up) * float(self.prior_[j]) + p_up * quality
            mean_cost.append(cost)
            mean_quality.append(quality)
        # The prior is monotone in lambda by construction; keep it exactly so.
        for i in range(1, len(mean_cost)):
            mean_cost[i] = max(mean_cost[i], mean_cost[i - 1])
        return {"cost_weight": list(grid), "mean_cost": mean_cost, "mean_quality": mean_quality}

    def _calibrate(self, queries: Sequence[str]) -> dict[str, list[float]]:
        return self._train_calibration

    # -- verification ------------------------------------------------------------------------
    def _verify(
        self,
        pos: int,
        query: str,
        answer: str,
        executor: Executor,
        user: str | None,
        call_kwargs: Mapping[str, Any],
    ) -> tuple[float, float, list[Attempt], tuple[bool | None, ...], list[int]]:
        """``n_samples`` verifier calls: (confidence, cost, attempts, verdicts, codes)."""
        from llmrouter_core.execution.budget import BudgetExceededError
        from llmrouter_core.execution.results import ExecutionError

        verifier = self.verifier or self.chain_[pos]
        caller = self._verifier_executor(executor, verifier)
        messages = verification_messages(query, answer, context_chars=int(self.context_chars))
        kwargs = dict(call_kwargs)
        kwargs["temperature"] = float(self.temperature)
        kwargs["max_tokens"] = int(self.max_verifier_tokens)
        cost = 0.0
        attempts: list[Attempt] = []
        verdicts: list[bool | None] = []
        codes: list[int] = []
        for _ in range(int(self.n_samples)):
            try:
                res = caller.complete(messages, model=verifier, user=user, **kwargs)
            except (ExecutionError, BudgetExceededError) as exc:
                attempts.extend(getattr(exc, "attempts", ()) or ())
                verdicts.append(None)
                codes.append(-2)
                continue
            attempts.extend(res.attempts)
            cost += res.cost
            verdict = parse_verdict(res.answer)
            verdicts.append(verdict)
            codes.append(-1 if verdict is None else int(verdict))
        confidence = sum(v is True for v in verdicts) / len(verdicts)
        return confidence, cost, attempts, tuple(verdicts), codes

    def _verifier_executor(self, executor: Executor, verifier: str) -> Executor:
        """``executor`` itself for a router model; for a verifier outside the router's models
        (e.g. a ``local/`` model), an executor over that one pool entry that shares the
        budget, keys and retry settings of ``executor``."""
        if verifier in executor.models:
            return executor
        if verifier not in executor.pool:
            raise UnknownModelError(
                f"the verifier {verifier!r} is not in the executor's pool ({executor.pool.names})"
            )
        import weakref

        from llmrouter_core.execution import Executor as _Executor
        from llmrouter_core.execution import PoolOrderRouter
        from llmrouter_core.pool import Pool

        cache = self.__dict__.setdefault("_verifier_callers", weakref.WeakKeyDictionary())
        key = (verifier,)
        per_executor = cache.setdefault(executor, {})
        if key not in per_executor:
            per_executor[key] = _Executor(
                PoolOrderRouter(Pool([executor.pool[verifier]])),
                budget=executor.budget,
                keys=executor.keys,
                max_retries=executor.max_retries,
                timeout=executor.timeout,
                backoff=executor.backoff,
                max_backoff=executor.max_backoff,
                limit_max_tokens=executor.limit_max_tokens,
                litellm_kwargs=executor.litellm_kwargs,
            )
        caller: Executor = per_executor[key]
        return caller

    def _judge(
        self,
        pos: int,
        threshold: float,
        query: str,
        answers: dict[int, str],
        executor: Executor,
        user: str | None,
        plan: list[int],
    ) -> _Judgement:
        if threshold <= 0.0:
            return _Judgement(score=None, threshold=threshold, accept=True)
        if threshold > 1.0:
            return _Judgement(score=None, threshold=threshold, accept=False)
        conf, cost, attempts, verdicts, _ = self._verify(
            pos, query, answers[pos], executor, user, {}
        )
        return _Judgement(
            score=conf,
            threshold=threshold,
            accept=conf >= threshold,
            cost=cost,
            attempts=attempts,
            verdicts=verdicts,
        )

    def collect_verifications(
        self, data: RoutingData, executor: Executor, **litellm_kwargs: Any
    ) -> VerificationLog:
        """Run the verifier for real on the *recorded* answers of every stage but the last.

        Each query costs ``n_samples`` verifier calls per verified stage (through
        ``executor``, whose pool must have the verifier). The outcomes are real: nothing is
        simulated. Pass the log to :meth:`use_verifications` (or :meth:`simulate`) to replay
        the cascade on these queries.

        Raises:
            DataError: ``data`` lacks the recorded answers of the verified stages.
            UnknownModelError: the verifier is not in the executor's pool.
        """
        self._check_fitted()
        if data.models != self.models_:
            data = data.select_models(self.models_)
        stages = list(range(len(self.chain_) - 1))
        answers = self._recorded_answers(data, stages) if stages else [[] for _ in data.queries]
        n = data.n_queries
        conf = np.zeros((n, len(stages)))
        cost = np.zeros((n, len(stages)))
        verdicts = np.full((n, len(stages), int(self.n_samples)), -2, dtype=np.int8)
        for i, query in enumerate(data.queries):
            for k in stages:
                c, spent, _, _, codes = self._verify(
                    k, query, answers[i][k], executor, None, litellm_kwargs
                )
                conf[i, k], cost[i, k] = c, spent
                verdicts[i, k] = codes
            logger.info("automix: verified %d/%d", i + 1, n)
        return VerificationLog(
            queries=list(data.queries),
            models=[self.chain_[k] for k in stages],
            confidence=conf,
            cost=cost,
            verdicts=verdicts,
            verifier=self.verifier,
        )

    def use_verifications(self, log: VerificationLog | None) -> AutoMixRouter:
        """Replay with these real verifier outcomes in :meth:`simulate` (and therefore in
        :func:`~llmrouter_core.evaluation.evaluate`); ``None`` forgets them. Returns self."""
        self._check_fitted()
        if log is not None:
            expected = self.chain_[:-1]
            if list(log.models) != expected:
                raise DataError(
                    f"the log verified {list(log.models)}; this router's stages are {expected}"
                )
        self.verifications_ = log
        return self

    def simulate(
        self,
        data: RoutingData,
        cost_weights: Sequence[float],
        verifications: VerificationLog | None = None,
    ) -> SimulatedOutcomes:
        """Replay AutoMix on recorded answers with *real* verifier outcomes.

        Args:
            data: Queries with recorded scores, costs and responses.
            cost_weights: The knob values.
            verifications: Real verifier outcomes for every query of ``data`` (default: the
                log given to :meth:`use_verifications`).

        Raises:
            DataError: no verifier outcome is known for a query (AutoMix's verifier is never
                simulated: collect outcomes with :meth:`collect_verifications` first).
        """
        data, costs, weights = self._replay_inputs(data, cost_weights)
        log = verifications if verifications is not None else getattr(self, "verifications_", None)
        k_len = len(self.chain_)
        n = data.n_queries
        conf = np.zeros((n, max(k_len - 1, 0)))
        vcost = np.zeros((n, max(k_len - 1, 0)))
        if k_len > 1:
            if log is None:
                raise DataError(
                    "AutoMix's verifier outcomes are not in recorded data; run "
                    "collect_verifications(data, executor) on these queries (real verifier "
                    "calls) and pass the log to use_verifications() or simulate()"
                )
            index = {q: i for i, q in enumerate(log.queries)}
            missing = [q for q in data.queries if q not in index]
            if missing:
                raise DataError(
                    f"no verifier outcome for {len(missing)} of {n} queries (e.g. "
                    f"{missing[0][:60]!r}); collect them with collect_verifications()"
                )
            rows_log = [index[q] for q in data.queries]
            conf = np.asarray(log.confidence, dtype=np.float64)[rows_log]
            vcost = np.asarray(log.cost, dtype=np.float64)[rows_log]
        chain_costs = costs[:, self.chain_index_]
        final = np.empty((len(weights), n), dtype=np.intp)
        spent = np.empty((len(weights), n))
        calls = np.empty((len(weights), n), dtype=np.intp)
        for w_i, w in enumerate(weights):
            if math.isinf(w):
                final[w_i], spent[w_i] = self._inf_outcome(data, costs)
                calls[w_i] = 1
                continue
            taus = self._thresholds(w)
            done = np.zeros(n, dtype=bool)
            pos = np.full(n, k_len - 1)
            total = np.zeros(n)
            n_calls = np.zeros(n, dtype=np.intp)
            for k in range(k_len):
                live = ~done
                total[live] += chain_costs[live, k]
                n_calls[live] += 1
                if k == k_len - 1:
                    pos[live] = k
                    break
                tau = taus[k]
                if tau <= 0.0:
                    accept = live
                elif tau > 1.0:
                    accept = np.zeros(n, dtype=bool)
                else:
                    total[live] += vcost[live, k]
                    n_calls[live] += int(self.n_samples)
                    accept = live & (conf[:, k] >= tau)
                pos[accept] = k
                done |= accept
            final[w_i] = np.asarray(self.chain_index_, dtype=np.intp)[pos]
            spent[w_i] = total
            calls[w_i] = n_calls
        return SimulatedOutcomes(final=final, cost=spent, calls=calls)

    # -- persistence ---------------------------------------------------------------------------
    def _get_state(self) -> tuple[dict[str, Any], Arrays]:
        meta, arrays = self._base_state()
        arrays.update({"mean_cost": self.mean_cost_, "verify_cost": self.verify_cost_})
        return meta, arrays

    def _set_state(self, meta: dict[str, Any], arrays: Arrays) -> None:
        self._set_base_state(meta, arrays)
        self.mean_cost_ = np.asarray(arrays["mean_cost"], dtype=np.float64)
        self.verify_cost_ = np.asarray(arrays["verify_cost"], dtype=np.float64)
