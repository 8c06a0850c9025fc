"""Scorers: what a router predicts, each pool model's quality per query.

Every scorer is a scikit-learn style regressor (:class:`~.base.Scorer`); any scikit-learn
regressor is one too (:class:`~.estimator.EstimatorScorer`). The built-in scorers are
registered by name here and imported only when used:

================  ===========================================================================
name              method
================  ===========================================================================
ridge             ridge regression per model (``linear`` router)
logistic          soft-label logistic regression per model
svm               linear support-vector regression per model
knn               similarity-weighted nearest training queries
mlp               a small multi-output network on an SVD of the features
irt               multidimensional item response theory
bilinear          RouteLLM's bilinear model (``mf`` router: pairwise recipe)
elo               one Bradley-Terry rating per model
sw_ranking        Bradley-Terry ratings per query from similarity-weighted battles
hybrid            Hybrid-LLM: "as good as the large model" per cheaper model
carrot            CARROT's quality estimator (kNN or ridge, by cross-validation)
cluster           k-means regions of query space, each with its models' mean scores
task              a classifier of the training data's task labels
bandit            LinUCB / Thompson sampling over ridge posteriors, learns online
graph             GraphRouter-style message passing (torch)
contrastive       RouterDC's dual contrastive encoder (torch)
encoder           a fine-tuned MiniLM layer on the query text (torch)
judge             an LLM rates every model for the query
stack             a cross-validated stack of scorers and the prior (the default router)
prior             each model's mean training score (``single``)
cheapest          every model equal: the cheapest wins (``cheapest``)
random            a random model per query
smallest/largest  the pool's smallest / largest model
oracle            the measured outcomes of the query itself (evaluation only)
================  ===========================================================================
"""

from __future__ import annotations

import importlib
from typing import Any

from llmrouter_core.scoring.base import FitContext, HeadScorer, Scorer, Selected, Selection, Tags

__all__ = [
    "SCORERS",
    "FitContext",
    "HeadScorer",
    "Scorer",
    "Selected",
    "Selection",
    "Tags",
    "get_scorer",
    "list_scorers",
    "resolve_scorer",
    "scorer_name",
]

#: name -> "module:Class" of the built-in scorers.
SCORERS: dict[str, str] = {
    "ridge": "llmrouter_core.scoring.linear:RidgeScorer",
    "logistic": "llmrouter_core.scoring.linear:LogisticScorer",
    "svm": "llmrouter_core.scoring.linear:SVMScorer",
    "knn": "llmrouter_core.scoring.knn:KNNScorer",
    "mlp": "llmrouter_core.scoring.mlp:MLPScorer",
    "irt": "llmrouter_core.scoring.latent:IRTScorer",
    "bilinear": "llmrouter_core.scoring.latent:BilinearScorer",
    "elo": "llmrouter_core.scoring.elo:EloScorer",
    "sw_ranking": "llmrouter_core.scoring.elo:SWRankingScorer",
    "hybrid": "llmrouter_core.scoring.hybrid:HybridScorer",
    "carrot": "llmrouter_core.scoring.carrot:CarrotScorer",
    "cluster": "llmrouter_core.scoring.cluster:ClusterScorer",
    "task": "llmrouter_core.scoring.cluster:TaskScorer",
    "bandit": "llmrouter_core.scoring.bandit:BanditScorer",
    "graph": "llmrouter_core.scoring.graph:GraphScorer",
    "contrastive": "llmrouter_core.scoring.contrastive:ContrastiveScorer",
    "encoder": "llmrouter_core.scoring.encoder:EncoderScorer",
    "judge": "llmrouter_core.scoring.judge:JudgeScorer",
    "stack": "llmrouter_core.scoring.stack:StackScorer",
    "prior": "llmrouter_core.scoring.constant:PriorScorer",
    "cheapest": "llmrouter_core.scoring.constant:CheapestScorer",
    "random": "llmrouter_core.scoring.constant:RandomScorer",
    "smallest": "llmrouter_core.scoring.constant:SmallestScorer",
    "largest": "llmrouter_core.scoring.constant:LargestScorer",
    "oracle": "llmrouter_core.scoring.constant:OracleScorer",
    "estimator": "llmrouter_core.scoring.estimator:EstimatorScorer",
}


def _class(name: str) -> type[Scorer]:
    target = SCORERS.get(name)
    if target is None:
        raise ValueError(f"unknown scorer {name!r}; known scorers: {', '.join(sorted(SCORERS))}")
    module, _, attr = target.partition(":")
    cls: type[Scorer] = getattr(importlib.import_module(module), attr)
    return cls


def get_scorer(name: str, **params: Any) -> Scorer:
    """A new scorer of the registered ``name`` with ``params``.

    Example:
        >>> get_scorer("knn", n_neighbors=5)
        KNNScorer(n_neighbors=5)
    """
    return _class(name)(**params)


def scorer_class(name: str) -> type[Scorer]:
    """The class registered as ``name``."""
    return _class(name)


def scorer_name(scorer: Scorer) -> str | None:
    """The registered name of ``scorer``'s class (``None`` for a class of the user's)."""
    cls = type(scorer)
    target = f"{cls.__module__}:{cls.__qualname__}"
    for name, path in SCORERS.items():
        if path == target:
            return name
    return None


def list_scorers() -> list[str]:
    """The registered scorer names."""
    return sorted(SCORERS)


def resolve_scorer(scorer: Any) -> Scorer:
    """``scorer`` as a :class:`Scorer`: a registered name, a scorer, or any object with
    ``fit(X, Y)`` and ``predict(X)`` (wrapped in an
    :class:`~llmrouter_core.scoring.estimator.EstimatorScorer`)."""
    if isinstance(scorer, str):
        return get_scorer(scorer)
    if isinstance(scorer, Scorer):
        return scorer
    if callable(getattr(scorer, "fit", None)) and callable(getattr(scorer, "predict", None)):
        from llmrouter_core.scoring.estimator import EstimatorScorer

        return EstimatorScorer(scorer)
    raise TypeError(
        "scorer must be a scorer name, a Scorer, or an estimator with fit(X, Y) and "
        f"predict(X); got {type(scorer).__name__}"
    )
