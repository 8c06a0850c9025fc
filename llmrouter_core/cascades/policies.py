"""FrugalGPT and AutoMix as trained policies: a cascade chain, learned on training data, that
each decision turns into a :class:`~llmrouter_core.decision.CascadePlan` for the executor.

A router whose policy has ``fit`` fits a copy of it after its scorer (``router.policy_``) and
routes with it by default (the registry's ``frugalgpt`` and ``automix`` are the ``prior``
scorer with these policies). For a request's cost weight lambda (utility = quality - lambda x
cost), the decision names the first model of the cascade, ranks the rest of the chain after
it (then the other eligible models) and carries the plan: the stages and their thresholds.

* :class:`FrugalGPTPolicy`: the chain, label and per-lambda policies chosen by
  :func:`~llmrouter_core.cascades.frugalgpt.fit_frugalgpt`; its acceptor ``"frugalgpt"`` is
  the trained :class:`~llmrouter_core.cascades.frugalgpt.AnswerScorer`. A higher
  willingness to pay means stricter acceptance and more escalation.
* :class:`AutoMixPolicy`: the cheapest and the best model (or a given chain); stage ``k``
  accepts when the verifier's confidence reaches ``quality(next) - lambda x cost(next)`` (the
  next model's mean training score and cost); its acceptor ``"verify"`` is a
  :class:`~llmrouter_core.cascades.automix.Verifier`.

``cost_weight=math.inf`` calls the cheapest model alone (a plain decision, no plan). Both
replay on recorded data (``simulate``, read by :func:`~llmrouter_core.evaluation.evaluate`):
a query's score is that of the answer kept, its cost the sum over every model called
(AutoMix's verifier outcomes must be real: see
:func:`~llmrouter_core.cascades.automix.collect_verifications`).

Example:
    >>> FrugalGPTPolicy(max_length=3).max_length
    3
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt
from sklearn.base import BaseEstimator

from llmrouter_core.cascades.answers import LABELS, agreement_tensor, recorded_answers
from llmrouter_core.cascades.automix import VerificationLog, Verifier
from llmrouter_core.cascades.frugalgpt import (
    AnswerScorer,
    best_model,
    chain_order,
    constrained_argmax,
    fit_frugalgpt,
    outcome,
    resolve_chain,
)
from llmrouter_core.data.core import FloatArray, RoutingData
from llmrouter_core.decision import CascadePlan, CascadeStage, Decision
from llmrouter_core.errors import DataError, NotFittedError
from llmrouter_core.evaluation.curve import SimulatedOutcomes
from llmrouter_core.policy.base import (
    Calibration,
    PolicyFitContext,
    RouteContext,
    cost_weight_grid,
    decisions,
)
from llmrouter_core.policy.ranking import choose
from llmrouter_core.scoring.base import Tags
from llmrouter_core.training.selection import kfold

__all__ = ["POLICIES", "AutoMixPolicy", "FrugalGPTPolicy", "policy_name"]

Arrays = dict[str, Any]
IntArray = npt.NDArray[np.intp]


class ChainPolicy(BaseEstimator):  # type: ignore[misc]
    """What both cascades share: the chain, the plan for a cost weight, decisions, replay
    helpers and saving (subclasses choose the chain, the thresholds and the acceptor)."""

    name: ClassVar[str] = ""
    acceptor_name: ClassVar[str] = ""
    tags: ClassVar[Tags] = Tags(cascade=True)

    chain_: list[str]
    calibration_: Calibration

    # -- subclass hooks ----------------------------------------------------------------------
    def _stages(self, weight: float) -> list[tuple[str, float]]:
        """The chain models called at a finite ``weight``, each with its threshold (the
        last one's is ignored)."""
        raise NotImplementedError  # pragma: no cover

    def acceptor(self, name: str) -> Any:
        """The scorer of a stage's answers named ``name`` (``None``: not this policy's)."""
        raise NotImplementedError  # pragma: no cover

    # -- routing -----------------------------------------------------------------------------
    @property
    def is_fitted(self) -> bool:
        return hasattr(self, "chain_")

    def _check_fitted(self) -> None:
        if not self.is_fitted:
            raise NotFittedError(f"the {self.name} policy is not fitted; fit the router first")

    def decide(
        self, quality: FloatArray, cost: FloatArray, context: RouteContext
    ) -> list[Decision]:
        """One decision per query at the context's cost weight: the first model of the
        cascade, the rest of the chain after it, and the plan. Models outside ``allowed`` /
        ``max_cost`` leave the chain; with one model left (or at ``inf``) the decision is a
        plain one."""
        self._check_fitted()
        weight = context.default_cost_weight
        base = decisions(quality, cost, weight, context)
        if math.isinf(weight):
            return [replace(d, reason=f"cheapest model {d.model} alone; {d.reason}") for d in base]
        stages = self._stages(weight)
        out = []
        for i, d in enumerate(base):
            mask = context.row_mask(i)
            kept = [
                (m, t)
                for m, t in stages
                if m in context.models and (mask is None or mask[context.models.index(m)])
            ]
            if len(kept) < 2:
                out.append(d)
                continue
            plan = CascadePlan(
                tuple(
                    CascadeStage(m, None if s == len(kept) - 1 else t)
                    for s, (m, t) in enumerate(kept)
                ),
                self.acceptor_name,
            )
            ranked = (*plan.models, *(m for m in d.ranked if m not in plan.models))
            thresholds = ", ".join(f"{s.threshold:.3g}" for s in plan.stages[:-1])
            reason = (
                f"{self.name} cascade {' -> '.join(plan.models)}; accept a stage's answer "
                f"when its score reaches {thresholds} (cost weight {weight:g})"
            )
            out.append(replace(d, model=plan.models[0], ranked=ranked, plan=plan, reason=reason))
        return out

    # -- replay helpers ----------------------------------------------------------------------
    def _replay_inputs(
        self, data: RoutingData, cost_weights: Sequence[float]
    ) -> tuple[FloatArray, list[float], list[int]]:
        self._check_fitted()
        if data.costs is None or np.isnan(data.costs).any() or np.isnan(data.scores).any():
            raise DataError("replaying a cascade needs complete scores and costs")
        weights = [float(w) for w in cost_weights]
        for w in weights:
            if math.isnan(w) or w < 0:
                raise DataError(f"cost weights must be >= 0 or inf; got {w}")
        return data.costs, weights, [data.model_index(m) for m in self.chain_]

    @staticmethod
    def _cheapest(
        costs: FloatArray, quality: FloatArray, cost: FloatArray
    ) -> tuple[IntArray, FloatArray]:
        """What routing at ``inf`` does: the cheapest predicted model of each query, and its
        recorded cost."""
        pick = np.asarray(choose(quality, cost, math.inf), dtype=np.intp)
        return pick, costs[np.arange(costs.shape[0]), pick]

    @staticmethod
    def _cheapest_point(data: RoutingData, context: PolicyFitContext) -> tuple[float, float]:
        """Mean recorded cost and score on the training queries of routing at ``inf``."""
        pick = np.asarray(choose(context.quality, context.cost, math.inf), dtype=np.intp)
        rows = np.arange(data.n_queries) if context.rows is None else np.asarray(context.rows)
        costs = data.require_costs()
        return float(costs[rows, pick].mean()), float(data.scores[rows, pick].mean())

    # -- persistence -------------------------------------------------------------------------
    def get_state(self) -> tuple[dict[str, Any], Arrays]:
        """The fitted state: JSON-safe metadata and numeric arrays."""
        self._check_fitted()
        meta = {"chain": list(self.chain_), "calibration": self.calibration_.to_dict()}
        return meta, {}

    def set_state(self, meta: dict[str, Any], arrays: Arrays) -> None:
        """Restore :meth:`get_state` (read from an untrusted file: shapes are checked)."""
        self.chain_ = [str(m) for m in meta["chain"]]
        self.calibration_ = Calibration.from_dict(meta["calibration"])


class FrugalGPTPolicy(ChainPolicy):
    """FrugalGPT: a learned chain with a learned answer scorer and per-stage thresholds.

    Args:
        chain: The chain, cheapest first (``None``: chosen by cross-validated AIQ, growing
            greedily from the cheapest model + the best model by adding the model that helps
            most, up to ``max_length``).
        max_length: Longest chain the search builds.
        label: Scorer target, one of :data:`~llmrouter_core.cascades.answers.LABELS`
            (``None``: chosen by CV).
        C: Inverse L2 strength of the logistic heads.
        n_features: Hash space of the question's and the answer's word features.
        query_chars: The scorer reads the last this many characters of the question.
        n_thresholds: Candidate thresholds per stage (quantiles of its out-of-fold scores).

    The folds and seed are the router's (``cv``, ``random_state``).

    Attributes (after ``fit``):
        chain_: The chain. label_: The label. cv_aiq_: Its cross-validated AIQ on train.
        scorer_: The :class:`~llmrouter_core.cascades.frugalgpt.AnswerScorer`.
        search_report_: Every chain and label tried, with its cross-validated AIQ.
        calibration_: Training (out-of-fold) mean cost and quality per cost weight.
    """

    name = "frugalgpt"
    acceptor_name = "frugalgpt"
    tags = Tags(needs=("responses",), cascade=True)

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
    ) -> None:
        self.chain = chain
        self.max_length = max_length
        self.label = label
        self.C = C
        self.n_features = n_features
        self.query_chars = query_chars
        self.n_thresholds = n_thresholds

    def _check_params(self) -> None:
        if self.label is not None and self.label not in LABELS:
            raise ValueError(f"label must be one of {LABELS}, got {self.label!r}")
        if int(self.max_length) < 1:
            raise ValueError("max_length must be >= 1")
        if not float(self.C) > 0:
            raise ValueError("C must be > 0")
        if int(self.n_features) < 16 or int(self.query_chars) < 1 or int(self.n_thresholds) < 2:
            raise ValueError("n_features >= 16, query_chars >= 1 and n_thresholds >= 2 required")

    def fit(self, data: RoutingData, context: PolicyFitContext) -> FrugalGPTPolicy:
        """Train the answer scorer on ``data``'s recorded answers and choose the chain, the
        label and the policy of every cost weight by cross-validation (see
        :func:`~llmrouter_core.cascades.frugalgpt.fit_frugalgpt`)."""
        self._check_params()
        folds = list(kfold(data.n_queries, int(context.cv), int(context.random_state)))
        fit = fit_frugalgpt(
            data,
            folds,
            chain=self.chain,
            max_length=int(self.max_length),
            label=self.label,
            C=float(self.C),
            n_features=int(self.n_features),
            query_chars=int(self.query_chars),
            n_thresholds=int(self.n_thresholds),
        )
        best = fit.best
        self.scorer_ = fit.scorer
        self.chain_ = list(fit.scorer.chain)
        self.label_ = best.label
        self.cv_aiq_ = float(best.aiq)
        self.search_report_ = fit.report
        self.policy_start_ = best.starts
        self.policy_tau_ = best.taus
        self.policy_cost_ = best.costs
        self.policy_quality_ = best.qualities
        # The lambda grid, the policy each lambda uses, and its training (out-of-fold) mean
        # cost and quality: read by the router's sweep and budgets.
        grid = cost_weight_grid(data.require_costs())
        chosen = constrained_argmax(grid, best.costs, best.qualities, best.starts)
        inf_cost, inf_quality = self._cheapest_point(data, context)
        self.grid_policy_ = np.asarray(chosen, dtype=np.int64)
        self.calibration_ = Calibration(
            tuple(grid),
            tuple(inf_cost if p < 0 else float(best.costs[p]) for p in chosen),
            tuple(inf_quality if p < 0 else float(best.qualities[p]) for p in chosen),
        )
        return self

    # -- the knob -> a plan ------------------------------------------------------------------
    def _policy(self, weight: float) -> int:
        """Index of the policy used at ``weight`` (-1: the cheapest model alone)."""
        if math.isinf(weight):
            return -1
        grid = self.calibration_.cost_weight
        # The most cost-averse grid point at or below this willingness to pay.
        idx = 1
        for i in range(1, len(grid)):
            if grid[i] >= weight:
                idx = i
            else:
                break
        return int(self.grid_policy_[idx])

    def plan_positions(self, weight: float) -> tuple[list[int], list[float]]:
        """Chain positions visited at a finite ``weight`` and the thresholds of every visited
        stage but the last."""
        self._check_fitted()
        p = self._policy(weight)
        if p < 0:  # only reached through a finite weight above the grid: cannot happen
            p = int(self.grid_policy_[1])
        start = int(self.policy_start_[p])
        positions = list(range(start, len(self.chain_)))
        return positions, [float(self.policy_tau_[p, k]) for k in positions[:-1]]

    def _stages(self, weight: float) -> list[tuple[str, float]]:
        positions, thresholds = self.plan_positions(weight)
        return [(self.chain_[k], t) for k, t in zip(positions, [*thresholds, math.nan])]

    def acceptor(self, name: str) -> Any:
        self._check_fitted()
        return self.scorer_ if name == "frugalgpt" else None

    # -- offline replay ----------------------------------------------------------------------
    def simulate(
        self,
        data: RoutingData,
        cost_weights: Sequence[float],
        quality: FloatArray,
        cost: FloatArray,
    ) -> SimulatedOutcomes:
        """Replay the cascade on recorded answers, at each cost weight.

        The scorer reads the recorded responses of the chain models; each query's outcome is
        the recorded score of the accepted answer and the sum of the recorded costs of every
        model called. ``quality`` / ``cost`` are the router's predictions on ``data``'s
        queries (what routing at ``inf`` reads).

        Raises:
            DataError: ``data`` lacks scores, costs or the chain models' responses.
        """
        costs, weights, idx = self._replay_inputs(data, cost_weights)
        scorer = self.scorer_
        n = data.n_queries
        answers: list[list[str | None]] = [list(r) for r in recorded_answers(data, self.chain_)]
        lz = scorer.text_logits(data.queries, answers)
        lq = scorer.query_logits(data.queries)
        ag = agreement_tensor(answers)
        chain_costs = costs[:, idx]
        chain_scores = data.scores[:, idx]
        probs: dict[int, FloatArray] = {}
        final = np.empty((len(weights), n), dtype=np.intp)
        spent = np.empty((len(weights), n))
        calls = np.empty((len(weights), n), dtype=np.intp)
        for w_i, w in enumerate(weights):
            p = self._policy(w)
            if p < 0:
                final[w_i], spent[w_i] = self._cheapest(costs, quality, cost)
                calls[w_i] = 1
                continue
            start = int(self.policy_start_[p])
            if start not in probs:
                probs[start] = scorer.stage_probs(lz, lq, ag, start)
            first, paid, _ = outcome(
                probs[start], self.policy_tau_[p], start, chain_costs, chain_scores
            )
            final[w_i] = np.asarray(idx, dtype=np.intp)[first]
            spent[w_i] = paid
            calls[w_i] = first - start + 1
        return SimulatedOutcomes(final=final, cost=spent, calls=calls)

    # -- persistence -------------------------------------------------------------------------
    def get_state(self) -> tuple[dict[str, Any], Arrays]:
        meta, arrays = super().get_state()
        scorer_meta, scorer_arrays = self.scorer_.get_state()
        meta.update(
            {
                "label": self.label_,
                "cv_aiq": self.cv_aiq_,
                "search": self.search_report_,
                "scorer": scorer_meta,
            }
        )
        arrays.update({f"scorer/{k}": v for k, v in scorer_arrays.items()})
        arrays.update(
            {
                "start": self.policy_start_,
                "tau": self.policy_tau_,
                "cost": self.policy_cost_,
                "quality": self.policy_quality_,
                "grid_policy": self.grid_policy_,
            }
        )
        return meta, arrays

    def set_state(self, meta: dict[str, Any], arrays: Arrays) -> None:
        super().set_state(meta, arrays)
        sub = {k[len("scorer/") :]: v for k, v in arrays.items() if k.startswith("scorer/")}
        self.scorer_ = AnswerScorer.from_state(meta["scorer"], sub)
        if self.scorer_.chain != self.chain_:
            raise ValueError("the saved answer scorer's chain is not the policy's")
        self.label_ = str(meta["label"])
        self.cv_aiq_ = float(meta["cv_aiq"])
        self.search_report_ = list(meta["search"])
        self.policy_start_ = np.asarray(arrays["start"], dtype=np.intp)
        self.policy_tau_ = np.asarray(arrays["tau"], dtype=np.float64)
        self.policy_cost_ = np.asarray(arrays["cost"], dtype=np.float64)
        self.policy_quality_ = np.asarray(arrays["quality"], dtype=np.float64)
        self.grid_policy_ = np.asarray(arrays["grid_policy"], dtype=np.int64)
        n_pol, s_len = len(self.policy_start_), len(self.chain_) - 1
        if self.policy_tau_.shape != (n_pol, s_len) or len(self.grid_policy_) != len(
            self.calibration_.cost_weight
        ):
            raise ValueError("the saved FrugalGPT policies do not fit its chain and grid")
        if n_pol and (self.grid_policy_.max() >= n_pol or self.policy_start_.max() > s_len):
            raise ValueError("the saved FrugalGPT policies index out of range")


class AutoMixPolicy(ChainPolicy):
    """AutoMix: the small model answers, a verifier checks it few-shot, escalate if unsure.

    At stage ``k`` the answer is sent to the verifier ``n_samples`` times (few-shot prompt,
    sampling at ``temperature``); the confidence is the share of "Correct" verdicts. The stage
    escalates when the confidence is below ``q(next) - lambda x c(next)``, the mean training
    score and cost of the next model. A threshold at or below 0 accepts without verifying;
    above 1 escalates without verifying. The verification calls are charged to the request.

    Before any verifier outcome is known, the router's ``sweep`` and budgets use a stated
    prior: the confidence is taken as uniform on [0, 1] and uninformative (escalation
    probability = threshold), with each verification call costed like one answer of the
    verifying model (or 0 for a verifier outside the pool).
    :func:`~llmrouter_core.cascades.automix.collect_verifications` gets real outcomes on
    recorded answers, and :meth:`simulate` replays the cascade with them.

    Args:
        chain: The chain, cheapest first (``None``: the cheapest model, then the best model
            by mean training score).
        verifier: The model that verifies (an executor pool model name); ``None``: each stage
            verifies itself (AutoMix's self-verification).
        n_samples: Verifier samples per answer (``k``).
        temperature: Sampling temperature of the verifier.
        max_verifier_tokens: Output tokens per verifier call.
        context_chars: The verifier sees the last this many characters of the question.
    """

    name = "automix"
    acceptor_name = "verify"

    def __init__(
        self,
        *,
        chain: Sequence[str] | None = None,
        verifier: str | None = None,
        n_samples: int = 4,
        temperature: float = 1.0,
        max_verifier_tokens: int = 16,
        context_chars: int = 1500,
    ) -> None:
        self.chain = chain
        self.verifier = verifier
        self.n_samples = n_samples
        self.temperature = temperature
        self.max_verifier_tokens = max_verifier_tokens
        self.context_chars = context_chars

    def _make_verifier(self) -> Verifier:
        return Verifier(
            self.verifier,
            int(self.n_samples),
            float(self.temperature),
            int(self.max_verifier_tokens),
            int(self.context_chars),
        )

    def fit(self, data: RoutingData, context: PolicyFitContext) -> AutoMixPolicy:
        """The chain, each model's mean training score and cost, and the prior calibration."""
        verifier = self._make_verifier()  # checks the parameters
        models = list(data.models)
        costs = data.require_costs()
        self.prior_ = data.scores.mean(axis=0)
        self.mean_cost_ = costs.mean(axis=0)
        fixed = resolve_chain(self.chain, models)
        if fixed is None:
            best = best_model(models, self.prior_, self.mean_cost_)
            cheapest = chain_order(models, self.mean_cost_, range(len(models)))[0]
            fixed = [cheapest, best] if cheapest != best else [best]
        self.models_ = models
        self.chain_index_ = [int(j) for j in fixed]
        self.chain_ = [models[j] for j in fixed]
        # Prior cost of verifying one answer of each stage (see the class docstring).
        per_call = [
            float(self.mean_cost_[models.index(self.verifier)])
            if self.verifier in models
            else (0.0 if self.verifier is not None else float(self.mean_cost_[j]))
            for j in self.chain_index_
        ]
        self.verify_cost_ = np.asarray(per_call) * int(self.n_samples)
        self.verifier_ = verifier
        self.verifications_: VerificationLog | None = None
        self.calibration_ = self._prior_calibration(data, context)
        return self

    def thresholds(self, weight: float) -> list[float]:
        """Escalation threshold of every stage but the last at ``weight``."""
        self._check_fitted()
        out = []
        for k in range(len(self.chain_index_) - 1):
            nxt = self.chain_index_[k + 1]
            out.append(float(self.prior_[nxt] - weight * self.mean_cost_[nxt]))
        return out

    def _stages(self, weight: float) -> list[tuple[str, float]]:
        return list(zip(self.chain_, [*self.thresholds(weight), math.nan], strict=True))

    def acceptor(self, name: str) -> Any:
        self._check_fitted()
        return self.verifier_ if name == "verify" else None

    def _prior_calibration(self, data: RoutingData, context: PolicyFitContext) -> Calibration:
        grid = cost_weight_grid(data.require_costs())
        inf_cost, inf_quality = self._cheapest_point(data, context)
        mean_cost, mean_quality = [], []
        idx = self.chain_index_
        for w in grid:
            if math.isinf(w):
                mean_cost.append(inf_cost)
                mean_quality.append(inf_quality)
                continue
            taus = self.thresholds(w)
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
        return Calibration(tuple(grid), tuple(mean_cost), tuple(mean_quality))

    # -- real verifier outcomes --------------------------------------------------------------
    def use_verifications(self, log: VerificationLog | None) -> AutoMixPolicy:
        """Replay with these real verifier outcomes in :meth:`simulate` (and therefore in
        :func:`~llmrouter_core.evaluation.evaluate`); ``None`` forgets them. Returns self."""
        self._check_fitted()
        if log is not None and list(log.models) != self.chain_[:-1]:
            raise DataError(
                f"the log verified {list(log.models)}; this policy's stages are {self.chain_[:-1]}"
            )
        self.verifications_ = log
        return self

    def simulate(
        self,
        data: RoutingData,
        cost_weights: Sequence[float],
        quality: FloatArray,
        cost: FloatArray,
        verifications: VerificationLog | None = None,
    ) -> SimulatedOutcomes:
        """Replay AutoMix on recorded answers with *real* verifier outcomes.

        Args:
            data: Queries with recorded scores and costs.
            cost_weights: The knob values.
            quality: The router's predicted quality on ``data``'s queries.
            cost: Its predicted cost (routing at ``inf`` reads both).
            verifications: Real verifier outcomes for every query of ``data`` (default: the
                log given to :meth:`use_verifications`).

        Raises:
            DataError: no verifier outcome is known for a query (AutoMix's verifier is never
                simulated: collect outcomes with ``collect_verifications`` first).
        """
        costs, weights, idx = self._replay_inputs(data, cost_weights)
        log = verifications if verifications is not None else self.verifications_
        k_len = len(idx)
        n = data.n_queries
        conf = np.zeros((n, max(k_len - 1, 0)))
        vcost = np.zeros((n, max(k_len - 1, 0)))
        if k_len > 1:
            if log is None:
                raise DataError(
                    "AutoMix's verifier outcomes are not in recorded data; run "
                    "collect_verifications(router, data, executor) on these queries (real "
                    "verifier calls) and pass the log to router.policy_.use_verifications()"
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
        chain_costs = costs[:, idx]
        final = np.empty((len(weights), n), dtype=np.intp)
        spent = np.empty((len(weights), n))
        calls = np.empty((len(weights), n), dtype=np.intp)
        for w_i, w in enumerate(weights):
            if math.isinf(w):
                final[w_i], spent[w_i] = self._cheapest(costs, quality, cost)
                calls[w_i] = 1
                continue
            taus = self.thresholds(w)
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
            final[w_i] = np.asarray(idx, dtype=np.intp)[pos]
            spent[w_i] = total
            calls[w_i] = n_calls
        return SimulatedOutcomes(final=final, cost=spent, calls=calls)

    # -- persistence -------------------------------------------------------------------------
    def get_state(self) -> tuple[dict[str, Any], Arrays]:
        meta, arrays = super().get_state()
        meta["models"] = list(self.models_)
        arrays.update(
            {"prior": self.prior_, "mean_cost": self.mean_cost_, "verify_cost": self.verify_cost_}
        )
        return meta, arrays

    def set_state(self, meta: dict[str, Any], arrays: Arrays) -> None:
        super().set_state(meta, arrays)
        self.models_ = [str(m) for m in meta["models"]]
        self.chain_index_ = [self.models_.index(m) for m in self.chain_]
        self.prior_ = np.asarray(arrays["prior"], dtype=np.float64)
        self.mean_cost_ = np.asarray(arrays["mean_cost"], dtype=np.float64)
        self.verify_cost_ = np.asarray(arrays["verify_cost"], dtype=np.float64)
        m = len(self.models_)
        if self.prior_.shape != (m,) or self.mean_cost_.shape != (m,):
            raise ValueError("the saved AutoMix state does not fit its models")
        if self.verify_cost_.shape != (len(self.chain_),):
            raise ValueError("the saved AutoMix verification costs do not fit its chain")
        self.verifier_ = self._make_verifier()
        self.verifications_ = None


#: The trained policies a saved router may name (a name read from a file is looked up here and
#: nowhere else: nothing is imported by name).
POLICIES: dict[str, type[ChainPolicy]] = {
    "frugalgpt": FrugalGPTPolicy,
    "automix": AutoMixPolicy,
}


def policy_name(policy: Any) -> str | None:
    """The registered name of ``policy``'s class (``None`` if it is not one of
    :data:`POLICIES`)."""
    for name, cls in POLICIES.items():
        if type(policy) is cls:
            return name
    return None
