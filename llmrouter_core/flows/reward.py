"""Router-R1's reward, for evaluating multi-round trajectories, and their export as JSONL in
the chat format that TRL / veRL trainers read.

``router_r1_reward(trajectory, gold, a=...)``:

* **format**: ``-1`` when any step of the trajectory is a format violation (a malformed tag
  or tool call, an unknown model, too many rounds) or it ended without an answer; else ``0``.
  A violation's reward is ``-1``: the other terms are not added.
* **outcome**: exact match (``metric="em"``) or token F1 (``metric="f1"``) of the answer (the
  final answer only, never the trace) against the gold answer(s), after SQuAD normalisation
  (lower case, no punctuation, no articles, single spaces).
* **cost**: the consulted pool models' completion tokens x their output price (USD per 1M
  tokens, from the pool), square-rooted, min-max scaled between the 5th and 95th percentiles
  of a rolling window of recent raw costs (:class:`CostWindow`), clipped to [0, 1] and
  inverted (``1`` = the cheapest).
* combined as ``(outcome + format) * (1 - a) + cost * a`` when the answer is right
  (``outcome > 0``), else ``(outcome + format) * (1 - a)``: a wrong answer gets no cost term.
"""

from __future__ import annotations

import json
import math
import re
import string
from collections import Counter, deque
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from llmrouter_core.flows.steps import FlowResult
from llmrouter_core.pool import Pool

__all__ = [
    "CostWindow",
    "exact_match",
    "export_trajectories",
    "normalize_answer",
    "router_r1_reward",
    "token_f1",
    "trajectory_cost",
]


def normalize_answer(text: str) -> str:
    """SQuAD normalisation: lower case, no punctuation, no articles, single spaces.

    Example:
        >>> normalize_answer("The  Eiffel Tower!")
        'eiffel tower'
    """
    text = text.lower()
    text = "".join(ch for ch in text if ch not in set(string.punctuation))
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def _golds(gold: str | Sequence[str]) -> list[str]:
    return [gold] if isinstance(gold, str) else list(gold)


def exact_match(answer: str, gold: str | Sequence[str]) -> float:
    """1.0 if the normalised answer equals a normalised gold answer, else 0.0."""
    a = normalize_answer(answer)
    return float(any(a == normalize_answer(g) for g in _golds(gold)))


def token_f1(answer: str, gold: str | Sequence[str]) -> float:
    """The best SQuAD token F1 of the answer against the gold answers.

    Example:
        >>> round(token_f1("Paris France", "Paris"), 3)
        0.667
    """
    pred = normalize_answer(answer).split()
    best = 0.0
    for g in _golds(gold):
        ref = normalize_answer(g).split()
        common = sum((Counter(pred) & Counter(ref)).values())
        if common == 0:
            continue
        p, r = common / len(pred), common / len(ref)
        best = max(best, 2 * p * r / (p + r))
    return best


class CostWindow:
    """A rolling window of raw trajectory costs, to scale a cost by the 5th-95th percentiles
    of recent ones.

    Args:
        size: How many recent costs the window keeps.
        low: Lower percentile.
        high: Upper percentile.

    Example:
        >>> w = CostWindow()
        >>> w.add(0.0); w.add(1.0)
        >>> w.scale(0.0), w.scale(1.0)
        (0.0, 1.0)
    """

    def __init__(self, size: int = 1024, low: float = 5.0, high: float = 95.0) -> None:
        if size < 1 or not 0 <= low < high <= 100:
            raise ValueError("size must be >= 1 and 0 <= low < high <= 100")
        self.values: deque[float] = deque(maxlen=size)
        self.low = low
        self.high = high

    def add(self, value: float) -> None:
        """Add one raw cost."""
        self.values.append(float(value))

    def scale(self, value: float) -> float:
        """``value`` min-max scaled between the window's percentiles, clipped to [0, 1]
        (0 when the window is empty or flat)."""
        if not self.values:
            return 0.0
        lo, hi = np.percentile(np.fromiter(self.values, float), [self.low, self.high])
        if hi <= lo:
            return 0.0
        return float(min(1.0, max(0.0, (value - lo) / (hi - lo))))


def trajectory_cost(trajectory: FlowResult, pool: Pool | None = None) -> float:
    """The raw cost term: the square root of the consulted models' completion tokens x
    output price (USD per 1M tokens from ``pool``; a model without one counts its step's
    USD cost)."""
    total = 0.0
    for step in trajectory.steps:
        if step.role != "call" or step.cost is None or step.model is None:
            continue
        price = None
        if pool is not None and step.model in pool.names:
            price = pool[step.model].output_price
        total += step.output_tokens * price / 1e6 if price is not None else step.cost
    return math.sqrt(total)


def router_r1_reward(
    trajectory: FlowResult,
    gold: str | Sequence[str],
    *,
    a: float = 0.0,
    pool: Pool | None = None,
    window: CostWindow | None = None,
    metric: Literal["em", "f1"] = "em",
) -> float:
    """Router-R1's reward of one trajectory (see the module for the formula).

    Args:
        trajectory: A :class:`FlowResult` of :func:`~llmrouter_core.flows.multi_round`.
        gold: The gold answer(s).
        a: Weight of the cost term, in [0, 1].
        pool: Output prices of the consulted models.
        window: Recent raw costs to scale by (this trajectory's cost is added to it first);
            default: a window of this cost alone (cost term 1).
        metric: ``"em"`` or ``"f1"``.
    """
    if not 0.0 <= a <= 1.0:
        raise ValueError("a must lie in [0, 1]")
    if metric not in ("em", "f1"):
        raise ValueError("metric must be 'em' or 'f1'")
    violated = trajectory.format_violations > 0 or (
        trajectory.stopped is not None and trajectory.stopped.startswith("max_rounds")
    )
    if violated:
        return -1.0
    fmt = 0.0
    outcome = (exact_match if metric == "em" else token_f1)(trajectory.answer, gold)
    reward = (outcome + fmt) * (1.0 - a)
    if outcome > 0:
        raw = trajectory_cost(trajectory, pool)
        window = window if window is not None else CostWindow()
        window.add(raw)
        reward += (1.0 - window.scale(raw)) * a
    return reward


def export_trajectories(
    trajectories: Iterable[FlowResult],
    path: str | Path,
    *,
    golds: Iterable[str | Sequence[str] | None] | None = None,
    rewards: Iterable[float | None] | None = None,
) -> int:
    """Write trajectories as JSONL, one ``{"messages": [...]}`` per line (the chat format of
    TRL's and veRL's trainers), with ``"gold"`` and ``"reward"`` when given. Returns the
    number of lines written."""
    golds_it = iter(golds) if golds is not None else None
    rewards_it = iter(rewards) if rewards is not None else None
    n = 0
    with Path(path).open("w", encoding="utf-8") as fh:
        for t in trajectories:
            row: dict[str, Any] = {"messages": _chat(t.messages)}
            if golds_it is not None:
                row["gold"] = next(golds_it)
            if rewards_it is not None:
                row["reward"] = next(rewards_it)
            row["cost"] = t.cost
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
            n += 1
    return n


def _chat(messages: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    keep = ("role", "content", "tool_calls", "tool_call_id")
    return [{k: m[k] for k in keep if k in m} for m in messages]
