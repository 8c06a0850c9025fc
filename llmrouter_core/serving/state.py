"""The state replicas of ``llmrouter serve`` share: per-key budgets, rate limits, feedback.

* :class:`LocalState` keeps it in the process (one replica).
* :class:`RedisState` keeps it in Redis, so any number of replicas behind any load balancer
  share it: a key's budget is reserved and settled by Lua scripts (atomic in Redis: the
  check and the hold are one step), rate limits are counters per key and minute, and router
  feedback goes to a Redis stream that every replica reads and applies in the same order.

A budget is a :class:`~llmrouter_core.execution.BudgetLike`, so the executor reserves each
call's cost bound on it before the call and settles the actual cost after it, exactly as it
does with an in-process :class:`~llmrouter_core.execution.Budget`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from llmrouter_core.errors import MissingExtraError
from llmrouter_core.execution.budget import Budget, BudgetLike, Reservation

__all__ = ["LocalState", "RedisBudget", "RedisState", "SharedState"]

logger = logging.getLogger(__name__)

#: ``apply(router_name, feedback)`` applies one feedback item to a router of this replica.
FeedbackApplier = Callable[[str, Mapping[str, Any]], None]


class SharedState(Protocol):
    """What the server keeps across requests (and, with Redis, across replicas)."""

    def budget(self, name: str, limit: float) -> BudgetLike:
        """The budget of key ``name`` (created on first use with ``limit`` USD)."""
        ...

    async def allow(self, name: str, rpm: int) -> bool:
        """Count one request of key ``name``; ``False`` past ``rpm`` this minute."""
        ...

    async def spent(self, name: str) -> float:
        """USD settled on key ``name``'s budget."""
        ...

    async def feedback(self, router: str, item: Mapping[str, Any]) -> None:
        """Record one feedback item for ``router`` (applied by every replica)."""
        ...

    async def start(self, apply: FeedbackApplier) -> None: ...

    async def close(self) -> None: ...


class LocalState:
    """Shared state of one process."""

    def __init__(self) -> None:
        self._budgets: dict[str, Budget] = {}
        self._counts: dict[tuple[str, int], int] = {}
        self._apply: FeedbackApplier | None = None

    def budget(self, name: str, limit: float) -> Budget:
        b = self._budgets.get(name)
        if b is None:
            b = self._budgets[name] = Budget(limit, name=f"key {name}")
        return b

    async def allow(self, name: str, rpm: int) -> bool:
        minute = int(time.time() // 60)
        if len(self._counts) > 10_000:  # forget past minutes
            self._counts = {k: v for k, v in self._counts.items() if k[1] >= minute}
        n = self._counts[(name, minute)] = self._counts.get((name, minute), 0) + 1
        return n <= rpm

    async def spent(self, name: str) -> float:
        b = self._budgets.get(name)
        return 0.0 if b is None else b.spent

    async def feedback(self, router: str, item: Mapping[str, Any]) -> None:
        if self._apply is not None:
            self._apply(router, item)

    async def start(self, apply: FeedbackApplier) -> None:
        self._apply = apply

    async def close(self) -> None:
        return None


# -- Redis ------------------------------------------------------------------------------------

# KEYS[1]: the budget hash (spent, held, overrun, calls, next_id); KEYS[2]: the holds hash.
# ARGV: limit, amount. Returns the reservation id, or 0 when the amount does not fit.
_RESERVE = """
local spent = tonumber(redis.call('HGET', KEYS[1], 'spent') or '0')
local held = tonumber(redis.call('HGET', KEYS[1], 'held') or '0')
if spent + held + tonumber(ARGV[2]) > tonumber(ARGV[1]) then return 0 end
local id = redis.call('HINCRBY', KEYS[1], 'next_id', 1)
redis.call('HSET', KEYS[2], id, ARGV[2])
redis.call('HINCRBYFLOAT', KEYS[1], 'held', ARGV[2])
return id
"""

# ARGV: reservation id, actual cost ('' to release). Returns 1, or 0 if the hold is gone.
_SETTLE = """
local hold = redis.call('HGET', KEYS[2], ARGV[1])
if not hold then return 0 end
redis.call('HDEL', KEYS[2], ARGV[1])
if redis.call('HLEN', KEYS[2]) == 0 then
  redis.call('HSET', KEYS[1], 'held', '0')
else
  redis.call('HINCRBYFLOAT', KEYS[1], 'held', '-' .. hold)
end
if ARGV[2] ~= '' then
  redis.call('HINCRBYFLOAT', KEYS[1], 'spent', ARGV[2])
  redis.call('HINCRBY', KEYS[1], 'calls', 1)
  local over = tonumber(ARGV[2]) - tonumber(hold)
  if over > 0 then redis.call('HINCRBYFLOAT', KEYS[1], 'overrun', tostring(over)) end
end
return 1
"""

# KEYS[1]: the counter of this key and minute. ARGV: rpm. Returns 1 when allowed.
_RATE = """
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('EXPIRE', KEYS[1], 120) end
if n > tonumber(ARGV[1]) then return 0 end
return 1
"""


def _import_redis() -> Any:
    try:
        import redis
    except ImportError:
        raise MissingExtraError("redis", "serve", "--redis-url") from None
    return redis


class RedisBudget:
    """A key's budget in Redis, shared by every replica (a :class:`BudgetLike`).

    ``try_reserve`` and ``atry_reserve`` hold a call's cost bound if ``spent + held + bound``
    stays within the limit, in one atomic script; ``settle`` replaces the hold by the actual
    cost, ``release`` drops it (``asettle``, ``arelease`` and ``aunspent`` are their async
    twins, which the executor's async paths use: a server's event loop never waits on a
    blocking Redis call). A replica that dies with calls in flight leaves their holds
    (they count against the budget until removed from ``<prefix>:holds``): the budget stays
    safe, never overrun.
    """

    def __init__(self, state: RedisState, name: str, limit: float) -> None:
        self._state = state
        self.name = name
        self._limit = float(limit)
        self._keys = [f"{state.prefix}:budget:{{{name}}}", f"{state.prefix}:holds:{{{name}}}"]

    def __repr__(self) -> str:
        return f"RedisBudget(name={self.name!r}, limit={self._limit:g})"

    @property
    def limit(self) -> float:
        return self._limit

    def _fields(self) -> dict[str, float]:
        raw = self._state.sync.hgetall(self._keys[0])
        return {k.decode(): float(v) for k, v in raw.items()}

    @property
    def spent(self) -> float:
        return self._fields().get("spent", 0.0)

    @property
    def overrun(self) -> float:
        return self._fields().get("overrun", 0.0)

    @property
    def remaining(self) -> float:
        f = self._fields()
        return max(0.0, self._limit - f.get("spent", 0.0) - f.get("held", 0.0))

    @property
    def unspent(self) -> float:
        return max(0.0, self._limit - self.spent)

    async def aunspent(self) -> float:
        """:attr:`unspent`, without blocking the event loop."""
        spent = await self._state.aio.hget(self._keys[0], "spent")
        return max(0.0, self._limit - float(spent or 0.0))

    def try_reserve(self, amount: float, *, timeout: float = 0.0) -> Reservation | None:
        amount = _checked(amount)
        deadline = time.monotonic() + timeout
        while True:
            rid = int(self._state.reserve_sync(keys=self._keys, args=[self._limit, amount]))
            if rid or time.monotonic() >= deadline or amount > self.unspent:  # spending only grows
                return Reservation(rid, amount) if rid else None
            time.sleep(0.01)

    async def atry_reserve(self, amount: float, *, timeout: float = 0.0) -> Reservation | None:
        amount = _checked(amount)
        deadline = time.monotonic() + timeout
        while True:
            rid = int(await self._state.reserve_async(keys=self._keys, args=[self._limit, amount]))
            if rid or time.monotonic() >= deadline or amount > await self.aunspent():
                return Reservation(rid, amount) if rid else None
            # Room may come back when calls in flight on any replica settle.
            await asyncio.sleep(0.01)

    def settle(self, reservation: Reservation, actual: float) -> None:
        args: list[int | str] = [reservation.id, repr(_actual(actual))]
        _check_settled(self._state.settle_sync(keys=self._keys, args=args), reservation)

    def release(self, reservation: Reservation) -> None:
        self._state.settle_sync(keys=self._keys, args=[reservation.id, ""])

    async def asettle(self, reservation: Reservation, actual: float) -> None:
        """:meth:`settle`, without blocking the event loop."""
        args: list[int | str] = [reservation.id, repr(_actual(actual))]
        _check_settled(await self._state.settle_async(keys=self._keys, args=args), reservation)

    async def arelease(self, reservation: Reservation) -> None:
        """:meth:`release`, without blocking the event loop."""
        await self._state.settle_async(keys=self._keys, args=[reservation.id, ""])


def _actual(cost: float | None) -> float:
    """A call's actual cost as settled: unknown or negative counts as 0."""
    return max(float(cost), 0.0) if cost is not None and math.isfinite(cost) else 0.0


def _check_settled(done: Any, reservation: Reservation) -> None:
    if not done:
        raise ValueError(f"reservation {reservation.id} was already settled or released")


class RedisState:
    """Shared state in Redis (``redis://host:port/db``), for several replicas.

    Args:
        url: The Redis URL.
        prefix: Prefix of every Redis key this server writes.
        max_connections: Connections the server's event loop opens at most; a request that
            needs one while all are busy waits for one (up to ``pool_timeout`` seconds)
            instead of failing.
        pool_timeout: Seconds to wait for a free connection.
    """

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "llmrouter",
        max_connections: int = 64,
        pool_timeout: float = 10.0,
    ) -> None:
        redis = _import_redis()
        import redis.asyncio as aredis

        self.url = url
        self.prefix = prefix
        self.sync = redis.Redis.from_url(url)
        self.aio = aredis.Redis.from_pool(
            aredis.BlockingConnectionPool.from_url(
                url, max_connections=max_connections, timeout=pool_timeout
            )
        )
        self.reserve_sync = self.sync.register_script(_RESERVE)
        self.settle_sync = self.sync.register_script(_SETTLE)
        self.reserve_async = self.aio.register_script(_RESERVE)
        self.settle_async = self.aio.register_script(_SETTLE)
        self._rate = self.aio.register_script(_RATE)
        self._budgets: dict[str, RedisBudget] = {}
        self._task: asyncio.Task[None] | None = None
        self._stream = f"{prefix}:feedback"

    def budget(self, name: str, limit: float) -> RedisBudget:
        b = self._budgets.get(name)
        if b is None:
            b = self._budgets[name] = RedisBudget(self, name, limit)
        return b

    async def allow(self, name: str, rpm: int) -> bool:
        minute = int(time.time() // 60)
        ok = await self._rate(keys=[f"{self.prefix}:rate:{{{name}}}:{minute}"], args=[rpm])
        return bool(int(ok))

    async def spent(self, name: str) -> float:
        value = await self.aio.hget(f"{self.prefix}:budget:{{{name}}}", "spent")
        return 0.0 if value is None else float(value)

    async def feedback(self, router: str, item: Mapping[str, Any]) -> None:
        payload = json.dumps({"router": router, **item})
        await self.aio.xadd(self._stream, {"item": payload}, maxlen=100_000, approximate=True)

    async def start(self, apply: FeedbackApplier) -> None:
        """Check the connection and follow the feedback stream from now on."""
        await self.aio.ping()
        self.sync.ping()
        # Replicas start from the stream's start: every replica's router learns from all of it.
        self._task = asyncio.create_task(self._follow(apply, "0-0"))

    async def _follow(self, apply: FeedbackApplier, last: str) -> None:
        while True:
            try:
                batch = await self.aio.xread({self._stream: last}, count=256, block=500)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Redis went away for a moment: try again
                logger.warning("feedback stream: %s", type(exc).__name__)
                await asyncio.sleep(0.5)
                continue
            entries_of: list[Any] = list(batch or [])
            for _stream, entries in entries_of:
                for entry_id, fields in entries:
                    last = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
                    try:
                        item = json.loads(fields[b"item"])
                        apply(str(item.pop("router")), item)
                    except Exception as exc:  # one bad item must not stop the others
                        logger.warning("feedback item %s not applied: %s", last, exc)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        await self.aio.aclose()
        self.sync.close()


def _checked(amount: float) -> float:
    amount = float(amount)
    if math.isnan(amount) or amount < 0:
        raise ValueError("a reservation must be a non-negative number of USD")
    return amount
