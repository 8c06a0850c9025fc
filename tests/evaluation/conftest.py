"""Real evaluation data for the evaluation tests, read from the shared data folder.

The loaders here are deliberately small and independent of the library's own loaders: they
parse the files directly (RouterBench's wide CSV, LLMRouter's dcrouter JSON, RouteLLM's GSM8K
CSV), drop the RouterBench rows whose scores were never measured, and build RoutingData.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from llmrouter_core.data.core import RoutingData
from llmrouter_core.pool import Pool

REPO = Path(__file__).resolve().parents[2]
DATA_DIR = Path(os.environ.get("LLMROUTER_DATA_DIR", REPO / ".." / "shared" / "data"))
ROUTERBENCH_FILES = ("arc_challenge", "mbpp", "winograde")


def _require(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"real data not found at {path} (set LLMROUTER_DATA_DIR)")
    return path


def load_routerbench(split: str) -> RoutingData:
    """RouterBench's three task files of one split, rows with unmeasured scores dropped."""
    frames = [
        pd.read_csv(_require(DATA_DIR / "routerbench" / f"{name}_{split}.csv"))
        for name in ROUTERBENCH_FILES
    ]
    df = pd.concat(frames, ignore_index=True)
    models = [c[: -len("|total_cost")] for c in df.columns if c.endswith("|total_cost")]
    scores = df[models].to_numpy(dtype=np.float64)
    costs = df[[f"{m}|total_cost" for m in models]].to_numpy(dtype=np.float64)
    measured = ~np.isnan(scores).any(axis=1)
    df, scores, costs = df[measured], scores[measured], costs[measured]
    return RoutingData(
        query_ids=[f"{i}:{s}" for i, s in zip(df.index, df["sample_id"], strict=True)],
        queries=df["prompt"].astype(str).tolist(),
        models=models,
        scores=scores,
        costs=costs,
        tasks=df["eval_name"].astype(str).tolist(),
        name=f"routerbench-{split}",
    )


def load_dcrouter(split: str) -> RoutingData:
    """LLMRouter's dcrouter file, costs derived from its pool's prices and the query length."""
    rows = json.loads(
        _require(DATA_DIR / "llmrouter" / f"dcrouter_{split}.json").read_text(encoding="utf-8")
    )
    models = list(rows[0]["scores"])
    scores = np.array([[r["scores"][m] for m in models] for r in rows], dtype=np.float64)
    data = RoutingData(
        query_ids=[str(i) for i in range(len(rows))],
        queries=[r["question"] for r in rows],
        models=models,
        scores=scores,
        name=f"dcrouter-{split}",
    )
    pool = Pool.from_file(DATA_DIR / "llmrouter" / "default_llm.json", fill_prices=False)
    return data.with_costs_from_pool(pool)


def load_gsm8k_pair() -> RoutingData:
    """RouteLLM's GSM8K outcomes of its strong/weak pair (no costs)."""
    df = pd.read_csv(_require(DATA_DIR / "routellm" / "gsm8k" / "gsm8k_responses.csv"))
    models = ["mistralai/Mixtral-8x7B-Instruct-v0.1", "gpt-4-1106-preview"]
    scores = df[models].astype(bool).to_numpy(dtype=np.float64)
    return RoutingData(
        query_ids=[str(i) for i in range(len(df))],
        queries=df["prompt"].astype(str).tolist(),
        models=models,
        scores=scores,
        name="routellm-gsm8k",
    )


class FixedPredictions:
    """A fitted router whose predictions were computed beforehand for known queries.

    It implements what ``evaluate`` needs (``models_``, ``predict``, ``sweep``) and counts
    ``predict`` calls.
    """

    def __init__(
        self,
        models: Sequence[str],
        queries: Sequence[str],
        quality: np.ndarray,
        cost: np.ndarray,
        weights: Sequence[float],
        name: str = "fixed",
    ) -> None:
        self.models_ = list(models)
        self._queries = list(queries)
        self._quality = np.asarray(quality, dtype=np.float64)
        self._cost = np.asarray(cost, dtype=np.float64)
        self._weights = list(weights)
        self.name = name
        self.predict_calls = 0
        self.sweep_calls: list[int] = []

    def predict(self, queries: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        self.predict_calls += 1
        assert list(queries) == self._queries, "predict called with other queries"
        return self._quality, self._cost

    def sweep(self, n_points: int) -> list[float]:
        self.sweep_calls.append(n_points)
        return list(self._weights)


@pytest.fixture(scope="session")
def fixed_router() -> type[FixedPredictions]:
    """The :class:`FixedPredictions` class (a fixture, so tests need not import conftest)."""
    return FixedPredictions


@pytest.fixture(scope="session")
def rb_train() -> RoutingData:
    return load_routerbench("train")


@pytest.fixture(scope="session")
def rb_test() -> RoutingData:
    return load_routerbench("test")


@pytest.fixture(scope="session")
def dc_test() -> RoutingData:
    return load_dcrouter("test")


@pytest.fixture(scope="session")
def gsm8k() -> RoutingData:
    return load_gsm8k_pair()
