"""A DSPy teleprompter that assigns a routing policy to each predictor of a program."""

from __future__ import annotations

import copy
import functools
import itertools
import json
import logging
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dspy
from dspy.teleprompt import Teleprompter

from dspy_llmrouter._lm import RoutedCall, RoutedLM, cost_meter, replay_calls
from llmrouter_core.errors import DataError, LLMRouterError, UnknownModelError

__all__ = [
    "AssignmentScore",
    "ModelAssignmentOptimizer",
    "RoutingPolicy",
    "assignment_of",
    "load_program",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RoutingPolicy:
    """How one predictor picks its model: one fixed pool model, or the router at a lambda.

    Attributes:
        model: The pool model to call (``None``: route).
        cost_weight: The router's lambda when routing (``None``: the router's default).

    Example:
        >>> RoutingPolicy(model="gpt-4-1106-preview").label
        'gpt-4-1106-preview'
        >>> RoutingPolicy(cost_weight=20.0).label
        'router@20'
    """

    model: str | None = None
    cost_weight: float | None = None

    @property
    def label(self) -> str:
        if self.model is not None:
            return self.model
        return "router" if self.cost_weight is None else f"router@{self.cost_weight:g}"

    def to_dict(self) -> dict[str, Any]:
        weight = self.cost_weight
        return {
            "model": self.model,
            "cost_weight": "inf" if weight is not None and math.isinf(weight) else weight,
        }

    @classmethod
    def of(cls, lm: Any) -> RoutingPolicy:
        """The policy of a :class:`~dspy_llmrouter.RoutedLM`."""
        policy = lm.policy
        weight = policy.get("cost_weight")
        return cls(model=policy.get("model"), cost_weight=None if weight is None else float(weight))

    def lm_from(self, base: RoutedLM) -> RoutedLM:
        """A copy of ``base`` (same router, executor and DSPy settings) with this policy."""
        if self.model is not None:
            copied = base.copy(model=self.model, cost_weight=None)
        else:
            copied = base.copy(model=None, cost_weight=self.cost_weight)
        assert isinstance(copied, RoutedLM)
        return copied


@dataclass(frozen=True)
class AssignmentScore:
    """One assignment evaluated on a dataset.

    Attributes:
        assignment: ``{predictor name: policy}``.
        objective: ``quality - cost_weight x cost``.
        quality: Mean metric.
        cost: Mean USD per example (every call counted, cached or not).
        cost_weight: The lambda of the objective.
        n: Number of examples.
        failures: Examples whose run raised (scored as ``failure_score``).
        cost_by_predictor: Mean USD per example spent by each predictor.
    """

    assignment: dict[str, RoutingPolicy]
    objective: float
    quality: float
    cost: float
    cost_weight: float
    n: int
    failures: int = 0
    cost_by_predictor: dict[str, float] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "assignment": {k: v.to_dict() for k, v in self.assignment.items()},
            "objective": self.objective,
            "quality": self.quality,
            "cost": self.cost,
            "cost_weight": self.cost_weight,
            "n": self.n,
            "failures": self.failures,
            "cost_by_predictor": dict(self.cost_by_predictor or {}),
        }

    def describe(self) -> str:
        labels = ", ".join(f"{k}={v.label}" for k, v in self.assignment.items())
        return (
            f"{labels}: objective {self.objective:.4f} (quality {self.quality:.4f}, "
            f"${self.cost:.6f}/example)"
        )


class ModelAssignmentOptimizer(Teleprompter):
    """Choose, per predictor, the routing policy that maximises ``metric - lambda x cost``.

    The candidate policies of every predictor are each fixed pool model (``models``) and the
    router at each willingness-to-pay setting (``router_weights``). The search evaluates the
    program on the devset under every uniform assignment (all predictors on one policy, which
    includes every single fixed model). Then, in rounds around the best so far, it ranks each
    predictor's alternatives by a single change, and tries every combination of each
    predictor's current policy and its ``search_width - 1`` best alternatives (stages
    interact, so changing one predictor at a time stops at local optima), until a round finds
    nothing better or ``max_rounds`` is reached. Each result is memoised; with DSPy's cache on
    (the default for deterministic routers), re-running a stage under an unchanged policy
    costs no model call.

    Cost is what the program's routed calls cost per example (a cached answer counts what it
    cost when made), read from DSPy's history through :func:`~dspy_llmrouter.cost_meter`. The
    chosen policies are set as each predictor's ``lm`` (a :class:`RoutedLM` copy), so
    ``program.save(path)`` stores them with the program; reload with :func:`load_program`.

    It composes with prompt optimizers: run it on a program compiled by ``BootstrapFewShot``
    or ``MIPROv2`` (demos and instructions are kept), or pass one as ``teleprompter`` to run it
    first, inside :meth:`compile`, with every predictor on the router at ``cost_weight``.

    Args:
        metric: ``metric(example, prediction, trace=None) -> float | bool``.
        lm: The :class:`RoutedLM` whose router and pool the policies use.
        cost_weight: lambda of the objective, in quality per USD.
        models: Fixed-model candidates (default: the whole pool; ``[]`` for none).
        router_weights: Router candidates: a list of lambdas, or an int ``n`` for the
            router's ``sweep(n)`` plus ``cost_weight`` itself (default 5); ``None`` for none.
        search_width: Policies per predictor (its current one included) whose combinations
            are all tried in a round.
        max_combinations: Cap on those combinations (the width shrinks to fit).
        max_rounds: Rounds of that neighbourhood search.
        teleprompter: A prompt optimizer run first inside :meth:`compile`.
        failure_score: Metric given to an example whose run raised.
        memoize: During the search, reuse a predictor's answer (and its recorded cost) for
            the same inputs under the same policy instead of calling it again. Applied only
            where DSPy's cache would serve it anyway (a cached LM with deterministic routing);
            it saves DSPy's per-call overhead, not model calls.

    Example:
        >>> lm = RoutedLM(router)                                           # doctest: +SKIP
        >>> opt = ModelAssignmentOptimizer(metric, lm, cost_weight=20.0)    # doctest: +SKIP
        >>> tuned = opt.compile(program, trainset=devset)                   # doctest: +SKIP
        >>> opt.best_.describe()                                            # doctest: +SKIP
        >>> tuned.save("program.json")                                      # doctest: +SKIP
    """

    def __init__(
        self,
        metric: Callable[..., Any],
        lm: RoutedLM,
        cost_weight: float,
        *,
        models: Sequence[str] | None = None,
        router_weights: Sequence[float] | int | None = 5,
        search_width: int = 6,
        max_combinations: int = 256,
        max_rounds: int = 3,
        teleprompter: Any = None,
        failure_score: float = 0.0,
        memoize: bool = True,
    ) -> None:
        super().__init__()
        if not isinstance(lm, RoutedLM):
            raise TypeError(f"lm must be a dspy_llmrouter.RoutedLM, got {type(lm).__name__}")
        weight = float(cost_weight)
        if math.isnan(weight) or weight < 0 or math.isinf(weight):
            raise ValueError("cost_weight must be a finite number >= 0 (quality per USD)")
        if max_rounds < 0:
            raise ValueError("max_rounds must be >= 0")
        if search_width < 1 or max_combinations < 1:
            raise ValueError("search_width and max_combinations must be >= 1")
        self.metric = metric
        self.lm = lm
        self.cost_weight = weight
        self.models = None if models is None else list(models)
        self.router_weights = router_weights
        self.search_width = int(search_width)
        self.max_combinations = int(max_combinations)
        self.max_rounds = int(max_rounds)
        self.teleprompter = teleprompter
        self.failure_score = float(failure_score)
        self.memoize = bool(memoize)

    # -- candidates -------------------------------------------------------------------------
    def candidate_policies(self) -> list[RoutingPolicy]:
        """The policies each predictor may get."""
        pool = list(self.lm.pool_models)
        models = pool if self.models is None else self.models
        unknown = [m for m in models if m not in pool]
        if unknown:
            raise UnknownModelError(f"models not in the pool: {unknown}; the pool has {pool}")
        weights: list[float] = []
        spec = self.router_weights
        if isinstance(spec, int) and not isinstance(spec, bool):
            router = self.lm.router
            if spec > 0 and hasattr(router, "sweep"):
                weights = [*router.sweep(spec), self.cost_weight]
            elif spec > 0:
                weights = [self.cost_weight]
        elif spec is not None and not isinstance(spec, bool):
            weights = [float(w) for w in spec]
        for w in weights:
            if math.isnan(w) or w < 0:
                raise ValueError(f"router weights must be >= 0, got {w}")
        unique_weights = sorted(set(weights), reverse=True)
        policies = [RoutingPolicy(model=m) for m in models]
        policies += [RoutingPolicy(cost_weight=w) for w in unique_weights]
        if not policies:
            raise ValueError("no candidate policy: give models and/or router_weights")
        return policies

    # -- evaluation -------------------------------------------------------------------------
    def evaluate(self, program: dspy.Module, devset: Sequence[Any]) -> AssignmentScore:
        """``metric - cost_weight x cost`` of ``program`` as it is, on ``devset``."""
        if not devset:
            raise DataError("the devset is empty")
        named = program.named_predictors()
        quality = 0.0
        total_cost = 0.0
        failures = 0
        per_predictor = dict.fromkeys((name for name, _ in named), 0.0)
        with dspy.context(disable_history=False):
            for example in devset:
                with cost_meter() as meter:
                    try:
                        prediction = program(**example.inputs())
                    except Exception as exc:  # scored as a failure, like dspy.Evaluate
                        failures += 1
                        logger.warning(
                            "program failed on an example (%s: %s)", type(exc).__name__, exc
                        )
                        prediction = None
                score = (
                    self.failure_score
                    if prediction is None
                    else float(self.metric(example, prediction))
                )
                quality += score
                total_cost += meter.total_cost
                for name, predictor in named:
                    if predictor.lm is not None:
                        per_predictor[name] += meter.cost_of(predictor.lm)
        if failures == len(devset):
            raise LLMRouterError("the program failed on every example; see the log")
        n = len(devset)
        mean_q, mean_c = quality / n, total_cost / n
        assignment = {
            name: RoutingPolicy.of(p.lm) if isinstance(p.lm, RoutedLM) else RoutingPolicy()
            for name, p in named
        }
        return AssignmentScore(
            assignment=assignment,
            objective=mean_q - self.cost_weight * mean_c,
            quality=mean_q,
            cost=mean_c,
            cost_weight=self.cost_weight,
            n=n,
            failures=failures,
            cost_by_predictor={k: v / n for k, v in per_predictor.items()},
        )

    # -- search -----------------------------------------------------------------------------
    def compile(
        self,
        student: dspy.Module,
        *,
        trainset: Sequence[Any],
        teacher: dspy.Module | None = None,
        valset: Sequence[Any] | None = None,
        **kwargs: Any,
    ) -> dspy.Module:
        """Search the assignment on ``valset`` (default ``trainset``); return the program with
        the chosen policy on every predictor (``self.best_`` holds its score and
        ``self.results_`` every evaluated assignment)."""
        devset = list(valset if valset is not None else trainset)
        if not devset:
            raise DataError("the devset is empty")
        program = student.deepcopy()
        named = program.named_predictors()
        if not named:
            raise ValueError("the program has no predictors")
        names = [name for name, _ in named]
        policies = self.candidate_policies()
        start_policy = RoutingPolicy(cost_weight=self.cost_weight)
        if self.teleprompter is not None:
            for _, predictor in named:
                predictor.lm = start_policy.lm_from(self.lm)
            program = self.teleprompter.compile(program, trainset=list(trainset))
            named = program.named_predictors()
        # One LM per (policy, predictor): copies share the executor and DSPy's cache, and
        # keep each predictor's calls apart in the cost meter.
        lms = {(policy, name): policy.lm_from(self.lm) for policy in policies for name in names}
        memo: dict[tuple[RoutingPolicy, ...], AssignmentScore] = {}

        def score(assignment: tuple[RoutingPolicy, ...]) -> AssignmentScore:
            if assignment not in memo:
                for (name, predictor), policy in zip(named, assignment, strict=True):
                    predictor.lm = lms[(policy, name)]
                memo[assignment] = self.evaluate(program, devset)
                logger.info("evaluated %s", memo[assignment].describe())
            return memo[assignment]

        memo_store: dict[Any, tuple[Any, list[RoutedCall]]] = {}
        if self.memoize:
            for _, predictor in named:
                _memoize_forward(predictor, memo_store)
        try:
            # 1. Every uniform assignment (every single fixed model among them).
            uniform = [score(tuple([p] * len(names))) for p in policies]
            best = max(uniform, key=lambda s: s.objective)
            current = tuple(best.assignment[name] for name in names)
            # 2. Rounds of neighbourhood search around the best so far: every single-predictor
            # change ranks each predictor's policies; then every combination of each
            # predictor's current policy and its best alternatives is tried. Stages interact
            # (a draft only pays off with a check it agrees with and an arbiter worth
            # calling), so changing one predictor at a time would stop at local optima.
            width = max(1, min(self.search_width, len(policies)))
            while width > 1 and width ** len(names) > self.max_combinations:
                width -= 1
            for _ in range(self.max_rounds):
                anchor = current
                shortlists = []
                for k in range(len(names)):
                    moves = {
                        p: score((*anchor[:k], p, *anchor[k + 1 :])).objective
                        for p in policies
                        if p != anchor[k]
                    }
                    ranked = sorted(moves, key=moves.__getitem__, reverse=True)
                    shortlists.append([anchor[k], *ranked[: width - 1]])
                improved = False
                for combo in itertools.product(*shortlists):
                    result = score(tuple(combo))
                    if result.objective > best.objective + 1e-12:
                        best, current, improved = result, tuple(combo), True
                if not improved:
                    break
        finally:
            for _, predictor in named:
                predictor.__dict__.pop("forward", None)
        for (name, predictor), policy in zip(named, current, strict=True):
            predictor.lm = lms[(policy, name)]
        self.policies_ = policies
        self.results_ = sorted(memo.values(), key=lambda s: -s.objective)
        self.uniform_ = uniform
        self.best_ = best
        return program


def _memoize_forward(predictor: Any, store: dict[Any, tuple[Any, list[RoutedCall]]]) -> None:
    """Serve ``predictor``'s repeated calls (same LM, same inputs) from ``store``, replaying
    their recorded cost into the active cost meters."""
    original = functools.partial(type(predictor).forward, predictor)

    def forward(**kwargs: Any) -> Any:
        lm = kwargs.get("lm") or predictor.lm
        if not (isinstance(lm, RoutedLM) and lm.cache and lm.routing_deterministic):
            return original(**kwargs)
        try:
            key = (predictor, lm, json.dumps(kwargs, sort_keys=True, default=repr))
        except (TypeError, ValueError):
            return original(**kwargs)
        hit = store.get(key)
        if hit is None:
            with cost_meter() as meter:
                prediction = original(**kwargs)
            store[key] = (copy.deepcopy(prediction), list(meter.calls))
            return prediction
        replay_calls(hit[1])
        return copy.deepcopy(hit[0])

    predictor.forward = forward


def assignment_of(program: dspy.Module) -> dict[str, RoutingPolicy | None]:
    """``{predictor name: policy}`` of a program (``None`` where the LM is not routed)."""
    return {
        name: RoutingPolicy.of(p.lm) if isinstance(p.lm, RoutedLM) else None
        for name, p in program.named_predictors()
    }


def load_program(
    program: dspy.Module,
    path: str | os.PathLike[str],
    *,
    router: Any = None,
    trust_endpoints: bool = False,
) -> dspy.Module:
    """Load a program saved with ``program.save("x.json")`` whose predictors use RoutedLMs.

    The routed LMs are rebuilt by this package (from the saved router path, or ``router``;
    ``trust_endpoints`` as in :class:`RoutedLM`, never saved); the rest of the state is loaded
    by DSPy in its safe mode, so no other custom LM class is imported. ``program`` is modified
    in place and returned.
    """
    file = Path(path)
    if file.suffix != ".json":
        raise DataError(f"load_program reads a .json state file, got {file}")
    try:
        state = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise DataError(f"cannot read {file}: {exc}") from exc
    if not isinstance(state, dict):
        raise DataError(f"{file} is not a DSPy program state")
    state.pop("metadata", None)
    routed: dict[str, RoutedLM] = {}
    # A bare Predict saves its own state flat (its one predictor is named "self"); a module
    # saves one entry per predictor.
    entries = {"self": state} if isinstance(program, dspy.Predict) else state
    for name, entry in entries.items():
        lm_state = entry.get("lm") if isinstance(entry, dict) else None
        if (
            isinstance(lm_state, dict)
            and lm_state.get("_dspy_lm_class") == "dspy_llmrouter.RoutedLM"
        ):
            routed[name] = RoutedLM.load_state(
                lm_state, router=router, trust_endpoints=trust_endpoints
            )
            entry["lm"] = None
    program.load_state(state)
    for name, predictor in program.named_predictors():
        if name in routed:
            predictor.lm = routed[name]
    return program
