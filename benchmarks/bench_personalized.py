"""Personalized routing on SIMULATED users over real recorded outcomes (RouterBench, dcrouter).

The users are simulated; everything they react to is recorded data. Each simulated user has

* a willingness to pay: utility = score - lambda x cost, lambda drawn log-uniformly over two
  orders of magnitude (from users who pay for quality to users who want it cheap);
* a task mix (Dirichlet over the dataset's tasks): the user's queries are drawn from it;
* a style preference, measured on the recorded data: a liked vendor (a bonus for that
  vendor's models) and, on RouterBench, whose responses are recorded, a dislike of long
  answers (a penalty when the recorded response is longer than the user's limit);
* a feedback habit: pairwise choices (shown the routed answer and another model's, the user
  picks one, Bradley-Terry noise) or ratings of both answers (Gaussian noise, clipped to
  [0, 1]).

The base ("global") router is trained on the dataset's train split and routes at the
population's median lambda. Each user's queries come from the test split in time order: the
first 25 are feedback events (routed by the personalized router as it learns), the next 40 are
the user's test queries. Reported per number of events (0, 5, 10, 25): the mean per-user test
utility of the personalized router and of the global router, the mean gain, and the shares of
users helped (gain >= 0), strictly helped and hurt. After 0 events the decisions must be the
global router's (checked on every user).

Hyperparameters are chosen on *training users* (another seed, other user ids, the same
simulation), never on the reported users: ``--tune`` runs the grid (``--grid``) and prints
the choice, per dataset or, with ``--joint``, one setting for all datasets (how the library's
defaults were chosen). The graph learner (``--learner offsets,graph`` evaluates both on the
same users) is first trained on the training users' feedback, given while the global router
routes them.

Usage:
    LLMROUTER_DATA_DIR=../shared/data python benchmarks/bench_personalized.py
        [--datasets routerbench,llmrouter] [--users 200] [--base auto] [--tune [--joint]]
        [--learner offsets,graph] [--out runs/bench_personalized.json]
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import numpy as np
from rich.progress import track

from llmrouter_core import get_router
from llmrouter_core.benchmark import load_split
from llmrouter_core.data import RoutingData
from llmrouter_core.personalized import PersonalizedRouter
from llmrouter_core.policy import UtilityPolicy

CHECKPOINTS = (0, 5, 10, 25)
N_FEEDBACK = 25
N_TEST = 40
RATING_NOISE = 0.1  # sd of a rating around the user's utility
PAIR_TEMPERATURE = 0.05  # Bradley-Terry temperature of a pairwise choice (utility units)
KAPPA_RANGE = (0.01, 1.0)  # lambda x (mean pool cost per query), log-uniform


def vendor(model: str) -> str:
    """The vendor of a RouterBench or dcrouter model, from its name."""
    name = model.lower()
    for key, who in (
        ("gpt", "openai"),
        ("claude", "anthropic"),
        ("nemotron", "nvidia"),
        ("chatqa", "nvidia"),
        ("llama", "meta"),
        ("mistral", "mistral"),
        ("mixtral", "mistral"),
        ("gemma", "google"),
        ("qwen", "alibaba"),
        ("wizardlm", "wizardlm"),
        ("yi-", "01.ai"),
    ):
        if key in name:
            return who
    return name


@dataclass
class SimUser:
    """One simulated user (see the module docstring)."""

    id: str
    lam: float
    mix: dict[str, float]
    vendor: str | None
    vendor_bonus: float
    max_chars: float | None
    long_penalty: float
    mode: str
    rows: Any = field(repr=False)

    def utility(self, data: RoutingData, lengths: Any, rows: Any) -> Any:
        """``(len(rows), m)`` utility of each model's recorded answer for this user."""
        assert data.costs is not None
        u = data.scores[rows] - self.lam * data.costs[rows]
        if self.vendor is not None:
            liked = np.array([vendor(m) == self.vendor for m in data.models])
            u = u + self.vendor_bonus * liked[None, :]
        if self.max_chars is not None and lengths is not None:
            u = u - self.long_penalty * (lengths[rows] > self.max_chars)
        return u


def response_lengths(data: RoutingData) -> Any:
    """Characters of each recorded response (``None`` when the data has none)."""
    if data.responses is None:
        return None
    return np.vectorize(lambda r: len(r) if isinstance(r, str) else 0, otypes=[float])(
        data.responses
    )


def make_users(
    n: int, data: RoutingData, lengths: Any, seed: int, prefix: str, modes: list[str]
) -> list[SimUser]:
    """``n`` users drawing their queries from ``data`` (see the module docstring)."""
    assert data.costs is not None and data.tasks is not None
    rng = np.random.default_rng(seed)
    tasks = sorted(set(data.tasks))
    by_task = {t: np.flatnonzero(np.asarray(data.tasks) == t) for t in tasks}
    vendors = sorted({vendor(m) for m in data.models})
    scale = float(np.mean(data.costs))
    users = []
    for i in range(n):
        kappa = math.exp(rng.uniform(*np.log(KAPPA_RANGE)))
        weights = rng.dirichlet(np.full(len(tasks), 0.5))
        picked: list[int] = []
        used: set[int] = set()
        while len(picked) < N_FEEDBACK + N_TEST:
            task = tasks[rng.choice(len(tasks), p=weights)]
            free = [r for r in by_task[task] if r not in used]
            if not free:
                weights[tasks.index(task)] = 0.0
                weights = weights / weights.sum()
                continue
            row = int(rng.choice(free))
            used.add(row)
            picked.append(row)
        likes = rng.random() < 0.5
        dislikes_long = lengths is not None and rng.random() < 0.5
        users.append(
            SimUser(
                id=f"{prefix}{i}",
                lam=kappa / scale,
                mix=dict(zip(tasks, map(float, weights), strict=True)),
                vendor=str(rng.choice(vendors)) if likes else None,
                vendor_bonus=float(rng.uniform(0.1, 0.3)),
                max_chars=float(np.quantile(lengths, rng.uniform(0.5, 0.9)))
                if dislikes_long
                else None,
                long_penalty=float(rng.uniform(0.2, 0.5)),
                mode=modes[i % len(modes)],
                rows=np.array(picked),
            )
        )
    return users


def simulate(
    router: PersonalizedRouter,
    users: list[SimUser],
    data: RoutingData,
    lengths: Any,
    global_choice: Any,
    seed: int,
    progress: str | None = None,
) -> dict[str, Any]:
    """Every user's feedback loop; per checkpoint, per-user test utility of both routers
    (all users, and per feedback habit)."""
    rng = np.random.default_rng(seed)
    models = list(data.models)
    queries = list(data.queries)
    records: list[tuple[str, int, float, float]] = []  # (mode, events, personal, global)
    cold_equal = True
    loop = users if progress is None else track(users, description=progress)
    for user in loop:
        fb, ev = user.rows[:N_FEEDBACK], user.rows[N_FEEDBACK:]
        u_fb = user.utility(data, lengths, fb)
        u_ev = user.utility(data, lengths, ev)
        ev_queries = [queries[r] for r in ev]
        g = float(np.mean(u_ev[np.arange(len(ev)), global_choice[ev]]))
        for t in range(N_FEEDBACK + 1):
            if t in CHECKPOINTS:
                decisions = router.route_batch(ev_queries, user=user.id)
                chosen = np.array([models.index(d.model) for d in decisions])
                if t == 0:
                    cold_equal &= bool(np.array_equal(chosen, global_choice[ev]))
                p = float(np.mean(u_ev[np.arange(len(ev)), chosen]))
                records.append((user.mode, t, p, g))
            if t == N_FEEDBACK:
                break
            q = queries[fb[t]]
            a = models.index(router.route(q, user=user.id).model)
            b = int(rng.choice([j for j in range(len(models)) if j != a]))
            if user.mode == "pairs":
                p_a = 1.0 / (1.0 + math.exp(-(u_fb[t, a] - u_fb[t, b]) / PAIR_TEMPERATURE))
                win, lose = (a, b) if rng.random() < p_a else (b, a)
                router.feedback(user.id, q, models[win], preferred_over=models[lose])
            else:
                for j in (a, b):
                    r = float(np.clip(u_fb[t, j] + rng.normal(0.0, RATING_NOISE), 0.0, 1.0))
                    router.feedback(user.id, q, models[j], rating=r)
    modes = sorted({m for m, *_ in records})
    return {
        "cold_start_equal": cold_equal,
        "by_events": summarize(records),
        "by_mode": {m: summarize([r for r in records if r[0] == m]) for m in modes},
    }


def summarize(records: list[tuple[str, int, float, float]]) -> dict[int, dict[str, float]]:
    rows = {}
    for k in CHECKPOINTS:
        p = np.array([r[2] for r in records if r[1] == k])
        g = np.array([r[3] for r in records if r[1] == k])
        gain = p - g
        rows[k] = {
            "users": int(gain.size),
            "global_utility": float(g.mean()),
            "personal_utility": float(p.mean()),
            "mean_gain": float(gain.mean()),
            "helped": float(np.mean(gain >= 0)),
            "strictly_helped": float(np.mean(gain > 1e-12)),
            "hurt": float(np.mean(gain < -1e-12)),
        }
    return rows


def objective(result: dict[str, Any]) -> tuple[bool, float]:
    """What tuning maximises on the training users: the mean gain after 5, 10 and 25 events,
    among the settings that help (gain >= 0) at least 85% of them after 10 events (a margin
    over the 80% the reported users are held to); else the share helped."""
    rows = result["by_events"]
    gain = sum(rows[k]["mean_gain"] for k in (5, 10, 25))
    ok = rows[10]["helped"] >= 0.85
    return ok, gain if ok else rows[10]["helped"]


def joint_choice(tunings: list[list[dict[str, Any]]]) -> dict[str, Any]:
    """The candidate every dataset's tuning accepts whose worst dataset scores best (the
    same candidates, in the same order, in each tuning)."""

    def worst(i: int) -> tuple[bool, float]:
        scores = [t[i]["objective"] for t in tunings]
        return all(ok for ok, _ in scores), min(value for _, value in scores)

    best = max(range(len(tunings[0])), key=worst)
    return dict(tunings[0][best]["params"])


GRID: dict[str, list[Any]] = {
    "margin": [0.02, 0.05, 0.1],
    "confidence": [0.5, 1.0, 1.5],
    "model_prior": [32.0, 128.0],
}


def run_dataset(name: str, args: argparse.Namespace) -> list[dict[str, Any]]:
    train, test = load_split(name)
    if test.costs is None:
        raise SystemExit(f"{name}: the test split has no costs")
    lengths = response_lengths(test)
    modes = args.modes.split(",")
    scale = float(np.mean(test.costs))
    median_lambda = math.exp(np.mean(np.log(KAPPA_RANGE))) / scale
    started = time.perf_counter()
    base = get_router(args.base, policy=UtilityPolicy(median_lambda)).fit(train)
    fit_s = time.perf_counter() - started
    models = list(test.models)
    global_choice = np.array([models.index(d.model) for d in base.route_batch(test.queries)])

    train_users = make_users(args.tune_users, test, lengths, 1_000 + args.seed, "tune-", modes)

    def evaluate(
        params: dict[str, Any],
        users: list[SimUser],
        seed: int,
        label: str | None,
        learner: str = "offsets",
    ) -> dict[str, Any]:
        router = PersonalizedRouter(base=base, learner=learner, **params).fit(train)
        router.precompute(test.queries)
        if learner == "graph":  # shared weights: learned from the training users' feedback
            simulate(router, train_users, test, lengths, global_choice, 4_000 + args.seed)
            router.train_learner([u.id for u in train_users])
        return simulate(router, users, test, lengths, global_choice, seed, label)

    params: dict[str, Any] = dict(args.params)
    tuning: list[dict[str, Any]] = []
    if args.tune:
        grid = args.grid or GRID
        keys = list(grid)
        for values in track(list(itertools.product(*grid.values())), description=f"{name}: tuning"):
            candidate = {**args.params, **dict(zip(keys, values, strict=True))}
            result = evaluate(candidate, train_users, 2_000 + args.seed, None)
            tuning.append({"params": candidate, "objective": list(objective(result))})
            rows = result["by_events"]
            print(
                f"{name}: training users, {candidate}: gain at 5/10/25 events "
                + " / ".join(f"{rows[k]['mean_gain']:+.4f}" for k in (5, 10, 25))
                + f", helped at 10: {100 * rows[10]['helped']:.1f}%"
            )
        params = max(tuning, key=lambda r: r["objective"])["params"]
        print(f"{name}: chosen on training users: {params}")
        if args.joint:
            return [{"dataset": name, "tuning": tuning}]
    users = make_users(args.users, test, lengths, args.seed, "user-", modes)
    if args.references:
        refs = references(base, users, test, lengths, global_choice)
        return [{"dataset": name, "references": refs}]
    out = []
    for learner in args.learner.split(","):
        started = time.perf_counter()
        label = f"{name}, {learner}: {len(users)} users"
        result = evaluate(params, users, 3_000 + args.seed, label, learner)
        out.append(
            {
                "dataset": name,
                "base": args.base,
                "learner": learner,
                "base_fit_s": fit_s,
                "seconds": time.perf_counter() - started,
                "median_lambda": median_lambda,
                "params": params,
                **result,
                "tuning": tuning,
            }
        )
    return out


def references(
    base: Any, users: list[SimUser], data: RoutingData, lengths: Any, global_choice: Any
) -> dict[str, dict[str, float]]:
    """What knowing a user exactly would give through the base router's predictions: routing
    at the user's own lambda, and with their style terms added too (not learnable references:
    they read the simulated user's hidden parameters)."""
    assert data.costs is not None
    quality, cost = base.predict(list(data.queries))
    out: dict[str, list[float]] = {"exact lambda": [], "exact lambda and style": []}
    for user in users:
        ev = user.rows[N_FEEDBACK:]
        u = user.utility(data, lengths, ev)
        rows = np.arange(len(ev))
        glob = u[rows, global_choice[ev]].mean()
        own = quality[ev] - user.lam * cost[ev]
        style = user.utility(data, lengths, ev) - (data.scores[ev] - user.lam * data.costs[ev])
        out["exact lambda"].append(float(u[rows, np.argmax(own, axis=1)].mean() - glob))
        out["exact lambda and style"].append(
            float(u[rows, np.argmax(own + style, axis=1)].mean() - glob)
        )
    return {
        k: {"mean_gain": float(np.mean(v)), "helped": float(np.mean(np.array(v) >= 0))}
        for k, v in out.items()
    }


def print_table(result: dict[str, Any]) -> None:
    if "references" in result:
        for k, row in result["references"].items():
            print(
                f"{result['dataset']}: base router with the user's {k}: mean gain "
                f"{row['mean_gain']:+.4f}, helped {100 * row['helped']:.1f}%"
            )
        return
    print(
        f"\n{result['dataset']}: SIMULATED users over recorded outcomes (base "
        f"{result['base']}, learner {result['learner']}, global lambda "
        f"{result['median_lambda']:.1f}/USD)"
    )
    print(
        "| feedback | events | users | global | personalized | mean gain | helped (>=) "
        "| better | hurt |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    blocks = [("all", result["by_events"]), *result["by_mode"].items()]
    for label, block in blocks:
        for k, row in block.items():
            print(
                f"| {label} | {k} | {row['users']} | {row['global_utility']:.4f} | "
                f"{row['personal_utility']:.4f} | {row['mean_gain']:+.4f} | "
                f"{100 * row['helped']:.1f}% | {100 * row['strictly_helped']:.1f}% | "
                f"{100 * row['hurt']:.1f}% |"
            )
    print(f"cold start identical to the global router: {result['cold_start_equal']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--datasets", default="routerbench,llmrouter")
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--tune-users", type=int, default=40)
    parser.add_argument("--base", default="auto")
    parser.add_argument(
        "--learner",
        default="offsets",
        help="comma-separated learners, each evaluated on the same users (offsets,graph); "
        "the graph learner is trained on the training users' feedback first",
    )
    parser.add_argument("--modes", default="pairs,ratings")
    parser.add_argument("--tune", action="store_true")
    parser.add_argument(
        "--joint",
        action="store_true",
        help="with --tune: one setting for every dataset (the best worst case), then evaluate",
    )
    parser.add_argument(
        "--grid", type=json.loads, default=None, help="the --tune grid (JSON: name -> values)"
    )
    parser.add_argument(
        "--params", type=json.loads, default={}, help="router parameters (JSON), without --tune"
    )
    parser.add_argument(
        "--references",
        action="store_true",
        help="only the exact-preference references (read the simulated users' parameters)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    names = args.datasets.split(",")
    if args.tune and args.joint:
        tunings = [run_dataset(name, args)[0]["tuning"] for name in names]
        args.params, args.tune = joint_choice(tunings), False
        print(f"chosen on the training users of {', '.join(names)} together: {args.params}")
    results = [r for name in names for r in run_dataset(name, args)]
    for result in results:
        print_table(result)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
