"""How much of the oracle's AIQ routing from the query text can reach, and what it would need.

Printed for one dataset (train on the train split, figures on the test split):

- the AIQ of routing by every model's mean score with exact per-query costs (close to the
  single models' hull), and the per-query oracle's;
- each policy's cost to reach the best single model's score (as a share of its cost);
- the *task oracle*: every test query's task is known, and each model's quality is its mean
  score on that task **in the test split** (exact per-query costs). It is the best that any
  router recognising only the task can do; it uses the test outcomes on purpose, so it is a
  bound, not a router;
- the within-task predictability that the text offers: the out-of-fold AUC, on the training
  split, of a logistic regression on the hashed query features (the default embedder)
  predicting each model's 0/1 outcome within each task (5 stratified folds);
- what a target AIQ asks of that predictability: the AIQ of a simulated scorer that knows the
  task and, within it, has a given AUC for every model's outcome (a Gaussian signal of the
  test outcome, exactly calibrated on the task's base rate; binary scores only; AIQ the mean
  over three seeds, the cost to match given per seed).

Usage:
    LLMROUTER_DATA_DIR=../shared/data python benchmarks/bench_headroom.py
        [--dataset routerbench] [--target 0.88]
"""

from __future__ import annotations

import argparse
import logging
import os

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import numpy as np
from scipy.stats import norm
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold, cross_val_predict

from llmrouter_core.benchmark import load_split
from llmrouter_core.data.core import FloatArray, RoutingData
from llmrouter_core.evaluation.metrics import cost_at_score
from llmrouter_core.features import get_embedder
from llmrouter_core.training.selection import cv_aiq, route_points  # as model selection uses

AUCS = (0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9)


def task_means(data: RoutingData) -> FloatArray:
    """Each query's row: every model's mean score over the queries of its task."""
    assert data.tasks is not None
    tasks = np.asarray(data.tasks)
    out = np.empty_like(data.scores)
    for task in np.unique(tasks):
        rows = tasks == task
        out[rows] = data.scores[rows].mean(axis=0)
    return out


def simulated_quality(data: RoutingData, auc: float, seed: int) -> FloatArray:
    """A scorer with within-task AUC ``auc`` for every model, calibrated exactly."""
    rng = np.random.default_rng(seed)
    gap = np.sqrt(2.0) * norm.ppf(auc)  # AUC of N(gap, 1) against N(0, 1)
    signal = gap * data.scores + rng.standard_normal(data.scores.shape)
    base = np.clip(task_means(data), 1e-6, 1 - 1e-6)
    good = base * norm.pdf(signal - gap)
    return np.asarray(good / (good + (1 - base) * norm.pdf(signal)))


def within_task_aucs(train: RoutingData) -> list[tuple[str, str, float]]:
    x = get_embedder("hashing").fit(train.queries).transform(train.queries)
    tasks = np.asarray(train.tasks)
    out = []
    for task in np.unique(tasks):
        rows = np.flatnonzero(tasks == task)
        for j, model in enumerate(train.models):
            y = (train.scores[rows, j] >= 0.5).astype(int)
            if min(y.sum(), (1 - y).sum()) < 10:
                continue
            folds = StratifiedKFold(5, shuffle=True, random_state=0)
            clf = LogisticRegression(C=1.0, max_iter=2000)
            p = cross_val_predict(clf, x[rows], y, cv=folds, method="predict_proba")[:, 1]
            out.append((task, model, float(roc_auc_score(y, p))))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--dataset", default="routerbench")
    parser.add_argument("--target", type=float, default=0.88)
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    train, test = load_split(args.dataset)
    if train.tasks is None or test.tasks is None:
        parser.error(f"{args.dataset} has no task labels: the task oracle needs them")
    y, c = test.scores, test.costs
    best = int(np.argmax(y.mean(axis=0)))
    best_score, best_cost = float(y[:, best].mean()), float(c[:, best].mean())

    def show(name: str, quality: FloatArray) -> None:
        at = cost_at_score(route_points(quality, c, y, c), best_score)
        share = "never" if at is None else f"{at / best_cost:.0%}"
        print(f"{name:<32} AIQ {cv_aiq(quality, c, y, c):.4f}   cost to match {share}")

    print(f"{args.dataset}: {train.n_queries} train / {test.n_queries} test queries")
    print(f"best single model {test.models[best]}: {best_score:.4f} at ${best_cost:.6f}/query")
    show("model means, per-query costs", np.broadcast_to(y.mean(axis=0), y.shape))
    show("task oracle (test means)", task_means(test))
    show("per-query oracle", y)

    aucs = within_task_aucs(train)
    values = np.array([a for _, _, a in aucs])
    print(
        f"\nwithin-task out-of-fold AUC on train ({len(aucs)} task x model pairs): "
        f"median {np.median(values):.3f}, quartiles {np.quantile(values, 0.25):.3f}-"
        f"{np.quantile(values, 0.75):.3f}, max {values.max():.3f}"
    )
    for task, model, auc in aucs:
        print(f"  {task:<20} {model:<40} {auc:.3f}")

    if not np.isin(y, (0.0, 1.0)).all():
        print("\nscores are not all 0/1: the simulated scorer is skipped")
        return
    print(f"\nAIQ of a task-aware scorer with a given within-task AUC (target {args.target}):")
    for auc in AUCS:
        runs = [simulated_quality(test, auc, s) for s in range(3)]
        value = np.mean([cv_aiq(q, c, y, c) for q in runs])
        at = [cost_at_score(route_points(q, c, y, c), best_score) for q in runs]
        share = " / ".join("never" if a is None else f"{a / best_cost:.0%}" for a in at)
        mark = "  <- reaches the target" if value >= args.target else ""
        print(f"  AUC {auc:.2f}: AIQ {value:.4f}, cost to match {share}{mark}")


if __name__ == "__main__":
    main()
