"""Routing time warm vs right after an LLM call (why the execution overhead exceeds routing).

A router routes one query between LLM calls, not in a tight loop. The LLM call (here a mocked
``litellm.completion``: LiteLLM's full request path, no network) runs through a lot of code
and memory, so the router's code and tables are no longer in the CPU caches when it runs
next. This measures routing p50 over real RouterBench prompts (arc_challenge, the prompts of
``bench_execution.py``) in three conditions:

- ``warm``: queries routed back to back;
- ``after call``: each query right after one mocked LiteLLM call;
- ``after sweep``: each query right after reading one element per cache line of a 16 MB
  list, which evicts the caches without running LiteLLM.

It also times one memory-bound step alone, in the same two conditions: 600 random lookups
into a 1 MB int32 table (the size of a hashed-feature lookup table).

Usage:
    python benchmarks/bench_cold_routing.py [--queries 200]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench_execution, run as a script


def _p50_ms(work: Callable[[str], Any], before: Callable[[str], Any], queries: list[str]) -> float:
    times = []
    for q in queries:
        before(q)
        t0 = time.perf_counter()
        work(q)
        times.append(time.perf_counter() - t0)
    times.sort()
    return 1e3 * times[len(times) // 2]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--queries", type=int, default=200)
    args = parser.parse_args(argv)

    import logging

    import litellm
    import numpy as np
    from bench_execution import MOCK_MODEL, arc_challenge

    import llmrouter_core as lr
    from llmrouter_core.features.hashing import clear_caches

    logging.getLogger("LiteLLM").setLevel(logging.ERROR)
    train, queries = arc_challenge()
    queries = queries[: args.queries]

    def call(q: str) -> None:
        litellm.completion(
            model=MOCK_MODEL, messages=[{"role": "user", "content": q}], mock_response="ok"
        )

    sweep_list = list(range(2_000_000))  # 16 MB of pointers

    def sweep(_: str) -> None:
        total = 0
        for i in range(0, len(sweep_list), 8):  # one element per 64-byte cache line
            total += sweep_list[i]

    def idle(_: str) -> None:
        return None

    for q in queries[:10]:
        call(q)
    conditions = {"warm": idle, "after call": call, "after sweep": sweep}
    print(f"route p50 ms over {len(queries)} arc_challenge test prompts")
    print(f"{'router':<8}" + "".join(f"{c:>14}" for c in conditions))
    for name in ("single", "linear", "auto"):
        router = lr.get_router(name).fit(train)
        cells = []
        for before in conditions.values():
            clear_caches()  # every condition starts from the same embedder caches
            for q in queries:  # then the prompts' lines are cached, as in steady traffic
                router.route(q)
            cells.append(_p50_ms(router.route, before, queries))
        print(f"{name:<8}" + "".join(f"{v:>14.3f}" for v in cells))

    rng = np.random.default_rng(0)
    table = rng.integers(0, 1 << 20, size=1 << 18, dtype=np.int32)  # 1 MB
    slots = np.sort(rng.choice(table.size, 600, replace=False))
    print(
        "600 random lookups into a 1 MB table, p50 us: "
        + ", ".join(
            f"{label} {1e3 * _p50_ms(lambda _: table[slots], before, queries):.1f}"
            for label, before in conditions.items()
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
