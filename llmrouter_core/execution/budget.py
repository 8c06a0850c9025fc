"""Spend limits that hold under concurrency: reserve before a call, settle after it.

A :class:`Budget` tracks ``spent`` and ``reserved`` USD against a ``limit``. Before a call,
the executor reserves the call's *upper-bound* cost (prompt tokens at a conservative estimate,
plus ``max_tokens`` of output); the reservation fails if ``spent + reserved + amount`` would
pass the limit. After the call, the reservation is settled with the actual cost (or released
if the call failed). Because admission and accounting happen under one lock, any number of
threads or asyncio tasks can share a budget and the total never passes the limit, provided the
actual cost of a call does not exceed what was reserved for it (the executor caps
``max_tokens`` and bounds every model's prices to make that so). A call that costs more than
its reservation is still counted in full (no spend is hidden) and its excess is recorded in
:attr:`Budget.overrun`.

Admission waits rather than refusing at once when the amount would fit once calls in flight
settle (``try_reserve(amount, timeout=...)``, ``atry_reserve``): calls usually cost less than
their bound, so refusing at once would leave part of the budget unspent under concurrency. A
wait ends as soon as the amount fits, as soon as it can no longer fit (``spent + amount >
limit``: spending never shrinks), or at the timeout.

A :class:`BudgetManager` keeps one budget per user or API key.

Example:
    >>> b = Budget(1.0)
    >>> r = b.reserve(0.4)
    >>> b.settle(r, 0.25)
    >>> round(b.spent, 2), round(b.remaining, 2)
    (0.25, 0.75)
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import threading
import time
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
    "unspent_of",
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
    """What the executor needs from a budget (implement it over a shared store to scale out).

    A budget that can wait for calls in flight to settle also has ``try_reserve(amount, *,
    timeout)`` and ``async atry_reserve(amount, *, timeout)`` (as :class:`Budget` does); the
    executor uses them when present, else it calls ``try_reserve(amount)``. A budget kept in
    a shared store may also have ``async asettle(reservation, actual)``, ``async
    arelease(reservation)`` and ``async aunspent()``: the executor's async paths use them, so
    an event loop never blocks on the store.
    """

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
        self._overrun = 0.0
        self._lock = threading.Lock()
        # Waiters for room: threads wait on the condition, asyncio tasks on a future each.
        self._room = threading.Condition(self._lock)
        self._async_waiters: list[asyncio.Future[None]] = []

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
    def unspent(self) -> float:
        """USD not spent yet, holds of calls in flight included: what new reservations may take
        once those calls settle (at most)."""
        return max(0.0, self._limit - self._spent)

    @property
    def overrun(self) -> float:
        """USD that settled calls cost above what was reserved for them (0 when every bound
        held)."""
        return self._overrun

    @property
    def calls(self) -> int:
        """Number of settled calls."""
        return self._calls

    def _take(self, amount: float) -> Reservation | None:
        # Under the lock.
        if self._spent + self._held + amount > self._limit:
            return None
        self._next_id += 1
        self._reserved[self._next_id] = amount
        self._held += amount
        return Reservation(self._next_id, amount)

    def _hopeless(self, amount: float) -> bool:
        # Under the lock. Spending only grows, so this stays true once true.
        return self._spent + amount > self._limit

    def try_reserve(self, amount: float, *, timeout: float = 0.0) -> Reservation | None:
        """Hold ``amount`` USD, or return ``None`` if it does not fit.

        Args:
            amount: USD to hold.
            timeout: Seconds to wait, if ``amount`` does not fit now but would once calls in
                flight settle, for them to do so (0: answer at once).
        """
        amount = _checked(amount)
        with self._lock:
            reservation = self._take(amount)
            if reservation is not None or timeout <= 0:
                return reservation
            deadline = time.monotonic() + timeout
            while reservation is None and not self._hopeless(amount):
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._room.wait(left)
                reservation = self._take(amount)
            return reservation

    async def atry_reserve(self, amount: float, *, timeout: float = 0.0) -> Reservation | None:
        """:meth:`try_reserve` for asyncio: waits without blocking the event loop."""
        amount = _checked(amount)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            with self._lock:
                reservation = self._take(amount)
                if reservation is not None or timeout <= 0 or self._hopeless(amount):
                    return reservation
                waiter: asyncio.Future[None] = loop.create_future()
                self._async_waiters.append(waiter)
            left = deadline - loop.time()
            try:
                if left <= 0:
                    raise asyncio.TimeoutError
                await asyncio.wait_for(waiter, left)
            except asyncio.TimeoutError:
                with self._lock:
                    return self._take(amount)  # one last look
            finally:
                # Timed out or cancelled: this waiter must not be woken any more.
                with self._lock:
                    if waiter in self._async_waiters:
                        self._async_waiters.remove(waiter)

    def _wake(self) -> None:
        # Under the lock: room changed (a hold ended, or spend grew and some waits became
        # hopeless); every waiter looks again.
        self._room.notify_all()
        if not self._async_waiters:
            return
        waiters, self._async_waiters = self._async_waiters, []
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        for waiter in waiters:
            loop = waiter.get_loop()
            if loop is running:  # the common case: no cross-thread wake-up needed
                if not waiter.done():
                    waiter.set_result(None)
                continue
            # A closed loop raises RuntimeError: nobody is waiting there any more.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_resolve, waiter)

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
        """Replace the hold by the actual cost of the call.

        The actual cost is counted in full even above the hold (no spend is hidden); the
        excess is added to :attr:`overrun`, and the room it took is gone for every later
        reservation.
        """
        actual = float(actual) if actual is not None and math.isfinite(actual) else 0.0
        actual = max(actual, 0.0)
        with self._lock:
            held = self._reserved.pop(reservation.id, None)
            if held is None:
                raise ValueError(f"reservation {reservation.id} was already settled or released")
            self._unhold(held)
            self._spent += actual
            if actual > held:
                self._overrun += actual - held
            self._calls += 1
            self._wake()

    def release(self, reservation: Reservation) -> None:
        """Drop the hold of a call that did not happen or failed (no-op if already gone)."""
        with self._lock:
            held = self._reserved.pop(reservation.id, None)
            if held is not None:
                self._unhold(held)
                self._wake()

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
            self._wake()


def _checked(amount: float) -> float:
    amount = float(amount)
    if math.isnan(amount) or amount < 0:
        raise ValueError("a reservation must be a non-negative number of USD")
    return amount


def unspent_of(budget: BudgetLike) -> float:
    """What ``budget`` has not spent yet, holds of calls in flight included (its
    ``unspent``, or ``remaining`` for a budget without one)."""
    value = getattr(budget, "unspent", None)
    return float(value) if isinstance(value, int | float) else budget.remaining


def _resolve(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


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
