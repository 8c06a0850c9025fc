"""Benchmark every registered router on RouterBench and LLMRouter's dcrouter data.

Per router and dataset: AIQ on the test split, the share of the oracle gap closed, the cost at
which the router's curve reaches the best single model's score, training seconds, and routing
latency (one query p50/p99, one batch of 1,000). Prints a Markdown table (the README's
comparison table) and writes JSON + PNG per dataset under ``--out``.

Usage:
    LLMROUTER_DATA_DIR=../shared/data python benchmarks/bench_routers.py [--routers a,b] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from llmrouter_core.benchmark import run_benchmark

DATASETS = ("routerbench", "llmrouter")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--routers", default=None, help="comma-separated router names")
    parser.add_argument("--datasets", default=",".join(DATASETS))
    parser.add_argument("--out", default="runs/bench_routers")
    args = parser.parse_args()
    names = args.routers.split(",") if args.routers else None
    results = {}
    for dataset in args.datasets.split(","):
        results[dataset] = run_benchmark(dataset, routers=names, out_dir=Path(args.out) / dataset)
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / "summary.json").write_text(json.dumps(results, indent=2))

    rows: dict[str, dict[str, dict]] = {}
    for dataset, res in results.items():
        for row in res["leaderboard"]:
            rows.setdefault(row["router"], {})[dataset] = row
    header = ["router"]
    for dataset in results:
        header += [f"{dataset} AIQ", f"{dataset} gap closed", f"{dataset} cost@best-single"]
    header += ["train s (RB)", "route p50 ms (RB)", "1k batch s (RB)"]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    order = sorted(rows, key=lambda r: -rows[r].get(DATASETS[0], {}).get("aiq", 0.0))
    for router in order:
        cells = [router]
        for dataset in results:
            row = rows[router].get(dataset)
            if row is None:
                cells += ["-", "-", "-"]
                continue
            pct = row.get("pct_cost_of_best_single")
            cells += [
                f"{row['aiq']:.4f}",
                f"{row['oracle_gap_closed']:.1%}",
                "never" if pct is None else f"{pct:.0f}%",
            ]
        rb = rows[router].get(DATASETS[0], {})
        cells += [
            f"{rb.get('train_seconds', float('nan')):.1f}",
            f"{rb.get('route_p50_ms', float('nan')):.2f}",
            f"{rb.get('batch_1000_s', float('nan')):.3f}",
        ]
        print("| " + " | ".join(cells) + " |")
    for dataset, res in results.items():
        print(
            f"\n{dataset}: {res['n_train']} train / {res['n_test']} test queries; single models' "
            f"hull AIQ {res['single_hull_aiq']:.4f}; oracle AIQ {res['oracle_aiq']:.4f}"
        )
        for name, why in res["skipped"].items():
            print(f"  skipped {name}: {why}")


if __name__ == "__main__":
    main()
