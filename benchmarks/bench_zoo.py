"""Benchmark the router zoo side by side on RouterBench and LLMRouter's dcrouter data.

Trains every zoo router (and reference routers: best single model, kNN, ridge) on the train
split, evaluates on the test split (test questions that also occur in train are removed from
train), and prints one Markdown table with, per dataset: AIQ, the best score the router's
curve reaches (and its gain over the best single model), and the share of the best single
model's cost at which the router reaches that model's score; plus training seconds and the
one-query routing latency (p50) on RouterBench. All figures come from this one run.

Usage:
    LLMROUTER_DATA_DIR=../shared/data python benchmarks/bench_zoo.py [--routers a,b]
        [--datasets routerbench,llmrouter] [--out runs/bench_zoo]

Torch-based routers (graph, routerdc, encoder) are skipped with a reason when the ``torch``
extra is missing. The encoder router fine-tunes a transformer layer and takes minutes.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
from pathlib import Path

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from llmrouter_core.benchmark import load_split, run_benchmark
from llmrouter_core.evaluation import single_model_points

DATASETS = ("routerbench", "llmrouter")
REFERENCE = ("single", "knn", "linear")
ZOO = (
    "auto",
    "task",
    "cluster",
    "irt",
    "mf",
    "carrot",
    "hybrid",
    "sw_ranking",
    "elo",
    "bandit",
    "graph",
    "routerdc",
    "encoder",
)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--routers", default=",".join(ZOO + REFERENCE))
    parser.add_argument("--datasets", default=",".join(DATASETS))
    parser.add_argument("--out", default="runs/bench_zoo")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    names = args.routers.split(",")
    out = Path(args.out)
    results = {}
    best_single: dict[str, tuple[str, float, float]] = {}
    for dataset in args.datasets.split(","):
        _, test = load_split(dataset)
        points = single_model_points(test)
        top = max(points, key=lambda m: (points[m].score, -points[m].cost))
        best_single[dataset] = (top, points[top].score, points[top].cost)
        results[dataset] = run_benchmark(dataset, routers=names, out_dir=out / dataset)
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(json.dumps(results, indent=2), encoding="utf-8")

    rows: dict[str, dict[str, dict]] = {}  # type: ignore[type-arg]
    for dataset, res in results.items():
        for row in res["leaderboard"]:
            rows.setdefault(row["router"], {})[dataset] = row
    header = ["router"]
    for dataset in results:
        header += [
            f"{dataset} AIQ",
            f"{dataset} top score (vs best single)",
            f"{dataset} cost to match best single",
        ]
    header += ["train s (RB)", "route p50 ms (RB)"]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    first = next(iter(results))
    order = sorted(rows, key=lambda r: -rows[r].get(first, {}).get("aiq", 0.0))
    for router in order:
        cells = [router]
        for dataset in results:
            row = rows[router].get(dataset)
            if row is None:
                cells += ["-", "-", "-"]
                continue
            single = best_single[dataset][1]
            pct = row.get("pct_cost_of_best_single")
            cells += [
                f"{row['aiq']:.4f}",
                f"{row['best_score']:.4f} ({row['best_score'] / single - 1:+.1%})",
                "never" if pct is None else f"{pct:.0f}%",
            ]
        rb = rows[router].get(first, {})
        cells += [
            f"{rb.get('train_seconds', float('nan')):.1f}",
            f"{rb.get('route_p50_ms', float('nan')):.2f}",
        ]
        print("| " + " | ".join(cells) + " |")
    for dataset, res in results.items():
        name, score, cost = best_single[dataset]
        print(
            f"\n{dataset}: {res['n_train']} train / {res['n_test']} test queries; best single "
            f"model {name} ({score:.4f} at ${cost:.6f}/query); single models' hull AIQ "
            f"{res['single_hull_aiq']:.4f}; oracle AIQ {res['oracle_aiq']:.4f}"
        )
        for skipped, why in res["skipped"].items():
            print(f"  skipped {skipped}: {why}")


if __name__ == "__main__":
    main()
