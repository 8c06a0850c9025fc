"""A separate process of the feedback-store tests (run as a script).

``feedback_worker.py feedback ROUTER DB QUERIES WORKER N``: loads the saved router with the
SQLite store and gives N feedback events, alternating between the worker's own user and a user
every worker shares. ``feedback_worker.py route ROUTER DB QUERIES USER``: prints the models
the router chooses for the queries, asked by USER, as JSON.
"""

from __future__ import annotations

import json
import os
import sys

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")


def worker_events(worker: int, n: int, queries: list[str], models: list[str]) -> list[tuple]:
    """The events worker ``worker`` gives: (user, query, model, rating, preferred_over)."""
    out = []
    for i in range(n):
        user = f"worker-{worker}" if i % 2 == 0 else "shared"
        q = queries[(worker * 7 + i) % len(queries)]
        model = models[(worker + i) % len(models)]
        other = models[(worker + 2 * i + 1) % len(models)]
        if i % 3 == 0 and other != model:
            out.append((user, q, model, None, other))
        else:
            out.append((user, q, model, ((i * 37 + worker) % 11) / 10.0, None))
    return out


def main() -> None:
    import llmrouter_core as lr

    command, router_dir, db, queries_file = sys.argv[1:5]
    with open(queries_file, encoding="utf-8") as fh:
        queries = json.load(fh)
    router = lr.load_router(router_dir, store=f"sqlite:///{db}")
    if command == "feedback":
        worker, n = int(sys.argv[5]), int(sys.argv[6])
        for user, q, model, rating, other in worker_events(worker, n, queries, router.models_):
            router.feedback(user, q, model, rating=rating, preferred_over=other)
    else:
        print(json.dumps([d.model for d in router.route_batch(queries, user=sys.argv[5])]))


if __name__ == "__main__":
    main()
