"""The one in-memory form of routing data: queries x models.

:class:`RoutingData` holds, for ``n`` queries and ``m`` models, the measured ``scores``
(0..1, ``nan`` = not measured) and ``costs`` (USD per query), optional token counts,
latencies and responses, plus per-query ``query_ids``, ``queries``, ``tasks`` and ``splits``.
Loaders for every supported file format produce it; routers and evaluation read it.

Example:
    >>> import numpy as np
    >>> d = RoutingData(query_ids=["q1", "q2"], queries=["2+2?", "capital of France?"],
    ...                 models=["small", "large"],
    ...                 scores=np.array([[1.0, 1.0], [0.0, 1.0]]),
    ...                 costs=np.array([[1e-4, 1e-3], [1e-4, 1e-3]]))
    >>> d.n_queries, d.n_models, d.mean_scores().tolist()
    (2, 2, [0.5, 1.0])
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from llmrouter_core.errors import DataError, UnknownModelError

__all__ = ["FloatArray", "RoutingData"]

FloatArray = npt.NDArray[np.float64]

_OPTIONAL_MATRICES = ("input_tokens", "output_tokens", "latency_s")


@dataclass(eq=False)
class RoutingData:
    """Measured outcomes of ``m`` models on ``n`` queries.

    Attributes:
        query_ids: ``n`` unique ids.
        queries: ``n`` prompt texts.
        models: ``m`` unique model names.
        scores: ``(n, m)`` quality in [0, 1]; ``nan`` where not measured.
        costs: ``(n, m)`` USD per call; ``None`` if the source has no cost (derive it with
            :meth:`with_costs_from_pool`).
        input_tokens, output_tokens, latency_s: optional ``(n, m)`` arrays.
        tasks: optional ``n`` task names.
        splits: optional ``n`` split names (``"train"``, ``"test"``, ...).
        responses: optional ``(n, m)`` object array of response texts (``None`` = missing).
        name: Free-text name of the dataset (for reports).
    """

    query_ids: list[str]
    queries: list[str]
    models: list[str]
    scores: FloatArray
    costs: FloatArray | None = None
    input_tokens: FloatArray | None = None
    output_tokens: FloatArray | None = None
    latency_s: FloatArray | None = None
    tasks: list[str] | None = None
    splits: list[str] | None = None
    responses: npt.NDArray[np.object_] | None = None
    name: str = ""
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.query_ids = [str(q) for q in self.query_ids]
        self.queries = [str(q) for q in self.queries]
        self.models = [str(m) for m in self.models]
        n, m = len(self.query_ids), len(self.models)
        if len(self.queries) != n:
            raise DataError(f"{len(self.queries)} queries for {n} query ids")
        if len(set(self.models)) != m:
            raise DataError("model names must be unique")
        self.scores = np.asarray(self.scores, dtype=np.float64)
        if self.scores.shape != (n, m):
            raise DataError(f"scores have shape {self.scores.shape}, expected {(n, m)}")
        for attr in ("costs", *_OPTIONAL_MATRICES):
            value = getattr(self, attr)
            if value is not None:
                arr = np.asarray(value, dtype=np.float64)
                if arr.shape != (n, m):
                    raise DataError(f"{attr} has shape {arr.shape}, expected {(n, m)}")
                setattr(self, attr, arr)
        for attr in ("tasks", "splits"):
            value = getattr(self, attr)
            if value is not None:
                if len(value) != n:
                    raise DataError(f"{attr} has {len(value)} entries for {n} queries")
                setattr(self, attr, [str(v) for v in value])
        if self.responses is not None:
            self.responses = np.asarray(self.responses, dtype=object)
            if self.responses.shape != (n, m):
                raise DataError(f"responses have shape {self.responses.shape}, expected {(n, m)}")

    # -- shape -------------------------------------------------------------
    @property
    def n_queries(self) -> int:
        return len(self.query_ids)

    @property
    def n_models(self) -> int:
        return len(self.models)

    def __len__(self) -> int:
        return self.n_queries

    def __repr__(self) -> str:
        label = f"{self.name!r}, " if self.name else ""
        return f"RoutingData({label}{self.n_queries} queries x {self.n_models} models)"

    def model_index(self, name: str) -> int:
        """Column of model ``name``."""
        try:
            return self.models.index(name)
        except ValueError:
            raise UnknownModelError(
                f"unknown model {name!r}; the data has: {', '.join(self.models)}"
            ) from None

    # -- selection ---------------------------------------------------------
    def subset(self, rows: Sequence[int] | npt.NDArray[Any]) -> RoutingData:
        """The queries at ``rows`` (positions or a boolean mask)."""
        idx = np.asarray(rows)
        if idx.dtype == bool:
            if idx.shape != (self.n_queries,):
                raise DataError("boolean mask must have one entry per query")
            idx = np.flatnonzero(idx)
        idx = idx.astype(np.intp)
        return self._replace_rows(idx)

    def _replace_rows(self, idx: npt.NDArray[np.intp]) -> RoutingData:
        def pick(arr: Any) -> Any:
            return None if arr is None else arr[idx]

        def pick_list(values: list[str] | None) -> list[str] | None:
            return None if values is None else [values[i] for i in idx]

        return RoutingData(
            query_ids=[self.query_ids[i] for i in idx],
            queries=[self.queries[i] for i in idx],
            models=list(self.models),
            scores=self.scores[idx],
            costs=pick(self.costs),
            input_tokens=pick(self.input_tokens),
            output_tokens=pick(self.output_tokens),
            latency_s=pick(self.latency_s),
            tasks=pick_list(self.tasks),
            splits=pick_list(self.splits),
            responses=pick(self.responses),
            name=self.name,
            meta=dict(self.meta),
        )

    def select_models(self, names: Sequence[str]) -> RoutingData:
        """The same queries restricted to (and reordered as) ``names``."""
        cols = np.array([self.model_index(n) for n in names], dtype=np.intp)

        def pick(arr: Any) -> Any:
            return None if arr is None else arr[:, cols]

        return RoutingData(
            query_ids=list(self.query_ids),
            queries=list(self.queries),
            models=list(names),
            scores=self.scores[:, cols],
            costs=pick(self.costs),
            input_tokens=pick(self.input_tokens),
            output_tokens=pick(self.output_tokens),
            latency_s=pick(self.latency_s),
            tasks=None if self.tasks is None else list(self.tasks),
            splits=None if self.splits is None else list(self.splits),
            responses=pick(self.responses),
            name=self.name,
            meta=dict(self.meta),
        )

    def split(self, name: str) -> RoutingData:
        """The queries whose split is ``name``."""
        if self.splits is None:
            raise DataError(f"{self!r} has no split column")
        mask = np.array([s == name for s in self.splits])
        if not mask.any():
            raise DataError(
                f"{self.name or 'the data'}: no queries in split {name!r}; its splits: "
                f"{', '.join(sorted(set(self.splits)))}"
            )
        return self.subset(mask)

    @staticmethod
    def concat(parts: Sequence[RoutingData], name: str = "") -> RoutingData:
        """Stack datasets that share the same models (in the same order)."""
        if not parts:
            raise DataError("nothing to concatenate")
        models = parts[0].models
        for p in parts[1:]:
            if p.models != models:
                raise DataError("cannot concatenate datasets with different models")

        def stack(attr: str) -> Any:
            values = [getattr(p, attr) for p in parts]
            if any(v is None for v in values):
                return None
            return np.concatenate(values, axis=0)

        def join(attr: str) -> list[str] | None:
            values = [getattr(p, attr) for p in parts]
            if any(v is None for v in values):
                return None
            return [x for v in values for x in v]

        return RoutingData(
            query_ids=[q for p in parts for q in p.query_ids],
            queries=[q for p in parts for q in p.queries],
            models=list(models),
            scores=np.concatenate([p.scores for p in parts], axis=0),
            costs=stack("costs"),
            input_tokens=stack("input_tokens"),
            output_tokens=stack("output_tokens"),
            latency_s=stack("latency_s"),
            tasks=join("tasks"),
            splits=join("splits"),
            responses=stack("responses"),
            name=name or parts[0].name,
        )

    # -- summaries ---------------------------------------------------------
    def mean_scores(self) -> FloatArray:
        """Mean score per model (ignoring missing entries)."""
        return np.asarray(np.nanmean(self.scores, axis=0), dtype=np.float64)

    def mean_costs(self) -> FloatArray:
        """Mean cost per model (USD per query)."""
        if self.costs is None:
            raise DataError(f"{self!r} has no costs; derive them with with_costs_from_pool(pool)")
        return np.asarray(np.nanmean(self.costs, axis=0), dtype=np.float64)

    def require_costs(self) -> FloatArray:
        """The cost matrix, or a clear error if the data has none."""
        if self.costs is None:
            raise DataError(
                f"{self!r} has no costs: give a pool with prices (pool file) so they can be "
                "derived from token counts"
            )
        return self.costs

    def token_counts(self) -> tuple[FloatArray, FloatArray]:
        """``(input_tokens, output_tokens)``, ``(n, m)`` each: the recorded counts, else
        estimates (``ceil(len(text) / 4)`` of the query and of the response, else
        :data:`~llmrouter_core.pool.DEFAULT_OUTPUT_TOKENS` output tokens)."""
        from llmrouter_core.pool import DEFAULT_OUTPUT_TOKENS, estimate_tokens

        n, m = self.scores.shape
        in_tok = self.input_tokens
        if in_tok is None:
            per_query = np.array([estimate_tokens(q) for q in self.queries], dtype=np.float64)
            in_tok = np.repeat(per_query[:, None], m, axis=1)
        out_tok = self.output_tokens
        if out_tok is None:
            out_tok = np.full((n, m), float(DEFAULT_OUTPUT_TOKENS))
            if self.responses is not None:
                for (i, j), resp in np.ndenumerate(self.responses):
                    if isinstance(resp, str) and resp:
                        out_tok[i, j] = estimate_tokens(resp)
        return in_tok, out_tok

    def prices_from_costs(self) -> dict[str, tuple[float, float]]:
        """Each model's ``(input, output)`` price in USD per 1M tokens, fitted to its recorded
        costs (non-negative least squares of cost on the :meth:`token_counts`); models without
        recorded costs are left out.

        Example:
            >>> d = RoutingData(query_ids=["a", "b"], queries=["x" * 400, "y" * 800],
            ...                 models=["m"], scores=np.ones((2, 1)),
            ...                 costs=np.array([[0.0002], [0.0003]]),
            ...                 output_tokens=np.array([[100.0], [100.0]]))
            >>> [round(p, 3) for p in d.prices_from_costs()["m"]]
            [1.0, 1.0]
        """
        from scipy.optimize import nnls

        if self.costs is None:
            return {}
        in_tok, out_tok = self.token_counts()
        prices: dict[str, tuple[float, float]] = {}
        for j, name in enumerate(self.models):
            ok = np.isfinite(self.costs[:, j]) & np.isfinite(in_tok[:, j] + out_tok[:, j])
            if not ok.any():
                continue
            a = np.column_stack([in_tok[ok, j], out_tok[ok, j]]) / 1e6
            c = self.costs[ok, j]
            (p_in, p_out), _ = nnls(a, c)
            if p_in + p_out <= 0 and c.sum() > 0:  # degenerate fit: one blended price
                p_in = p_out = float(c.sum() / a.sum())
            prices[name] = (float(p_in), float(p_out))
        return prices

    def with_costs_from_pool(self, pool: Any, *, overwrite: bool = False) -> RoutingData:
        """Derive missing costs from token counts and the pool's prices.

        Input tokens come from ``input_tokens`` or else ``ceil(len(query) / 4)``; output tokens
        from ``output_tokens``, else the response length / 4, else
        :data:`~llmrouter_core.pool.DEFAULT_OUTPUT_TOKENS`. Measured costs are kept unless
        ``overwrite``.
        """
        n, m = self.scores.shape
        missing_prices = [
            name for name in self.models if name in pool and not pool[name].has_prices
        ]
        unknown = [name for name in self.models if name not in pool]
        if unknown:
            raise UnknownModelError(f"models in the data but not in the pool: {', '.join(unknown)}")
        if missing_prices:
            raise DataError(f"the pool has no prices for: {', '.join(missing_prices)}")
        in_tok, out_tok = self.token_counts()
        derived = np.empty((n, m), dtype=np.float64)
        for j, name in enumerate(self.models):
            spec = pool[name]
            derived[:, j] = (
                in_tok[:, j] * (spec.input_price or 0.0)
                + out_tok[:, j] * (spec.output_price or 0.0)
            ) / 1e6
        costs = derived
        if self.costs is not None and not overwrite:
            costs = np.where(np.isnan(self.costs), derived, self.costs)
        out = self._replace_rows(np.arange(n, dtype=np.intp))
        out.costs = costs
        return out
