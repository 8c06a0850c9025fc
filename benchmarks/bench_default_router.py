"""The foundation's speed targets, measured in one run.

- ``import llmrouter_core`` (fresh interpreter, best of 5);
- training time of every router of the foundation on RouterBench train, and their sum;
- routing latency of the *loaded* default router: one query at a time (p50/p99) and one batch
  of 1,000 queries.

Usage: LLMROUTER_DATA_DIR=../shared/data python benchmarks/bench_default_router.py
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from llmrouter_core import get_router, load_router
from llmrouter_core.benchmark import load_split, measure_latency

FOUNDATION = ("random", "cheapest", "single", "knn", "linear", "logistic", "svm", "mlp", "auto")


def main() -> None:
    code = (
        "import time; t = time.perf_counter(); import llmrouter_core; "
        "print(time.perf_counter() - t)"
    )
    imports = [float(subprocess.check_output([sys.executable, "-c", code])) for _ in range(5)]
    best, worst = min(imports) * 1e3, max(imports) * 1e3
    print(f"import llmrouter_core: best {best:.1f} ms, worst {worst:.1f} ms")

    train, test = load_split("routerbench")
    total = 0.0
    for name in FOUNDATION:
        start = time.perf_counter()
        router = get_router(name).fit(train)
        seconds = time.perf_counter() - start
        total += seconds
        print(f"train {name:<9} {seconds:7.1f} s")
        if name == "auto":
            with tempfile.TemporaryDirectory() as tmp:
                router.save(tmp)
                loaded = load_router(tmp)
                lat = measure_latency(loaded, test.queries)
    print(f"train all {len(FOUNDATION)} routers: {total:.1f} s")
    print(
        f"loaded default router: one query p50 {lat['route_p50_ms']:.2f} ms, "
        f"p99 {lat['route_p99_ms']:.2f} ms; 1,000 queries {lat['batch_1000_s']:.3f} s"
    )


if __name__ == "__main__":
    main()
