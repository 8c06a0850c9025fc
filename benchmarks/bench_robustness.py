"""Robustness of the default router on regimes the shared data does not show as it is.

Builds, from RouterBench and LLMRouter's dcrouter data, regimes a new user's data may be in:
small training sets (100 / 300 / 1,000 queries), small pools (2 and 5 models, seeded), several
near-tied strong models (copies of the best training model with 2-5% of its labels flipped,
at +-5% of its cost), and one task held out of training. Each regime trains ``auto``,
``single``, ``linear``, ``mf``, ``task`` and a TF-IDF + logistic reference on its training part
and evaluates on the test split. It prints, per regime, each router's AIQ and best score, the
single models' hull, and whether ``auto`` holds its promise: AIQ >= single's - 0.002 and best
score >= single's - 0.002 (single's best score is the test score of the best training model).
The last column is the share of the gap between max(hull, logistic) and the oracle that
``auto`` closes.

Usage:
    LLMROUTER_DATA_DIR=../shared/data python benchmarks/bench_robustness.py
        [--datasets routerbench,llmrouter] [--regimes all,n100,...] [--routers auto,single,...]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from llmrouter_core import get_router
from llmrouter_core.benchmark import load_split
from llmrouter_core.data import RoutingData
from llmrouter_core.evaluation import evaluate

ROUTERS = ("auto", "single", "linear", "mf", "task", "logistic")
TOLERANCE = 0.002
Regime = Callable[[RoutingData, RoutingData], tuple[RoutingData, RoutingData]]


def _rows(data: RoutingData, n: int, seed: int) -> RoutingData:
    if n >= data.n_queries:
        return data
    rng = np.random.default_rng(seed)
    return data.subset(np.sort(rng.choice(data.n_queries, n, replace=False)))


def _pool(
    train: RoutingData, test: RoutingData, k: int, seed: int
) -> tuple[RoutingData, RoutingData]:
    rng = np.random.default_rng(seed)
    best = int(np.argmax(train.mean_scores()))
    others = [j for j in range(train.n_models) if j != best]
    keep = sorted([best, *rng.choice(others, k - 1, replace=False).tolist()])
    names = [train.models[j] for j in keep]
    return train.select_models(names), test.select_models(names)


def _with_near_ties(data: RoutingData, source: str, seed: int) -> RoutingData:
    """``data`` plus three copies of ``source`` with 2%, 3.5% and 5% of its labels flipped
    (0/1 scores flip; others move to 1 - score) at 95%, 100% and 105% of its cost."""
    rng = np.random.default_rng(seed)
    j = data.models.index(source)
    costs = data.require_costs()
    scores, cost_cols, names = [data.scores], [costs], list(data.models)
    for k, (rate, scale) in enumerate(((0.02, 0.95), (0.035, 1.0), (0.05, 1.05))):
        col = data.scores[:, j].copy()
        flip = rng.random(col.size) < rate
        col[flip] = 1.0 - col[flip]
        scores.append(col[:, None])
        cost_cols.append(costs[:, [j]] * scale)
        names.append(f"{source}~near-tie-{k + 1}")
    return RoutingData(
        query_ids=data.query_ids,
        queries=data.queries,
        models=names,
        scores=np.hstack(scores),
        costs=np.hstack(cost_cols),
        tasks=data.tasks,
        name=data.name,
    )


def _near_ties(
    train: RoutingData, test: RoutingData, n: int | None = None
) -> tuple[RoutingData, RoutingData]:
    source = train.models[int(np.argmax(train.mean_scores()))]
    if n is not None:
        train = _rows(train, n, 11)
    return _with_near_ties(train, source, 1), _with_near_ties(test, source, 2)


def _held_out_task(train: RoutingData, test: RoutingData) -> tuple[RoutingData, RoutingData]:
    assert train.tasks is not None
    tasks, counts = np.unique(np.asarray(train.tasks), return_counts=True)
    held = str(tasks[int(np.argmax(counts))])  # the largest task: the hardest to do without
    keep = np.flatnonzero(np.asarray(train.tasks) != held)
    return train.subset(keep), test


REGIMES: dict[str, Regime] = {
    "all": lambda tr, te: (tr, te),
    "n100": lambda tr, te: (_rows(tr, 100, 3), te),
    "n300": lambda tr, te: (_rows(tr, 300, 4), te),
    "n1000": lambda tr, te: (_rows(tr, 1000, 5), te),
    "pool2": lambda tr, te: _pool(tr, te, 2, 6),
    "pool5": lambda tr, te: _pool(tr, te, 5, 7),
    "near_tied": _near_ties,
    "near_tied_n300": lambda tr, te: _near_ties(tr, te, 300),
    "task_held_out": _held_out_task,
}


def _make(name: str):  # type: ignore[no-untyped-def]
    if name == "logistic":  # TF-IDF + one logistic regression per model, mean costs
        return get_router("logistic", cost_model="mean", blend=1.0)
    return get_router(name)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--datasets", default="routerbench,llmrouter")
    parser.add_argument("--regimes", default=",".join(REGIMES))
    parser.add_argument("--routers", default=",".join(ROUTERS))
    parser.add_argument("--out", default="runs/bench_robustness")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    routers = args.routers.split(",")
    rows = []
    for dataset in args.datasets.split(","):
        full_train, full_test = load_split(dataset)
        for regime in args.regimes.split(","):
            train, test = REGIMES[regime](full_train, full_test)
            row: dict[str, object] = {"dataset": dataset, "regime": regime}
            row.update(n_train=train.n_queries, n_models=train.n_models)
            start = time.perf_counter()
            for name in routers:
                ev = evaluate(_make(name).fit(train), test, n_points=41)
                row[f"{name}_aiq"], row[f"{name}_top"] = ev.aiq, ev.best_score
                row["hull_aiq"], row["oracle_aiq"] = ev.single_hull_aiq, ev.oracle_aiq
            row["seconds"] = time.perf_counter() - start
            if "auto" in routers and "single" in routers:
                row["ok"] = bool(
                    row["auto_aiq"] >= row["single_aiq"] - TOLERANCE  # type: ignore[operator]
                    and row["auto_top"] >= row["single_top"] - TOLERANCE  # type: ignore[operator]
                )
                base = max(row["hull_aiq"], row.get("logistic_aiq", row["hull_aiq"]))  # type: ignore[type-var]
                gap = row["oracle_aiq"] - base  # type: ignore[operator]
                row["gap_closed"] = (row["auto_aiq"] - base) / gap if gap > 0 else None  # type: ignore[operator]
            rows.append(row)
            print(json.dumps(row), flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(rows, indent=2), encoding="utf-8")
    header = [
        "dataset",
        "regime",
        "n",
        "m",
        *(f"{r} AIQ / top" for r in routers),
        "hull",
        "ok",
        "gap closed",
    ]
    print("\n| " + " | ".join(header) + " |\n|" + "---|" * len(header))
    for row in rows:
        cells = [str(row["dataset"]), str(row["regime"]), str(row["n_train"]), str(row["n_models"])]
        cells += [f"{row[f'{r}_aiq']:.4f} / {row[f'{r}_top']:.4f}" for r in routers]
        gap = row.get("gap_closed")
        cells += [
            f"{row['hull_aiq']:.4f}",
            str(row.get("ok", "")),
            "-" if gap is None else f"{gap:.0%}",
        ]
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
