"""Spend limits that hold under concurrency: reserve before a call, settle after it.

A :class:`Budget` tracks ``spent`` and ``reserved`` USD against a ``limit``. Before a call,
the executor reserves the call's *upper-bound* cost (prompt tokens at a conservative estimate,
plus ``max_tokens`` of output); the reservation fails if ``spent + reserved + amount`` would
pass the limit. After the call, the reservation is settled with the actual cost (or released
if the call failed). Because admission and accounting happen under one lock, any number of
threads or asyncio tasks can share a budget and the total never passes the limit, provided the
actual cost of a call does not exceed what was reserved for it (the executor caps
``max_tokens`` to make that so).

A :class:`BudgetManager` keeps one budget per user or API key.

Example:
    >>> b = Budget(1.0)
    >>> r = b.reserve(0.4)
    >>> b.settle(r, 0.25)
    >>> round(b.spent, 2), round(b.remaining, 2)
    (0.25, 0.75)
"""

from __future__ import annotations

import math
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from llmrouter_core.errors import LLMRouterError

__all__ = [
    "Budget",
    "BudgetExceededError",
    "BudgetLike",
    "BudgetManager",
    "Reservation",
]


class BudgetExceededError(LLMRouterError, RuntimeError):
    """A call would pass a spend limit (per request or shared); nothing was called."""


@dataclass(frozen=True, slots=True)
class Reservation:
    """A hold on ``amount`` USD of a budget, returned by :meth:`Budget.reserve`."""

    id: int
    amount: float


@runtime_checkable
class BudgetLike(Protocol):
    """What the executor needs from a budget (implement it over a shared store to scale out)."""

    @property
    def limit(self) -> float: ...

    @property
    def remaining(self) -> float: ...

    def try_reserve(self, amount: float) -> Reservation | None: ...

    def settle(self, reservation: Reservation, actual: float) -> None: ...

    def release(self, reservation: Reservation) -> None: ...


class Budget:
    """A USD spend limit shared by every call that uses it.

    Args:
        limit: Maximum total spend in USD (``>= 0``).
        name: Label used in error messages.

    Example:
        >>> b = Budget(0.01, name="team-a")
        >>> b.try_reserve(0.02) is None
        True
    """

    def __init__(self, limit: float, *, name: str = "budget") -> None:
        limit = float(limit)
        if math.isnan(limit) or limit < 0:
            raise ValueError("a budget limit must be a non-negative number of USD")
        self._limit = limit
        self.name = name
        self._spent = 0.0
        self._reserved: dict[int, float] = {}
        self._held = 0.0  # sum of self._reserved, kept up to date
        self._next_id = 0
        self._calls = 0
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return (
            f"Budget(name={self.name!r}, limit={self._limit:g}, spent={self._spent:.6g}, "
            f"reserved={self.reserved:.6g})"
        )

    @property
    def limit(self) -> float:
        """The limit in USD."""
        return self._limit

    @property
    def spent(self) -> float:
        """USD spent by settled calls."""
        return self._spent

    @property
    def reserved(self) -> float:
        """USD held by calls in flight."""
        with self._lock:
            return self._held if self._reserved else 0.0

    @property
    def remaining(self) -> float:
        """USD that new reservations may still take."""
        with self._lock:
            return max(0.0, self._limit - self._spent - self._held)

    @property
    def calls(self) -> int:
        """Number of settled calls."""
        return self._calls

    def try_reserve(self, amount: float) -> Reservation | None:
        """Hold ``amount`` USD, or return ``None`` if it does not fit."""
        amount = float(amount)
        if math.isnan(amount) or amount < 0:
            raise ValueError("a reservation must be a non-negative number of USD")
        with self._lock:
            if self._spent + self._held + amount > self._limit:
                return None
            self._next_id += 1
            self._reserved[self._next_id] = amount
            self._held += amount
            return Reservation(self._next_id, amount)

    def reserve(self, amount: float) -> Reservation:
        """Hold ``amount`` USD or raise :class:`BudgetExceededError`."""
        reservation = self.try_reserve(amount)
        if reservation is None:
            raise BudgetExceededError(
                f"{self.name}: ${amount:.6g} does not fit (limit ${self._limit:.6g}, "
                f"${self.remaining:.6g} left)"
            )
        return reservation

    def settle(self, reservation: Reservation, actual: float) -> None:
        """Replace the hold by the actual cost of the call."""
        actual = float(actual) if actual is not None and math.isfinite(actual) else 0.0
        with self._lock:
            held = self._reserved.pop(reservation.id, None)
            if held is None:
                raise ValueError(f"reservation {reservation.id} was already settled or released")
            self._unhold(held)
            self._spent += max(actual, 0.0)
            self._calls += 1

    def release(self, reservation: Reservation) -> None:
        """Drop the hold of a call that did not happen or failed (no-op if already gone)."""
        with self._lock:
            held = self._reserved.pop(reservation.id, None)
            if held is not None:
                self._unhold(held)

    def _unhold(self, amount: float) -> None:
        # A running sum keeps admission O(1) with many calls in flight; it is recomputed
        # exactly when few are, so float drift cannot accumulate.
        if len(self._reserved) <= 32:
            self._held = math.fsum(self._reserved.values())
        else:
            self._held = max(self._held - amount, 0.0)

    def add_spend(self, amount: float) -> None:
        """Account spend made outside the executor."""
        with self._lock:
            self._spent += max(float(amount), 0.0)


class BudgetManager:
    """One :class:`Budget` per user (or API key), created on first use.

    Args:
        default_limit: Limit in USD of a user without an explicit one (``None``: such users
            are not limited).
        limits: Explicit limits per user.

    Example:
        >>> m = BudgetManager(default_limit=1.0, limits={"alice": 5.0})
        >>> m.get("alice").limit, m.get("bob").limit
        (5.0, 1.0)
    """

    def __init__(
        self, default_limit: float | None = None, limits: Mapping[str, float] | None = None
    ) -> None:
        self.default_limit = default_limit
        self._budgets: dict[str, Budget] = {}
        self._lock = threading.Lock()
        for user, limit in (limits or {}).items():
            self._budgets[user] = Budget(limit, name=f"budget of {user!r}")

    def __repr__(self) -> str:
        return f"BudgetManager(default_limit={self.default_limit!r}, users={len(self._budgets)})"

    def get(self, user: str | None) -> Budget | None:
        """The budget of ``user`` (``None`` if the user is not limited)."""
        key = user or ""
        with self._lock:
            budget = self._budgets.get(key)
            if budget is None and self.default_limit is not None:
                label = f"budget of {user!r}" if user else "default budget"
                budget = self._budgets[key] = Budget(self.default_limit, name=label)
            return budget

    def spent(self) -> dict[str, float]:
        """USD spent per user."""
        with self._lock:
            return {user: b.spent for user, b in self._budgets.items()}
