"""A router that needs no training: it ranks a pool in a fixed order.

Used when there is no trained router yet, e.g. a chat on the default local pool: the first
model answers and the others are the fallbacks.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence

from llmrouter_core.decision import Decision
from llmrouter_core.errors import DataError, UnknownModelError
from llmrouter_core.pool import Pool

__all__ = ["PoolOrderRouter"]


class PoolOrderRouter:
    """Ranks the pool's models in pool order (or by price with ``cheapest_first``).

    Args:
        pool: The models.
        cheapest_first: Rank by the price of 1,000 input + 1,000 output tokens instead.

    Example:
        >>> from llmrouter_core.pool import ModelSpec
        >>> r = PoolOrderRouter(Pool([ModelSpec("a"), ModelSpec("b")]))
        >>> r.route("hello").ranked
        ('a', 'b')
    """

    name = "pool-order"

    def __init__(self, pool: Pool, *, cheapest_first: bool = False) -> None:
        self.pool_ = pool
        self.cheapest_first = cheapest_first
        names = list(pool.names)
        if cheapest_first:
            names.sort(key=lambda n: pool[n].estimate_cost(1000, 1000))
        self.models_: list[str] = names

    def __repr__(self) -> str:
        return f"PoolOrderRouter({list(self.models_)!r})"

    def route(
        self,
        query: str,
        *,
        cost_weight: float | None = None,
        budget: float | None = None,
        allowed: Collection[str] | None = None,
        max_cost: float | None = None,
        user: str | None = None,
    ) -> Decision:
        """The pool order restricted to ``allowed`` (``user`` is accepted and ignored)."""
        order = list(self.models_)
        if allowed is not None:
            unknown = set(allowed).difference(order)
            if unknown:
                raise UnknownModelError(f"unknown models {sorted(unknown)}")
            order = [m for m in order if m in set(allowed)]
        if not order:
            raise DataError("no eligible model: 'allowed' is empty")
        cost = {m: self.pool_[m].estimate_cost(1000, 1000) for m in self.models_}
        return Decision(
            model=order[0],
            ranked=tuple(order),
            quality={m: math.nan for m in self.models_},
            cost=cost,
            cost_weight=0.0 if cost_weight is None else float(cost_weight),
            router=self.name,
            reason="fixed pool order (no trained router)",
        )

    def route_batch(self, queries: Sequence[str], **kwargs: object) -> list[Decision]:
        """:meth:`route` for each query."""
        return [self.route(q, **kwargs) for q in queries]  # type: ignore[arg-type]
