"""The personalized router: any base router, adjusted per user from that user's feedback.

``get_router("personalized", base="auto", store="sqlite:///feedback.db")`` fits the base
router, then routes ``route(query, user="alice")`` with the base router's predictions for
*this* query adjusted by alice's profile (:mod:`llmrouter_core.personalized.learner`): per-model
and per-query-cluster offsets and her price sensitivity, learned from her
:meth:`~PersonalizedRouter.feedback` with shrinkage. A user without feedback (or no user)
gets exactly the base router's decision.

Profiles are computed from the store's events when they are first needed and cached until
the user's events change, so every process sharing a store routes a user the same way.
"""

from __future__ import annotations

import dataclasses
import threading
from collections import OrderedDict
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from llmrouter_core.data.core import FloatArray, RoutingData
from llmrouter_core.decision import Decision
from llmrouter_core.errors import DataError, FeedbackStoreError, NotFittedError
from llmrouter_core.personalized.learner import Evidence, OffsetLearner
from llmrouter_core.personalized.store import (
    FeedbackEvent,
    FeedbackStore,
    MemoryStore,
    SQLiteStore,
    check_event,
    export_user,
    import_user,
    open_store,
)
from llmrouter_core.policy import Anchor, BudgetPolicy, Policy, UtilityPolicy, eligible
from llmrouter_core.pool import Pool
from llmrouter_core.router import Router, check_queries
from llmrouter_core.scoring.base import Tags

if TYPE_CHECKING:
    from pathlib import Path

__all__ = ["PersonalizedRouter", "UserProfile"]

# Base predictions of queries kept per router (feedback queries are read again whenever a
# user's profile is refitted).
_PREDICTION_CACHE = 20_000

#: The per-user learners.
LEARNERS = ("offsets", "graph")


@dataclass(frozen=True)
class UserProfile:
    """What a personalized router has learned about one user.

    Attributes:
        user: The user.
        n_events: Feedback events it was learned from (the last ``max_events``).
        model_offsets: Added to each model's predicted quality on every query (the offsets
            learner; empty for the graph learner, whose profile is an embedding).
        cluster_offsets: Per query cluster, added to each model's predicted quality
            (offsets learner).
        cost_weight_shift: Added to the request's cost weight (lambda, per USD): > 0 for a
            user who minds the price more than the router's default, < 0 for one who
            minds it less.
        theta: The learner's parameter vector (what routing reads).
        covariance: Its posterior covariance (how sure the router is; empty for a learner
            without one).
        checked: The self-check on the user's own history (with ``self_check``): of the
            user's events comparing the base router's choice with another answer, where the
            profile learned from the events *before* them and the base router ranked the two
            differently, ``(profile right, base right)``.
        trusted: Whether routing follows the profile: it has feedback and (with
            ``self_check``) has been right at least ``self_check`` times more often than the
            base router.
    """

    user: str
    n_events: int
    model_offsets: dict[str, float]
    cluster_offsets: list[dict[str, float]]
    cost_weight_shift: float
    theta: FloatArray
    covariance: FloatArray
    checked: tuple[int, int] | None = None
    trusted: bool = False

    @property
    def is_cold(self) -> bool:
        """No feedback: the user routes exactly as the base router."""
        return self.n_events == 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "user": self.user,
            "n_events": self.n_events,
            "model_offsets": dict(self.model_offsets),
            "cluster_offsets": [dict(c) for c in self.cluster_offsets],
            "cost_weight_shift": self.cost_weight_shift,
            "checked": None if self.checked is None else list(self.checked),
            "trusted": self.trusted,
        }


class PersonalizedRouter(Router):
    """Personalized routing over any base router (see the module docstring).

    Args:
        base: The base router: a registry name (default ``"auto"``), an unfitted router
            (fitted by :meth:`fit`) or a fitted one (used as is; :meth:`fit` then learns only
            the query clusters).
        store: Where feedback lives: ``None`` / ``"memory"`` (this process; saved with the
            router), ``"sqlite:///path.db"``, or a
            :class:`~llmrouter_core.personalized.store.FeedbackStore`.
        base_params: Hyperparameters of a base router given by name.
        learner: The per-user model: ``"offsets"`` (per-user offsets and price sensitivity
            by Bayesian shrinkage, :mod:`llmrouter_core.personalized.learner`) or ``"graph"``
            (a GMTRouter-style graph network shared by all users, trained on many users'
            feedback by :meth:`train_learner`; the ``torch`` extra;
            :mod:`llmrouter_core.personalized.graph`).
        margin: Predicted personal utility gain needed to leave the base router's choice
            (with the cost-quality knob or a budget).
        confidence: Further posterior standard deviations of that gain needed: a profile
            learned from a few noisy events changes little.
        self_check: Follow a user's profile only once, on the user's own history, it has
            predicted the user's later feedback better than the base router at least this
            many more times than worse (see :attr:`UserProfile.checked`; 0: no check): the
            router calibrates its caution per user from that user's own events.
        n_clusters: Query clusters the per-user offsets are conditioned on.
        model_prior: Prior precision of a user's per-model offsets (larger: more shrinkage).
        cluster_prior: Prior precision of a user's per-cluster offsets.
        cost_prior: Prior precision of a user's price sensitivity.
        noise: Standard deviation of a rating around the user's utility.
        pair_scale: Slope of a pairwise choice's logistic in the utility difference.
        max_events: A profile reads the user's last ``max_events`` events.
        random_state: Seed of the clustering.

    Example:
        >>> from llmrouter_core.testing import make_routing_data
        >>> router = PersonalizedRouter(base="linear").fit(make_routing_data(60))
        >>> q = "What is the capital of France?"
        >>> router.route(q, user="alice") == router.base_.route(q)  # no feedback yet
        True
    """

    name = "personalized"
    family = "personalized"
    supports_feedback = True
    #: Not trained by ``llmrouter benchmark`` by default (it needs users' feedback).
    benchmark_by_default = False

    base_: Router
    centers_: FloatArray
    cost_scale_: float

    def __init__(
        self,
        base: Any = "auto",
        *,
        store: Any = None,
        base_params: dict[str, Any] | None = None,
        learner: str = "offsets",
        margin: float = 0.05,
        confidence: float = 0.5,
        self_check: int = 3,
        n_clusters: int = 4,
        model_prior: float = 128.0,
        cluster_prior: float = 256.0,
        cost_prior: float = 4.0,
        noise: float = 0.25,
        pair_scale: float = 8.0,
        max_events: int = 200,
        random_state: int = 0,
    ) -> None:
        self.base = base
        self.store = store
        self.base_params = base_params
        self.learner = learner
        self.margin = margin
        self.confidence = confidence
        self.self_check = self_check
        self.n_clusters = n_clusters
        self.model_prior = model_prior
        self.cluster_prior = cluster_prior
        self.cost_prior = cost_prior
        self.noise = noise
        self.pair_scale = pair_scale
        self.max_events = max_events
        self.random_state = random_state

    # -- conventions -------------------------------------------------------------------------
    def __repr__(self, N_CHAR_MAX: int = 700) -> str:
        base = self.base if isinstance(self.base, str) else getattr(self.base, "name", "?")
        return f"<Router 'personalized' base={base!r} store={self._store_url()!r}>"

    def _store_url(self) -> str:
        store = getattr(self, "_store", None) or self.store
        if store is None or isinstance(store, str):
            return store or "memory"
        return str(getattr(store, "url", type(store).__name__))

    @property
    def tags(self) -> Tags:
        return self.base_.tags if self.is_fitted else Tags()

    @property
    def trained_policy(self) -> Any:
        return self.base_.trained_policy if self.is_fitted else None

    @property
    def anchor(self) -> Anchor | None:
        return self.base_.anchor

    @property
    def default_cost_weight(self) -> float:
        return self.base_.default_cost_weight if self.is_fitted else 0.0

    def _check_params(self, scorer: Any = None) -> str:
        for key in ("margin", "confidence"):
            value = getattr(self, key)
            if not (isinstance(value, int | float) and value >= 0):
                raise ValueError(f"{key} must be a number >= 0, got {value!r}")
        if self.learner not in LEARNERS:
            raise ValueError(f"learner must be one of {LEARNERS}, got {self.learner!r}")
        if self.learner == "graph":  # fail before fitting anything
            from llmrouter_core.training.torch import import_torch

            import_torch('the personalized router\'s learner="graph"')
        for key in ("model_prior", "cluster_prior", "cost_prior", "noise", "pair_scale"):
            value = getattr(self, key)
            if not (isinstance(value, int | float) and value > 0):
                raise ValueError(f"{key} must be a number > 0, got {value!r}")
        if not isinstance(self.self_check, int) or self.self_check < 0:
            raise ValueError(f"self_check must be an integer >= 0, got {self.self_check!r}")
        for key in ("n_clusters", "max_events"):
            value = getattr(self, key)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{key} must be an integer >= 1, got {value!r}")
        return ""

    @property
    def feedback_store(self) -> FeedbackStore:
        """The open feedback store (opened on first use from ``store``)."""
        with self._state_lock:
            if getattr(self, "_store", None) is None:
                self._store = open_store(self.store)
            return self._store

    @property
    def _state_lock(self) -> threading.Lock:
        lock: threading.Lock | None = self.__dict__.get("_lock")
        if lock is None:
            lock = self.__dict__.setdefault("_lock", threading.Lock())
        assert lock is not None
        return lock

    # -- training ----------------------------------------------------------------------------
    def fit(
        self, data: RoutingData, pool: Pool | None = None, *, on_unmeasured: str = "warn"
    ) -> PersonalizedRouter:
        """Fit the base router (unless it is fitted already) and the query clusters.

        Feedback in the store is kept: profiles are recomputed against the new base."""
        from sklearn.base import clone

        self._check_params()
        base = self.base
        if isinstance(base, Router):
            fitted = (
                base if base.is_fitted else clone(base).fit(data, pool, on_unmeasured=on_unmeasured)
            )
        else:
            from llmrouter_core.registry import get_router

            name = base if isinstance(base, str) else None
            if name == "personalized":
                raise ValueError("the base of a personalized router cannot be personalized")
            fitted = get_router(name, **(self.base_params or {})).fit(
                data, pool, on_unmeasured=on_unmeasured
            )
        quality, cost = fitted.predict(list(data.queries))
        self._set_base(fitted, self._cluster_centers(quality), float(np.mean(cost)))
        return self

    def _cluster_centers(self, quality: FloatArray) -> FloatArray:
        from sklearn.cluster import KMeans

        k = min(int(self.n_clusters), len(np.unique(quality.round(6), axis=0)))
        if k <= 1:
            return np.asarray(quality.mean(axis=0, keepdims=True), dtype=np.float64)
        km = KMeans(k, n_init=4, random_state=int(self.random_state)).fit(quality)
        return np.asarray(km.cluster_centers_, dtype=np.float64)

    def _set_base(self, base: Router, centers: FloatArray, cost_scale: float) -> None:
        self.base_ = base
        self.centers_ = centers
        self.cost_scale_ = cost_scale if cost_scale > 0 else 1.0
        self.models_ = list(base.models_)
        self.pool_ = base.pool_
        self.calibration_ = base.calibration_
        self.n_train_ = int(getattr(base, "n_train_", 0))
        self.unmeasured_models_ = list(getattr(base, "unmeasured_models_", []))
        self.learner_: Any
        if self.learner == "graph":
            from llmrouter_core.personalized.graph import GraphLearner

            self.learner_ = GraphLearner(
                len(self.models_),
                self.cost_scale_,
                noise=float(self.noise),
                pair_scale=float(self.pair_scale),
                seed=int(self.random_state),
            )
        else:
            self.learner_ = OffsetLearner(
                n_models=len(self.models_),
                n_clusters=int(centers.shape[0]),
                cost_scale=self.cost_scale_,
                model_prior=float(self.model_prior),
                cluster_prior=float(self.cluster_prior),
                cost_prior=float(self.cost_prior),
                noise=float(self.noise),
                pair_scale=float(self.pair_scale),
            )
        self._reset_profiles()

    def _reset_profiles(self) -> None:
        with self._state_lock:
            self._profiles: dict[str, tuple[tuple[int, int], UserProfile]] = {}
            self._checks: dict[tuple[str, tuple[Any, ...], tuple[Any, ...]], tuple[int, int]] = {}
            self._predictions: OrderedDict[str, tuple[FloatArray, FloatArray, int]] = OrderedDict()

    # -- prediction --------------------------------------------------------------------------
    def predict(self, queries: Sequence[str]) -> tuple[FloatArray, FloatArray]:
        """The base router's ``(quality, cost)`` predictions (no user)."""
        self._check_fitted()
        return self.base_.predict(queries)

    def clusters(self, quality: FloatArray) -> Any:
        """The query cluster of each row of predicted quality."""
        d = ((quality[:, None, :] - self.centers_[None, :, :]) ** 2).sum(axis=2)
        return np.argmin(d, axis=1)

    # -- routing -----------------------------------------------------------------------------
    def route_batch(
        self,
        queries: Sequence[str],
        *,
        cost_weight: float | None = None,
        budget: float | None = None,
        threshold: float | None = None,
        policy: Policy | None = None,
        allowed: Collection[str] | None = None,
        max_cost: float | None = None,
        user: str | None = None,
    ) -> list[Decision]:
        """Route queries asked by ``user``; arguments as :meth:`Router.route`.

        A user without feedback, or no user, gets exactly the base router's decisions.
        """
        self._check_fitted()
        args: dict[str, Any] = dict(
            cost_weight=cost_weight,
            budget=budget,
            threshold=threshold,
            policy=policy,
            allowed=allowed,
            max_cost=max_cost,
        )
        profile = None if user is None else self.profile(user)
        if profile is None or not profile.trusted:
            return self.base_.route_batch(queries, **args)
        base = self.base_
        chosen, weight = base._policy_for(policy, cost_weight, budget, threshold)
        rows = self._predicted(check_queries(queries))
        q = np.array([r[0] for r in rows]).reshape(-1, len(self.models_))
        c = np.array([r[1] for r in rows]).reshape(-1, len(self.models_))
        clusters = np.array([r[2] for r in rows], dtype=np.intp)
        mask = eligible(self.models_, c, allowed, max_cost)
        knob = False
        if isinstance(chosen, UtilityPolicy | BudgetPolicy):
            weight = chosen.weight(base._context(weight))
            chosen, knob = UtilityPolicy(), True
        shifted = max(0.0, weight + profile.cost_weight_shift)
        personal = np.clip(self.learner_.adjust(profile.theta, q, c, clusters), 0.0, 1.0)
        context = dataclasses.replace(base._context(shifted, mask), router=self.name)
        decisions = chosen.decide(personal, c, context)
        note = f"personalized for {user!r} ({profile.n_events} feedback events)"
        if knob and (float(self.margin) > 0 or float(self.confidence) > 0):
            decisions = self._guarded(decisions, profile, q, c, clusters, weight, shifted, mask)
        return [
            dataclasses.replace(
                d,
                reason=f"{d.reason}; {note}" if d.reason else note,
                extra={**d.extra, "user": user, "feedback_events": profile.n_events},
            )
            for d in decisions
        ]

    def _guarded(
        self,
        decisions: list[Decision],
        profile: UserProfile,
        q: FloatArray,
        c: FloatArray,
        clusters: Any,
        weight: float,
        shifted: float,
        mask: Any,
    ) -> list[Decision]:
        """Keep the base router's decision where the personal one's predicted utility gain is
        not above ``margin`` + ``confidence`` posterior standard deviations."""
        index = {m: j for j, m in enumerate(self.models_)}
        kept = UtilityPolicy().decide(q, c, self.base_._context(weight, mask))
        personal = np.clip(self.learner_.adjust(profile.theta, q, c, clusters), 0.0, 1.0)
        utility = personal - shifted * c
        out = []
        for i, (mine, theirs) in enumerate(zip(decisions, kept, strict=True)):
            p, g = index[mine.model], index[theirs.model]
            if p == g:
                out.append(mine)
                continue
            sd = self.learner_.gain_sd(profile.covariance, int(clusters[i]), (p, g), c[i, [p, g]])
            gain = float(utility[i, p] - utility[i, g])
            sure = gain > float(self.margin) + float(self.confidence) * sd
            out.append(
                mine
                if sure
                else dataclasses.replace(
                    theirs,
                    router=self.name,
                    reason="the base router's choice (the personal gain is not sure enough)",
                )
            )
        return out

    # -- feedback ----------------------------------------------------------------------------
    def feedback(  # type: ignore[override]
        self,
        user: str,
        query: str,
        model: str,
        rating: float | None = None,
        preferred_over: str | None = None,
    ) -> FeedbackEvent:
        """Record one piece of ``user``'s feedback on ``model``'s answer to ``query``.

        Args:
            user: Who gives it.
            query: The query that was answered.
            model: The pool model that answered.
            rating: The user's rating of the answer, in [0, 1].
            preferred_over: Another pool model whose answer to ``query`` the user liked less.

        Returns:
            The stored event (with its id and time).

        Raises:
            DataError: No rating and no preference, a rating outside [0, 1], an empty query.
            UnknownModelError: A model outside the pool.
        """
        event = FeedbackEvent(user, query, model, rating, preferred_over)
        return self.add_feedback([event])[0]

    def add_feedback(self, events: Sequence[FeedbackEvent]) -> list[FeedbackEvent]:
        """Record several events at once (one transaction); each checked as :meth:`feedback`."""
        self._check_fitted()
        checked = [check_event(e, self.models_) for e in events]
        return self.feedback_store.add(checked)

    def train_learner(self, users: Sequence[str] | None = None, **options: Any) -> dict[str, Any]:
        """Train the graph learner's shared weights on the feedback of ``users`` (default:
        every user in the store); ``options`` go to
        :meth:`~llmrouter_core.personalized.graph.GraphLearner.train` (``epochs``, ``lr``,
        ``validation``). Returns its training history. The offsets learner has nothing
        shared to train (each profile is learned from its user's own events).

        Raises:
            DataError: The learner is not ``"graph"``, or too little feedback.
        """
        self._check_fitted()
        if self.learner != "graph":
            raise DataError(f"learner {self.learner!r} has no shared weights to train")
        store = self.feedback_store
        names = list(store.users() if users is None else users)
        evidence = [self._evidence(store.events(u, limit=int(self.max_events)))[1] for u in names]
        history: dict[str, Any] = self.learner_.train(evidence, self.default_cost_weight, **options)
        self._reset_profiles()
        return history

    def feedback_batch(self, *args: Any, **kwargs: Any) -> None:
        raise TypeError(
            "a personalized router takes per-user feedback: use feedback(user, query, model, "
            "rating=..., preferred_over=...) or add_feedback(events)"
        )

    def profile(self, user: str) -> UserProfile:
        """What the router has learned about ``user`` (from the store's current events)."""
        self._check_fitted()
        if not isinstance(user, str) or not user.strip():
            raise DataError("user must be a non-empty string")
        store = self.feedback_store
        version = store.version(user)
        with self._state_lock:
            cached = self._profiles.get(user)
        if cached is not None and cached[0] == version:
            return cached[1]
        events = store.events(user, limit=int(self.max_events)) if version[0] else []
        events, evidence = self._evidence(events)
        theta, covariance = self.learner_.fit(evidence, self.default_cost_weight)
        checked = self._check_history(events, evidence) if self.self_check else None
        profile = self._profile_of(user, len(events), theta, covariance, checked)
        with self._state_lock:
            self._profiles[user] = (version, profile)
        return profile

    def _check_history(self, events: Sequence[FeedbackEvent], ev: Evidence) -> tuple[int, int]:
        """``(profile right, base right)`` over the user's history, each query's events held
        out from a profile learned on the events before them (see
        :attr:`UserProfile.checked`); outcomes are cached by the events they read."""
        w = self.default_cost_weight
        first: dict[str, int] = {}
        for i, e in enumerate(events):
            first.setdefault(e.query, i)
        right = [0, 0]
        for query, f in first.items():
            if f == 0:
                continue
            unit = [i for i in range(f, len(events)) if events[i].query == query]
            # Keyed by the events read (a store may reuse the id of a deleted event).
            key = (
                events[f].user,
                tuple((e.id, e.created) for e in events[:f]),
                tuple((events[i].id, events[i].created) for i in unit),
            )
            with self._state_lock:
                outcome = self._checks.get(key)
            if outcome is None:
                theta, _ = self.learner_.fit(ev.take(np.arange(f)), w)
                outcome = self._held_out(theta, ev.take(np.array(unit)), w)
                with self._state_lock:
                    if len(self._checks) > _PREDICTION_CACHE:
                        self._checks.clear()
                    self._checks[key] = outcome
            right[0] += outcome[0]
            right[1] += outcome[1]
        return right[0], right[1]

    def _held_out(self, theta: FloatArray, unit: Evidence, w: float) -> tuple[int, int]:
        """On the events of one query, ``(profile right, base right)`` among the compared
        pairs of answers that include the base router's choice and that the profile
        ``theta`` and the base router order differently (where following the profile would
        have left the base router's choice, or kept it)."""
        q, c = unit.quality[:1], unit.cost[:1]
        base = (q - w * c)[0]
        shift = w + self.learner_.weight_shift(theta)
        mine = (np.clip(self.learner_.adjust(theta, q, c, unit.cluster[:1]), 0, 1) - shift * c)[0]
        pairs = [(int(j), int(k)) for j, k in zip(unit.model, unit.other, strict=True) if k >= 0]
        rated = [(int(j), float(r)) for j, r in zip(unit.model, unit.rating, strict=True)]
        rated = [(j, r) for j, r in rated if not np.isnan(r)]
        pairs += [(j, k) for j, r in rated for k, s in rated if r > s and j != k]
        out = [0, 0]
        chosen = int(np.argmax(base))  # what the base router would have answered with
        for j, k in pairs:  # the user prefers j to k
            if chosen in (j, k) and (mine[j] > mine[k]) != (base[j] > base[k]):
                out[0 if mine[j] > mine[k] else 1] += 1
        return out[0], out[1]

    def _profile_of(
        self,
        user: str,
        n: int,
        theta: FloatArray,
        covariance: FloatArray,
        checked: tuple[int, int] | None = None,
    ) -> UserProfile:
        m = len(self.models_)
        offsets: dict[str, float] = {}
        clusters: list[dict[str, float]] = []
        if isinstance(self.learner_, OffsetLearner):  # the graph's profile is an embedding
            offsets = {name: float(v) for name, v in zip(self.models_, theta[:m], strict=True)}
            b = theta[m:-1].reshape(int(self.centers_.shape[0]), m)
            clusters = [dict(zip(self.models_, map(float, row), strict=True)) for row in b]
        return UserProfile(
            user=user,
            n_events=n,
            model_offsets=offsets,
            cluster_offsets=clusters,
            cost_weight_shift=self.learner_.weight_shift(theta),
            theta=theta,
            covariance=covariance,
            checked=checked,
            trusted=n > 0 and (checked is None or checked[0] - checked[1] >= self.self_check),
        )

    def _evidence(self, events: Sequence[FeedbackEvent]) -> tuple[list[FeedbackEvent], Evidence]:
        index = {name: j for j, name in enumerate(self.models_)}
        events = [
            e
            for e in events
            if e.model in index and (e.preferred_over is None or e.preferred_over in index)
        ]  # events about models a retrained base no longer routes to are left out
        rows = self._predicted([e.query for e in events])
        m = len(self.models_)
        return events, Evidence(
            quality=np.array([r[0] for r in rows]).reshape(-1, m),
            cost=np.array([r[1] for r in rows]).reshape(-1, m),
            cluster=np.array([r[2] for r in rows], dtype=np.intp),
            model=np.array([index[e.model] for e in events], dtype=np.intp),
            rating=np.array([np.nan if e.rating is None else e.rating for e in events]),
            other=np.array(
                [-1 if e.preferred_over is None else index[e.preferred_over] for e in events],
                dtype=np.intp,
            ),
        )

    def precompute(self, queries: Sequence[str]) -> None:
        """Compute and cache the base router's predictions for ``queries`` in one batch
        (e.g. a known set of queries about to be routed one at a time)."""
        self._check_fitted()
        self._predicted(check_queries(queries))

    def _predicted(self, queries: Sequence[str]) -> list[tuple[FloatArray, FloatArray, int]]:
        """Base predictions ``(quality, cost, cluster)`` per query (cached: a user's
        profile is refitted on its feedback queries whenever the user's events change)."""
        with self._state_lock:
            missing = list(dict.fromkeys(q for q in queries if q not in self._predictions))
        if missing:
            q, c = self.base_.predict(missing)
            clusters = self.clusters(q)
            with self._state_lock:
                for i, text in enumerate(missing):
                    self._predictions[text] = (q[i], c[i], int(clusters[i]))
        with self._state_lock:
            out = [self._predictions[t] for t in queries]
            for t in queries:
                self._predictions.move_to_end(t)
            while len(self._predictions) > _PREDICTION_CACHE:
                self._predictions.popitem(last=False)
        return out

    # -- users' data -------------------------------------------------------------------------
    def forget(self, user: str) -> int:
        """Delete every event of ``user`` (a user may ask to be forgotten); returns how many."""
        n = self.feedback_store.delete_user(user)
        with self._state_lock:
            getattr(self, "_profiles", {}).pop(user, None)
            checks = getattr(self, "_checks", {})
            for key in [k for k in checks if k[0] == user]:
                del checks[key]
        return n

    def export_user(self, user: str) -> dict[str, Any]:
        """``user``'s feedback as one JSON-safe document (see :meth:`import_user`)."""
        return export_user(self.feedback_store, user)

    def import_user(self, document: Any, *, user: str | None = None) -> int:
        """Add the events of an :meth:`export_user` document (as ``user``, default the
        document's); returns how many were added."""
        self._check_fitted()
        if isinstance(document, dict) and isinstance(document.get("events"), list):
            for raw in document["events"]:
                if isinstance(raw, dict):
                    check_event(
                        FeedbackEvent.from_dict({**raw, "user": user or document.get("user")}),
                        self.models_,
                    )
        return import_user(self.feedback_store, document, user=user)

    # -- persistence -------------------------------------------------------------------------
    def save(self, path: Any) -> Path:
        """Save the base router and the clusters as plain files (see
        :func:`llmrouter_core.saving.save_router`). The feedback of a memory store is saved
        with them; a SQLite store is named by its URL (and stays where it is): loading opens
        it only if it is already a feedback store."""
        from llmrouter_core.saving import save_router

        self._check_fitted()
        store = self.feedback_store
        section: dict[str, Any] = {
            "kind": "personalized",
            "params": {
                k: v
                for k, v in self.get_params(deep=False).items()
                if k not in ("base", "store", "base_params")
            },
            "cost_scale": self.cost_scale_,
            "store": store.url,
            "events": None,
        }
        if isinstance(store, MemoryStore):
            section["events"] = [e.to_dict() for u in store.users() for e in store.events(u)]
        arrays: dict[str, Any] = {"centers": self.centers_}
        if self.learner == "graph":
            section["graph"], weights = self.learner_.get_state()
            arrays.update({f"graph/{k}": v for k, v in weights.items()})
        return save_router(self.base_, path, wrapper=(section, arrays))

    @classmethod
    def from_saved(
        cls, base: Router, section: dict[str, Any], arrays: dict[str, Any], store: Any = None
    ) -> PersonalizedRouter:
        """The router saved by :meth:`save` around an already loaded ``base`` (used by
        :func:`llmrouter_core.load_router`)."""
        params = section.get("params", {})
        if not isinstance(params, dict):
            raise DataError("the saved personalized parameters are not a JSON object")
        saved_store = section.get("store")
        events = section.get("events")
        if store is None and isinstance(saved_store, str) and saved_store != "memory":
            # A path read from the file: opened only if it already is a feedback store (a
            # saved router never creates or alters another file).
            if not saved_store.startswith("sqlite:///"):
                raise DataError(f"unknown saved feedback store {saved_store!r}")
            try:
                store = SQLiteStore(saved_store[len("sqlite:///") :], create=False)
            except FeedbackStoreError as exc:
                raise DataError(f"{exc}; load it with store=... to name its store") from exc
        if store is None:
            store = MemoryStore(FeedbackEvent.from_dict(e) for e in (events or []))
        router = cls(base=base.name, store=store, **params)
        router._check_params()
        centers = np.asarray(arrays["centers"], dtype=np.float64)
        if centers.ndim != 2 or centers.shape[1] != len(base.models_):
            raise DataError("the saved query clusters do not fit the saved models")
        router._set_base(base, centers, float(section["cost_scale"]))
        if router.learner == "graph" and (section.get("graph") or {}).get("trained"):
            prefix = "graph/"
            router.learner_.set_state(
                {k[len(prefix) :]: v for k, v in arrays.items() if k.startswith(prefix)}
            )
        return router

    def _check_fitted(self) -> None:
        if not self.is_fitted:
            raise NotFittedError(
                "this personalized router is not fitted yet; call fit(data) first or load a "
                "trained router with llmrouter_core.load_router(path)"
            )
